package webapp_test

import (
	"encoding/json"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/net/html"

	"github.com/tuanju/tuanju/internal/rendezvous/webapp"
)

// The page's sentences live in one table, static/messages.js (JSON between
// two markers), in Simplified Chinese and English. These tests hold the page
// to it without a browser: the table is complete in both languages, every
// key the page names exists and every key is used, and no sentence of the
// page or its service worker is written anywhere else.

// message is one entry of the table.
type message struct {
	ZH string `json:"zh"`
	EN string `json:"en"`
}

func readMessages(t *testing.T) map[string]message {
	t.Helper()
	src := string(mustRead(t, "messages.js"))
	const begin, end = "/* messages:begin */", "/* messages:end */"
	i, j := strings.Index(src, begin), strings.Index(src, end)
	if i < 0 || j < i {
		t.Fatalf("messages.js has no %s … %s", begin, end)
	}
	d := json.NewDecoder(strings.NewReader(src[i+len(begin) : j]))
	d.DisallowUnknownFields() // a third language, or a typo in "zh", is an error
	var m map[string]message
	if err := d.Decode(&m); err != nil {
		t.Fatalf("messages.js: the table is not JSON of key → {zh, en}: %v", err)
	}
	// JSON lets a key repeat, the later winning: not here.
	keys := regexp.MustCompile(`(?m)^\s*"([^"]+)":\s*\{`).FindAllStringSubmatch(src[i:j], -1)
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k[1]] {
			t.Errorf("messages.js: key %q twice", k[1])
		}
		seen[k[1]] = true
	}
	return m
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(webapp.FS(), name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	paramPattern = regexp.MustCompile(`\{[a-z_]+\}`)
	keyPattern   = regexp.MustCompile(`^[a-z_]+(\.[a-z_]+)+$`)
	// latinWord: a run of Latin letters; allowedLatin are the ones a Chinese
	// sentence may carry (units and a URL scheme, as Chinese text writes them).
	latinWord    = regexp.MustCompile(`[A-Za-z]+`)
	allowedLatin = map[string]bool{"https": true, "KB": true, "MB": true}
)

func hasHan(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}

// TestMessagesComplete: every key has both languages, each whole in its own
// language (no Chinese in the English, no English words in the Chinese),
// with the same parameters.
func TestMessagesComplete(t *testing.T) {
	msgs := readMessages(t)
	if len(msgs) < 100 {
		t.Fatalf("messages.js has %d keys: the table did not parse as it should", len(msgs))
	}
	for _, k := range slices.Sorted(maps.Keys(msgs)) {
		m := msgs[k]
		if !keyPattern.MatchString(k) {
			t.Errorf("key %q is not dotted lower-case words", k)
		}
		if strings.TrimSpace(m.ZH) == "" || strings.TrimSpace(m.EN) == "" {
			t.Errorf("%s: missing a language: zh %q, en %q", k, m.ZH, m.EN)
			continue
		}
		zp, ep := paramPattern.FindAllString(m.ZH, -1), paramPattern.FindAllString(m.EN, -1)
		slices.Sort(zp)
		slices.Sort(ep)
		if !slices.Equal(zp, ep) {
			t.Errorf("%s: parameters differ: zh %v, en %v (a sentence would lose what it says in one language)", k, zp, ep)
		}
		zh, en := paramPattern.ReplaceAllString(m.ZH, ""), paramPattern.ReplaceAllString(m.EN, "")
		if hasHan(en) {
			t.Errorf("%s: the English %q has Chinese in it", k, m.EN)
		}
		for _, w := range latinWord.FindAllString(zh, -1) {
			if !allowedLatin[w] {
				t.Errorf("%s: the Chinese %q has the English word %q in it", k, m.ZH, w)
			}
		}
		if latinWord.MatchString(en) && !hasHan(zh) {
			t.Errorf("%s: the Chinese %q is not Chinese", k, m.ZH)
		}
	}
}

