package batch

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	xunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"
)

// Limits on what ReadCSV takes. A programme's real spreadsheet is far below
// them; a file over them is the wrong file.
const (
	MaxFileBytes = 32 << 20
	MaxRows      = 100_000
	maxSite      = 100 // characters
	maxChild     = 64
	maxRegion    = 64
	maxWindows   = 14
	// maxErrors is how many problems one check lists before "and N more".
	maxErrors = 50
)

// Row is one family: one unit.
type Row struct {
	// Line is the row's number in the spreadsheet (the header is row 1).
	Line           int      `json:"-"`
	Site           string   `json:"site"`
	Child          string   `json:"child"`
	Region         string   `json:"region"`
	Language       string   `json:"language"`
	TimeZone       string   `json:"time_zone"`
	ReunionWindows []string `json:"reunion_windows,omitempty"`
	// ParentPhone is E.164 ("+8613812345678") or empty.
	ParentPhone string `json:"parent_phone,omitempty"`
}

// Key is the row's identity within a batch: its site and child, in Unicode
// normal form with spaces collapsed and full-width letters folded, so the
// same family typed again (or by another spreadsheet program) is the same
// row. A batch run again maps a key to the unit it already made.
func (r Row) Key() string {
	sum := sha256.Sum256([]byte(normKey(r.Site) + "\x1f" + normKey(r.Child)))
	return hex.EncodeToString(sum[:16])
}

func normKey(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(norm.NFKC.String(s)), " "))
}

// ErrBadCSV wraps every problem ReadCSV finds.
var ErrBadCSV = errors.New("bad families CSV")

// columns maps each column to the header names that mean it (English, and
// what a Chinese spreadsheet is likely to say).
var columns = []struct {
	field    string
	required bool
	names    []string
}{
	{"site", true, []string{"site", "school", "学校", "站点", "学校/站点"}},
	{"child", true, []string{"child", "name", "child_name", "pseudonym", "儿童", "孩子", "姓名", "昵称"}},
	{"region", true, []string{"region", "地区", "区域"}},
	{"language", false, []string{"language", "lang", "语言"}},
	{"time_zone", false, []string{"time_zone", "timezone", "tz", "时区"}},
	{"reunion_windows", false, []string{"reunion_windows", "reunion", "团聚时间", "团聚时段"}},
	{"parent_phone", false, []string{"parent_phone", "phone", "家长电话", "电话"}},
}

// Defaults fill a row's empty optional cells.
type Defaults struct {
	Language string
	TimeZone string
}

// CheckWindow checks one reunion window as the terminal will read it
// (terminald's auto_answer windows); nil takes any non-empty text.
type CheckWindow func(string) error

// ReadCSV reads and checks a whole families CSV: UTF-8, UTF-8 with a BOM,
// UTF-16 with a BOM, or GBK/GB18030 (what Chinese spreadsheet programs save;
// taken when the bytes are not UTF-8). Every problem is reported, each
// naming its row and column, up to a limit; with any problem no row is
// returned, so nothing is issued from a half-good file.
func ReadCSV(r io.Reader, def Defaults, check CheckWindow) ([]Row, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("batch: read CSV: %w", err)
	}
	if len(raw) > MaxFileBytes {
		return nil, fmt.Errorf("batch: the CSV is over %d MiB: not a families list: %w", MaxFileBytes>>20, ErrBadCSV)
	}
	text, enc, err := decodeText(raw)
	if err != nil {
		return nil, err
	}
	cr := csv.NewReader(strings.NewReader(text))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("batch: the CSV is empty (no header, no rows): %w", ErrBadCSV)
	}
	if err != nil {
		return nil, fmt.Errorf("batch: CSV (%s) header: %w: %v", enc, ErrBadCSV, err)
	}
	idx, err := mapHeader(header)
	if err != nil {
		return nil, err
	}
	var (
		rows []Row
		errs problems
		seen = map[string]int{}
	)
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs.add(fmt.Errorf("row %d: %v", line, err))
			continue
		}
		if blank(rec) {
			continue
		}
		if len(rows) >= MaxRows {
			return nil, fmt.Errorf("batch: over %d rows: split the list into batches: %w", MaxRows, ErrBadCSV)
		}
		if len(rec) != len(header) {
			errs.add(fmt.Errorf("row %d: %d cells, the header has %d", line, len(rec), len(header)))
			continue
		}
		row, rowErrs := parseRow(line, rec, idx, def, check)
		for _, e := range rowErrs {
			errs.add(e)
		}
		if len(rowErrs) == 0 {
			if first, dup := seen[row.Key()]; dup {
				errs.add(fmt.Errorf("row %d: site %q and child %q repeat row %d (one unit per child; tell two children apart by name)", line, row.Site, row.Child, first))
			} else {
				seen[row.Key()] = line
			}
		}
		rows = append(rows, row)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("batch: the CSV has a header but no rows: %w", ErrBadCSV)
	}
	return rows, nil
}

