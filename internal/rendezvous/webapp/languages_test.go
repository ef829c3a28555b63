package webapp_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestLanguages: the page in the language the browser asks for —
// Simplified Chinese by default and for any language it does not have,
// English when the browser asks for English first. In each, every screen a
// parent meets (pairing, a pairing refused because another phone is
// pairing, home with the call log and a terminal that needs repair,
// incoming, outgoing, a missed call, a call the terminal could not take)
// says its sentences from the table in that language only, whole (the
// Chinese call log says who called and when), with <html lang> to match. A
// screenshot of each screen is kept in the test's directory (and in
// $TUANJU_SCREENSHOTS when set, to look at).
func TestLanguages(t *testing.T) {
	msgs := readMessages(t)
	for _, tc := range []struct {
		name, accept, lang, htmlLang string
		full                         bool // every screen, or the first only
	}{
		{"chinese", "zh-CN,zh", "zh", "zh-CN", true},
		{"english", "en-GB,en", "en", "en", true},
		{"english after a language the page lacks", "fr-FR,en-US", "en", "en", false},
		{"chinese for a language the page lacks", "fr-FR,de", "zh", "zh-CN", false},
		{"traditional chinese reads the simplified", "zh-TW", "zh", "zh-CN", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFakeRendezvous(t)
			ctx := phoneIn(t, tc.accept)
			say := func(key string, params ...string) string {
				m, ok := msgs[key]
				if !ok {
					t.Fatalf("no message %q", key)
				}
				s := m.ZH
				if tc.lang == "en" {
					s = m.EN
				}
				for i := 0; i+1 < len(params); i += 2 {
					s = strings.ReplaceAll(s, "{"+params[i]+"}", params[i+1])
				}
				return s
			}
			// screen checks what the parent sees now: the language of the
			// page and of every word on it, then keeps a screenshot.
			screen := func(name string) {
				t.Helper()
				if got := eval[string](t, ctx, `document.documentElement.lang`); got != tc.htmlLang {
					t.Errorf("%s: <html lang=%q>, want %q", name, got, tc.htmlLang)
				}
				checkOneLanguage(t, name, tc.lang, eval[string](t, ctx, `document.body.innerText`))
				keepScreenshot(t, ctx, dir, tc.name+"-"+name)
			}

			do(t, ctx, chromedp.Navigate(f.URL+"/"))
			waitState(t, ctx, "pairing")
			waitText(t, ctx, "#pair-scan", say("pair.scan"))
			waitText(t, ctx, "#pair-status", say("pair.not_yet"))
			if got := eval[string](t, ctx, `window.tuanju.lang`); got != tc.lang {
				t.Fatalf("page language %q, want %q", got, tc.lang)
			}
			screen("pairing")
			if !tc.full {
				return
			}

			// Another phone is pairing: said so, not "too many tries".
			term := newFakeTerminal(t)
			c, _ := openPairingLink(t, ctx, f, term.id, pairing.NewSecret())
			waitText(t, ctx, "#pair-hint", say("pair.hint"))
			c.send(protocol.Message{Type: protocol.TypeError, Code: protocol.ErrCodePairBusy, RefType: protocol.TypePairRequest, Text: "another phone is pairing with this terminal right now"})
			waitText(t, ctx, "#pair-error", say("pair.err.pair_busy"))
			screen("pairing-busy")

			// Home: the call log, and a terminal whose camera is gone.
			c, _ = pairPage(t, ctx, f, term)
			now := time.Now().In(cst)
			today := func(h, m int) time.Time { return time.Date(now.Year(), now.Month(), now.Day(), h, m, 0, 0, cst) }
			c.send(protocol.Message{Type: protocol.TypeCallLog, Calls: []protocol.CallRecord{
				{CallID: protocol.NewID(), Direction: protocol.DirFromTerminal, StartedAt: today(19, 2), EndedAt: today(19, 3), Outcome: protocol.OutcomeMissed},
				{CallID: protocol.NewID(), Direction: protocol.DirFromParent, StartedAt: today(8, 15), AnsweredAt: today(8, 15), EndedAt: today(8, 21), Outcome: protocol.OutcomeAnswered, Seen: true},
				{CallID: protocol.NewID(), Direction: protocol.DirFromTerminal, StartedAt: today(7, 0).AddDate(0, 0, -1), AnsweredAt: today(7, 0).AddDate(0, 0, -1), EndedAt: today(7, 0).AddDate(0, 0, -1).Add(25 * time.Second), Outcome: protocol.OutcomeAnswered, Seen: true},
				{CallID: protocol.NewID(), Direction: protocol.DirFromParent, StartedAt: time.Date(2026, 3, 28, 6, 0, 0, 0, cst), AnsweredAt: time.Date(2026, 3, 28, 6, 0, 0, 0, cst), EndedAt: time.Date(2026, 3, 28, 6, 0, 0, 0, cst), Outcome: protocol.OutcomeInterrupted, Seen: true},
			}})
			missed := say("log.from_child", "when", say("when.today", "time", "19:02"), "outcome", say("outcome.missed"))
			waitText(t, ctx, "#call-log li:nth-child(1)", missed)
			waitText(t, ctx, "#missed-summary", say("log.missed_summary", "when", say("when.today", "time", "19:02")))
			waitText(t, ctx, "#call-log li:nth-child(2)", say("log.from_parent", "when", say("when.today", "time", "08:15"),
				"outcome", say("log.with_length", "outcome", say("outcome.answered"), "length", say("length.minutes", "n", "6"))))
			waitText(t, ctx, "#call-log li:nth-child(3)", say("log.from_child", "when", say("when.yesterday", "time", "07:00"),
				"outcome", say("log.with_length", "outcome", say("outcome.answered"), "length", say("length.short"))))
			waitText(t, ctx, "#call-log li:nth-child(4)", say("log.from_parent", "when", say("when.date", "month", "3", "day", "28", "time", "06:00"),
				"outcome", say("outcome.interrupted")))
			c.send(protocol.Message{Type: protocol.TypePresence, PeerOnline: ptr(true), Health: protocol.HealthNeedsRepair, Faults: []string{protocol.FaultCamera}})
			waitText(t, ctx, "#presence-text", say("presence.needs_repair_parts", "parts", say("part.camera")))
			waitText(t, ctx, "#home-note", say("note.needs_repair"))
			waitText(t, ctx, "#alerts-status", say("alerts.status.off"))
			screen("home-needs-repair")

			// The parent calls all the same; the terminal cannot take it.
			click(t, ctx, "#call")
			id := c.expect(protocol.TypeRing).CallID
			c.send(protocol.Message{Type: protocol.TypeRinging, CallID: id})
			waitText(t, ctx, "#outgoing-status", say("outgoing.ringing"))
			screen("outgoing")
			c.send(protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonFailed})
			waitText(t, ctx, "#ended-title", say("ended.needs_repair"))
			waitText(t, ctx, "#ended-detail", say("detail.needs_repair"))
			screen("ended-needs-repair")
			waitState(t, ctx, "home")

			// Ready again; the child calls and gives up.
			c.send(protocol.Message{Type: protocol.TypePresence, PeerOnline: ptr(true), Health: protocol.HealthReady})
			waitText(t, ctx, "#presence-text", say("presence.ready"))
			ring := protocol.NewID()
			c.send(protocol.Message{Type: protocol.TypeRing, CallID: ring})
			waitState(t, ctx, "incoming")
			waitText(t, ctx, "#screen-incoming h2", say("incoming.title"))
			screen("incoming")
			c.send(protocol.Message{Type: protocol.TypeHangup, CallID: ring, Reason: protocol.ReasonCancel})
			waitText(t, ctx, "#ended-title", say("ended.missed"))
			waitText(t, ctx, "#ended-detail", say("detail.child_hung_up"))
			screen("ended-missed")
		})
	}
}