// jsLiteral is one string literal of a JavaScript file (for a template
// literal, its text outside ${…}), with the line it starts on.
type jsLiteral struct {
	text string
	line int
	// template: a template literal with ${…} in it (prefix is its text up
	// to the first ${).
	template bool
	prefix   string
	// context is the source before the literal on its line.
	context string
}

// jsStrings lexes the string literals of JavaScript source, skipping
// comments and regular expression literals.
func jsStrings(src string) []jsLiteral {
	var out []jsLiteral
	line := 1
	lineStart := 0
	prev := byte('(') // the last significant character, to tell a regex from a division
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\n':
			line++
			lineStart = i + 1
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			i--
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			j := strings.Index(src[i+2:], "*/")
			if j < 0 {
				return out
			}
			line += strings.Count(src[i:i+2+j+2], "\n")
			i += 2 + j + 1
		case c == '/' && strings.IndexByte("(,=:[!&|?{};+-*%<>~^", prev) >= 0:
			// A regular expression literal.
			inClass := false
			for i++; i < len(src) && src[i] != '\n'; i++ {
				if src[i] == '\\' {
					i++
				} else if src[i] == '[' {
					inClass = true
				} else if src[i] == ']' {
					inClass = false
				} else if src[i] == '/' && !inClass {
					break
				}
			}
			prev = 'r'
		case c == '\'' || c == '"' || c == '`':
			s := jsLiteral{line: line, context: src[lineStart:i]}
			var b strings.Builder
			depth := 0
			for i++; i < len(src); i++ {
				d := src[i]
				if d == '\\' {
					i++
					continue
				}
				if d == '\n' {
					line++
					lineStart = i + 1
				}
				if c == '`' && depth == 0 && d == '$' && i+1 < len(src) && src[i+1] == '{' {
					if !s.template {
						s.prefix = b.String()
					}
					s.template = true
					depth = 1
					i++
					continue
				}
				if depth > 0 {
					if d == '{' {
						depth++
					} else if d == '}' {
						depth--
					}
					continue
				}
				if d == c {
					break
				}
				b.WriteByte(d)
			}
			s.text = b.String()
			out = append(out, s)
			prev = 's'
		case c == ' ' || c == '\t' || c == '\r':
		default:
			prev = c
			if unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)) || c == '_' || c == '$' || c == ')' || c == ']' {
				// An identifier, number or closing bracket: a / after it divides.
				prev = 'a'
				if c == ')' || c == ']' {
					prev = ')'
				}
				// "return /re/" is rare enough in this code to ignore.
			}
		}
	}
	return out
}

// sentence matches text that reads as English for people: a capital, a
// word, and more words or an end mark.
var sentence = regexp.MustCompile(`^[A-Z][a-z']+([ ,]+[A-Za-z'’]+)+[.…!?]?$|^[A-Z][a-z']+[.…!?]$`)