// decodeText turns the file into UTF-8 and says what it was.
func decodeText(raw []byte) (string, string, error) {
	switch {
	case bytes.HasPrefix(raw, []byte{0xEF, 0xBB, 0xBF}):
		raw = raw[3:]
		if !utf8.Valid(raw) {
			return "", "", fmt.Errorf("batch: the CSV starts as UTF-8 but is not: %w", ErrBadCSV)
		}
		return checkText(string(raw), "UTF-8 with BOM")
	case bytes.HasPrefix(raw, []byte{0xFF, 0xFE}) || bytes.HasPrefix(raw, []byte{0xFE, 0xFF}):
		b, err := xunicode.UTF16(xunicode.LittleEndian, xunicode.ExpectBOM).NewDecoder().Bytes(raw)
		if err != nil {
			return "", "", fmt.Errorf("batch: the CSV is not UTF-16: %w: %v", ErrBadCSV, err)
		}
		return checkText(string(b), "UTF-16")
	case utf8.Valid(raw):
		return checkText(string(raw), "UTF-8")
	}
	b, err := simplifiedchinese.GB18030.NewDecoder().Bytes(raw)
	if err != nil {
		return "", "", fmt.Errorf("batch: the CSV is neither UTF-8 nor GBK: %w: %v", ErrBadCSV, err)
	}
	return checkText(string(b), "GBK")
}

// checkText refuses what is not text: NULs and other control characters
// are a binary file (a spreadsheet's .xlsx saved under .csv, junk).
func checkText(s, enc string) (string, string, error) {
	line := 1
	for _, r := range s {
		switch {
		case r == '\n':
			line++
		case r == '\r' || r == '\t':
		case r < 0x20 || r == 0x7f:
			return "", "", fmt.Errorf("batch: the CSV (%s) has a control character (0x%02x) on line %d: not a text file (save the spreadsheet as CSV): %w", enc, r, line, ErrBadCSV)
		}
	}
	if strings.ContainsRune(s, utf8.RuneError) && enc == "GBK" {
		return "", "", fmt.Errorf("batch: the CSV is neither UTF-8 nor GBK (bytes that are neither): %w", ErrBadCSV)
	}
	return s, enc, nil
}