var (
	hanRune   = regexp.MustCompile(`\p{Han}`)
	latinRuns = regexp.MustCompile(`[A-Za-z]+`)
)

// checkOneLanguage fails unless text (what the page shows) is in lang
// alone: no Chinese on an English page; on a Chinese page no English word
// but units and a URL scheme.
func checkOneLanguage(t *testing.T, screen, lang, text string) {
	t.Helper()
	if strings.TrimSpace(text) == "" {
		t.Errorf("%s: the page shows no text", screen)
		return
	}
	switch lang {
	case "en":
		if hanRune.MatchString(text) {
			t.Errorf("%s: Chinese on the English page: %q", screen, text)
		}
	case "zh":
		if !hanRune.MatchString(text) {
			t.Errorf("%s: no Chinese on the Chinese page: %q", screen, text)
		}
		for _, w := range latinRuns.FindAllString(text, -1) {
			if !allowedLatin[w] {
				t.Errorf("%s: the English word %q on the Chinese page: %q", screen, w, text)
			}
		}
	}
}

// keepScreenshot saves what the phone shows as dir/name.png (and in
// $TUANJU_SCREENSHOTS, when set) and checks it is a real picture.
func keepScreenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	do(t, ctx, chromedp.Sleep(300*time.Millisecond)) // let transitions settle
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() < 300 {
		t.Fatalf("screenshot %s: %v (%v)", name, err, img)
	}
	name = strings.ReplaceAll(name, " ", "-")
	if err := os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if extra := os.Getenv("TUANJU_SCREENSHOTS"); extra != "" {
		if err := os.WriteFile(filepath.Join(extra, name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
