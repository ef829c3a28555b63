package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/databudget"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// pageBudget is what the page shows of the budget (app.js's test hooks).
type pageBudget struct {
	Total   int64  `json:"total"`
	Used    int64  `json:"used"`
	Limit   string `json:"limit"`
	Until   string `json:"until"`
	Text    string `json:"text"`
	Visible bool   `json:"visible"`
}

// TestBrowserShowsSpentBudget: the parent's page (Chromium, in Chinese)
// shows the terminal's budget — used of total, until when — and that calls
// are voice only because it is spent; the child's call then reaches the
// page voice only: the page says why in the call, hears the child, and no
// picture goes either way.
func TestBrowserShowsSpentBudget(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	path := filepath.Join(t.TempDir(), "terminal.db")
	const total = 200 * databudget.MB
	seedUsage(t, path, databudget.Month(time.Now()), total+3*databudget.MB)
	r := startTerminal(t, ctx, rendezvoustest.NewServer(t, nil), terminalOpts{statePath: path, dataBudget: total})
	page := pairBrowser(t, r, browsertest.Languages("zh-CN,zh"))

	var b pageBudget
	eventually(t, step, "the page shows the budget", func() bool {
		var err error
		b, err = chromedp.Run(page, chromedp.Evaluate[pageBudget](`(() => { const b = window.tuanju.budget || {};
			return {...b, visible: !document.getElementById('budget').hidden}; })()`))
		return err == nil && b.Visible && b.Total == total
	})
	end := databudget.MonthEnd(time.Now())
	until := fmt.Sprintf("%d月%d日", int(end.Month()), end.Day())
	for _, want := range []string{"本月流量已用完", "已用 203 MB，共 200 MB", until, "只有声音"} {
		if !strings.Contains(b.Text, want) {
			t.Errorf("the page's budget says %q; lacks %q", b.Text, want)
		}
	}
	if b.Used != total+3*databudget.MB || b.Limit != "audio-only" || b.Until != end.Format("2006-01-02") {
		t.Errorf("the page's budget %+v, want %d used, audio-only, until %s", b, total+3*databudget.MB, end.Format("2006-01-02"))
	}

	browserAnswersChild(t, r, page)
	r.waitPattern(device.InCallVoice, "terminal in a voice-only call")
	if err := browsertest.WaitStateFor(page, "call", step); err != nil {
		t.Fatal(err)
	}
	eventually(t, mediaWait, "the page hears the child and the terminal the page", func() bool {
		st, err := browsertest.Stats(page)
		return err == nil && st.Audio.TotalSamplesReceived >= 48000 && r.term.Status().Received.AudioSamplesDecoded >= 16000
	})
	note, err := chromedp.Run(page, chromedp.Evaluate[string](`(() => { const e = document.getElementById('call-budget'); return e.hidden ? '' : e.textContent; })()`))
	if err != nil || note != "本月流量快用完了，这次通话只有声音。" {
		t.Errorf("in the call the page says %q (%v), want why it is voice only", note, err)
	}
	st, err := browsertest.Stats(page)
	if err != nil {
		t.Fatal(err)
	}
	if st.Video.FramesDecoded != 0 || st.Video.BytesReceived != 0 || r.term.Status().Received.VideoFramesDecoded != 0 {
		t.Errorf("pictures in a voice-only call: page decoded %d frames (%d bytes), terminal %d", st.Video.FramesDecoded, st.Video.BytesReceived, r.term.Status().Received.VideoFramesDecoded)
	}
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#hangup"))); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after the page hangs up")
}