func mapHeader(header []string) (map[string]int, error) {
	idx := map[string]int{}
	var errs problems
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(norm.NFKC.String(h)))
		found := ""
		for _, c := range columns {
			if slices.Contains(c.names, name) {
				found = c.field
			}
		}
		switch {
		case found == "":
			errs.add(fmt.Errorf("column %d: unknown column %q (known: %s)", i+1, h, knownColumns()))
		case hasIndex(idx, found):
			errs.add(fmt.Errorf("column %d: %q repeats the %s column", i+1, h, found))
		default:
			idx[found] = i
		}
	}
	for _, c := range columns {
		if _, ok := idx[c.field]; c.required && !ok {
			errs.add(fmt.Errorf("missing column %s (header names it %s)", c.field, strings.Join(c.names, " or ")))
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return idx, nil
}

func hasIndex(idx map[string]int, f string) bool { _, ok := idx[f]; return ok }

func knownColumns() string {
	var out []string
	for _, c := range columns {
		out = append(out, c.field)
	}
	return strings.Join(out, ", ")
}

func blank(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

func parseRow(line int, rec []string, idx map[string]int, def Defaults, check CheckWindow) (Row, []error) {
	cell := func(f string) string {
		i, ok := idx[f]
		if !ok {
			return ""
		}
		return strings.TrimSpace(norm.NFC.String(rec[i]))
	}
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("row %d, %s: %s", line, field, fmt.Sprintf(format, a...)))
	}
	r := Row{Line: line, Site: cell("site"), Child: cell("child"), Region: cell("region"),
		Language: cell("language"), TimeZone: cell("time_zone")}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"site", r.Site, maxSite}, {"child", r.Child, maxChild}, {"region", r.Region, maxRegion}} {
		switch n := utf8.RuneCountInString(f.v); {
		case n == 0:
			bad(f.name, "empty")
		case n > f.max:
			bad(f.name, "%d characters, at most %d", n, f.max)
		case strings.IndexFunc(f.v, func(r rune) bool { return unicode.IsControl(r) }) >= 0:
			bad(f.name, "holds a line break or control character")
		}
	}
	if r.Language == "" {
		r.Language = def.Language
	}
	if tag, err := language.Parse(r.Language); err != nil {
		bad("language", "%q is not a language tag (e.g. zh-CN)", r.Language)
	} else {
		r.Language = tag.String()
	}
	if r.TimeZone == "" {
		r.TimeZone = def.TimeZone
	}
	if _, err := time.LoadLocation(r.TimeZone); err != nil || r.TimeZone == "" || strings.EqualFold(r.TimeZone, "local") {
		bad("time_zone", "%q is not a time zone (e.g. Asia/Shanghai)", r.TimeZone)
	}
	if w := cell("reunion_windows"); w != "" {
		for _, part := range strings.FieldsFunc(w, func(r rune) bool { return r == ';' || r == '；' || r == '\n' }) {
			part = strings.Join(strings.Fields(part), " ")
			if part == "" {
				continue
			}
			if check != nil {
				if err := check(part); err != nil {
					bad("reunion_windows", "%q: %v", part, err)
					continue
				}
			}
			r.ReunionWindows = append(r.ReunionWindows, part)
		}
		if len(r.ReunionWindows) > maxWindows {
			bad("reunion_windows", "%d windows, at most %d", len(r.ReunionWindows), maxWindows)
		}
	}
	if p := cell("parent_phone"); p != "" {
		e164, err := normalizePhone(p)
		if err != nil {
			bad("parent_phone", "%q: %v", p, err)
		}
		r.ParentPhone = e164
	}
	return r, errs
}

// normalizePhone makes a phone number E.164: spaces, dashes and brackets go;
// an 11-digit mainland mobile number (1xx…) gets +86.
func normalizePhone(p string) (string, error) {
	p = norm.NFKC.String(p)
	var b strings.Builder
	for i, r := range p {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '(' || r == ')' || r == '.':
		default:
			return "", fmt.Errorf("not a phone number")
		}
	}
	s := b.String()
	if !strings.HasPrefix(s, "+") {
		if len(s) == 11 && s[0] == '1' {
			s = "+86" + s
		} else if strings.HasPrefix(s, "00") {
			s = "+" + s[2:]
		} else {
			return "", fmt.Errorf("not an international number (+86…) or an 11-digit mobile number")
		}
	}
	if n := len(s) - 1; n < 8 || n > 15 {
		return "", fmt.Errorf("%d digits; a phone number has 8 to 15", n)
	}
	return s, nil
}

// problems collects errors up to maxErrors.
type problems struct {
	list []error
	more int
}

func (p *problems) add(err error) {
	if len(p.list) < maxErrors {
		p.list = append(p.list, err)
		return
	}
	p.more++
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	list := p.list
	if p.more > 0 {
		list = append(list, fmt.Errorf("… and %d more", p.more))
	}
	n := len(p.list) + p.more
	what := "problems"
	if n == 1 {
		what = "problem"
	}
	return fmt.Errorf("batch: the CSV has %d %s; nothing was issued: %w:\n%w", n, what, ErrBadCSV, errors.Join(list...))
}