// TestNoSentenceOutsideTheTable: the page's scripts and its service worker
// say nothing but what messages.js holds: no Chinese anywhere else, no
// English sentence in a string, no text put into the page from a literal,
// no bilingual helper; every key they name is in the table, and every key
// of the table is used.
func TestNoSentenceOutsideTheTable(t *testing.T) {
	msgs := readMessages(t)
	namespaces := map[string]bool{}
	for k := range msgs {
		namespaces[strings.SplitN(k, ".", 2)[0]] = true
	}
	used := map[string]bool{}
	prefixes := []string{}
	files, err := fs.Glob(webapp.FS(), "*.js")
	if err != nil || len(files) < 8 {
		t.Fatalf("static/*.js: %v, %v", files, err)
	}
	literalText := regexp.MustCompile(`\.(textContent|innerText|innerHTML)\s*=\s*$`)
	for _, name := range files {
		if name == "messages.js" {
			continue
		}
		src := string(mustRead(t, name))
		if strings.Contains(src, "bilingual(") {
			t.Errorf("%s: calls bilingual(): the page shows one language at a time", name)
		}
		for _, s := range jsStrings(src) {
			where := name + ":" + itoa(s.line)
			switch {
			case hasHan(s.text):
				t.Errorf("%s: Chinese outside messages.js: %q", where, s.text)
			case s.template && keyPattern.MatchString(strings.TrimSuffix(s.prefix, ".")+".x") && namespaces[strings.SplitN(s.prefix, ".", 2)[0]]:
				prefixes = append(prefixes, s.prefix) // `presence.${h}`: a family of keys
			case keyPattern.MatchString(s.text) && namespaces[strings.SplitN(s.text, ".", 2)[0]]:
				if _, ok := msgs[s.text]; !ok {
					t.Errorf("%s: names the message %q, which messages.js does not have", where, s.text)
				}
				used[s.text] = true
			case sentence.MatchString(strings.TrimSpace(s.text)) && !strings.Contains(s.context, "console.") && !strings.Contains(s.context, "Error("):
				t.Errorf("%s: an English sentence outside messages.js: %q", where, s.text)
			case literalText.MatchString(s.context) && strings.TrimSpace(s.text) != "":
				t.Errorf("%s: puts the literal %q into the page", where, s.text)
			}
		}
	}

	// index.html: every text is a sentence of the table, in Chinese (the
	// page's default), on an element that names it.
	doc, err := html.Parse(strings.NewReader(string(mustRead(t, "index.html"))))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *html.Node, key string)
	walk = func(n *html.Node, key string) {
		if n.Type == html.ElementNode {
			if n.Data == "script" || n.Data == "style" {
				return
			}
			for _, a := range n.Attr {
				switch a.Key {
				case "data-msg":
					key = a.Val
					m, ok := msgs[key]
					if !ok {
						t.Errorf("index.html: <%s data-msg=%q>: no such message", n.Data, key)
						break
					}
					used[key] = true
					if got := textOf(n); got != m.ZH {
						t.Errorf("index.html: <%s data-msg=%q> says %q, the table's Chinese is %q", n.Data, key, got, m.ZH)
					}
				case "alt", "title", "aria-label", "placeholder", "content", "value":
					if hasHan(a.Val) || sentence.MatchString(a.Val) {
						if !(n.Data == "meta" && a.Val == "和孩子视频通话") {
							t.Errorf("index.html: <%s %s=%q>: words outside the table", n.Data, a.Key, a.Val)
						}
					}
				}
			}
		}
		if n.Type == html.TextNode && key == "" {
			if txt := strings.TrimSpace(n.Data); txt != "" && (hasHan(txt) || latinWord.MatchString(txt)) {
				parent := ""
				if n.Parent != nil {
					parent = n.Parent.Data
				}
				if parent == "title" {
					if txt != msgs["app.title"].ZH {
						t.Errorf("index.html: <title>%s</title>, want the table's %q", txt, msgs["app.title"].ZH)
					}
				} else {
					t.Errorf("index.html: <%s> text %q is not a data-msg sentence", parent, txt)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, key)
		}
	}
	walk(doc, "")

	for _, k := range slices.Sorted(maps.Keys(msgs)) {
		if used[k] || slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			continue
		}
		t.Errorf("messages.js: %q is used nowhere (a page that lost a sentence, or a dead key)", k)
	}
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestJSStrings holds the lexer the tests above rely on to a few cases.
func TestJSStrings(t *testing.T) {
	src := "const a = 'one'; // 'comment'\n/* \"block\" */ const r = /['\"]x/g; const b = `pre.${x} after`;\nconst c = d / 2 + \"two\";"
	var got []string
	for _, s := range jsStrings(src) {
		got = append(got, s.text+"|"+s.prefix)
	}
	want := []string{"one|", "pre. after|pre.", "two|"}
	if !slices.Equal(got, want) {
		t.Fatalf("jsStrings = %q, want %q", got, want)
	}
}
