package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/databudget"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// seedUsage writes a month's usage into a fresh state file before the
// terminal starts on it.
func seedUsage(t *testing.T, path, month string, used int64) {
	t.Helper()
	s, err := terminalstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.AddDataUsage(month, used/2, used-used/2); err != nil {
		t.Fatal(err)
	}
}

// budgetOf waits for the parent's page to learn the terminal's budget:
// in its welcome, or in a presence after it.
func budgetOf(t *testing.T, ph *Phone) *protocol.Budget {
	t.Helper()
	if b := ph.Conn().Welcome.Budget; b != nil {
		return b
	}
	for {
		m := await(t, ph, protocol.TypePresence)
		if m.Budget != nil {
			return m.Budget
		}
	}
}

// TestCallAtSpentBudgetIsVoiceOnly: with the month's budget spent, the
// child's press still calls the parent, voice only, end to end: the
// "in call, voice only" light and its own connect sound, an offer with no
// video at all, no picture either way while the voices flow, and the
// parent told why (the budget, limit audio-only, until the month's end).
func TestCallAtSpentBudgetIsVoiceOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	path := filepath.Join(t.TempDir(), "terminal.db")
	const total = 100 * databudget.MB
	seedUsage(t, path, databudget.Month(time.Now()), total+1)
	r := startTerminal(t, ctx, srv, terminalOpts{statePath: path, dataBudget: total})
	cred := r.pair()
	if b := r.term.Status().Budget; !b.VoiceOnly || b.Limit != "audio-only" || b.UsedBytes != total+1 {
		t.Fatalf("terminal's budget %+v, want voice only at %d of %d", b, total+1, total)
	}
	ph := r.phone(cred, media.LowData)
	b := budgetOf(t, ph)
	if b.TotalBytes != total || b.UsedBytes != total+1 || b.Limit != protocol.LimitAudioOnly || !b.Until.Equal(databudget.MonthEnd(time.Now())) {
		t.Fatalf("the parent's page learns the budget %+v, want %d of %d, audio-only, until %v", b, total+1, total, databudget.MonthEnd(time.Now()))
	}

	offer := r.childCalls(t, ph)
	if strings.Contains(offer.SDP, "m=video") || !strings.Contains(offer.SDP, "m=audio") {
		t.Fatalf("the offer of a voice-only call:\n%s\nwant an audio section and no video", offer.SDP)
	}
	r.waitPattern(device.InCallVoice, "terminal shows in call, voice only")
	call := ph.Current()
	select {
	case <-call.Connected():
	case <-time.After(step):
		t.Fatal("phone's media never connected")
	}
	eventually(t, mediaWait, "both ends decode 3 s of each other's voice", func() bool {
		return call.Stats().AudioSamplesDecoded >= 3*media.AudioSampleRate &&
			r.term.Status().Received.AudioSamplesDecoded >= 3*media.AudioSampleRate
	})
	if ps, ts := call.Stats(), r.term.Status().Received; ps.VideoFramesDecoded != 0 || ps.VideoBytes != 0 || ts.VideoFramesDecoded != 0 {
		t.Errorf("pictures in a voice-only call: phone decoded %d frames (%d bytes), terminal %d", ps.VideoFramesDecoded, ps.VideoBytes, ts.VideoFramesDecoded)
	}
	if cue := r.board.State().Cue; cue != "connected_voice" {
		t.Errorf("the call's connect sound = %q, want connected_voice", cue)
	}
	if err := r.board.LongPress(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after hanging up")
	u, err := r.store.DataUsage()
	if err != nil || u.Total() <= total+1 {
		t.Errorf("usage after the voice call %+v, %v: want more than the %d before it", u, err, total+1)
	}
}

// TestCallBytesCountedThroughPowerCut: a call's bytes are counted (at
// least what the phone's transport carried, plus headers) and written
// while it lasts; a power cut mid-call (the state file as it is on disk
// at that moment: bbolt's commits are what a cut leaves) keeps every
// count but the last window's, and a terminal started on that file goes
// on from it.
func TestCallBytesCountedThroughPowerCut(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "terminal.db")
	const total = 500 * databudget.MB
	r := startTerminal(t, ctx, srv, terminalOpts{statePath: path, dataBudget: total, budgetFlush: time.Second})
	cred := r.pair()
	ph := r.phone(cred, media.LowData)
	r.childCalls(t, ph)
	r.waitPattern(device.InCall, "terminal shows in call")
	call := ph.Current()
	waitMedia(t, r, call)
	eventually(t, mediaWait, "a count written mid-call", func() bool { return r.term.Status().Budget.UsedBytes > 0 })
	seen := r.term.Status().Budget.UsedBytes

	// The power cut: the file as it is now, identity file beside it.
	cut := filepath.Join(t.TempDir(), "terminal.db")
	for _, f := range [][2]string{{path, cut}, {terminalstore.IdentityPath(path), terminalstore.IdentityPath(cut)}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A second's more media, then what the phone's transport carried.
	time.Sleep(time.Second) // not an assertion: more media to count
	phoneRx, phoneTx := call.WireBytes()
	if err := r.board.LongPress(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after hanging up")
	final, err := r.store.DataUsage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counted %d sent, %d received; the phone's transport %d received, %d sent (no IP/UDP headers)", final.Sent, final.Received, phoneRx, phoneTx)
	if final.Sent < int64(phoneRx) || final.Received < int64(phoneTx) {
		t.Errorf("the terminal counted %d sent / %d received, less than the phone's transport carried (%d / %d)", final.Sent, final.Received, phoneRx, phoneTx)
	}
	if final.Sent > int64(phoneRx)*3/2+200_000 || final.Received > int64(phoneTx)*3/2+200_000 {
		t.Errorf("the terminal counted %d sent / %d received, far more than the phone's transport carried (%d / %d)", final.Sent, final.Received, phoneRx, phoneTx)
	}
	if final.Month != databudget.Month(time.Now()) {
		t.Errorf("usage month %q, want this month", final.Month)
	}

	r.stop()
	s, err := terminalstore.Open(cut)
	if err != nil {
		t.Fatalf("the state file after the power cut: %v", err)
	}
	atCut, err := s.DataUsage()
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if atCut.Total() < seen || atCut.Total() >= final.Total() {
		t.Errorf("after the power cut %d bytes counted; want at least the %d written before it and less than the call's %d", atCut.Total(), seen, final.Total())
	}
	r2 := startTerminal(t, ctx, srv, terminalOpts{statePath: cut, dataBudget: total})
	if b := r2.term.Status().Budget; b.UsedBytes != atCut.Total() || b.TotalBytes != total {
		t.Errorf("a terminal started after the cut shows %+v, want %d of %d used", b, atCut.Total(), total)
	}
}

// TestBudgetMonthTurnsAtLocalMidnight: on a unit in Shanghai whose budget
// was spent in November, calls are voice only until midnight Beijing time
// on 1 December (16:00 UTC on 30 November), and full again from then, with
// nothing used, without a restart.
func TestBudgetMonthTurnsAtLocalMidnight(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Pointer[time.Time]
	before := time.Date(2026, 11, 30, 23, 59, 58, 0, sh)
	clock.Store(&before)
	now := func() time.Time { return *clock.Load() }
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	path := filepath.Join(t.TempDir(), "terminal.db")
	const total = 100 * databudget.MB
	seedUsage(t, path, "2026-11", total)
	r := startTerminal(t, ctx, srv, terminalOpts{statePath: path, dataBudget: total, now: now})
	if b := r.term.Status().Budget; !b.VoiceOnly || b.UsedBytes != total || b.Month != "2026-11" {
		t.Fatalf("on 30 November at 23:59 in Shanghai: %+v, want voice only, all used", b)
	}
	after := time.Date(2026, 12, 1, 0, 0, 1, 0, sh)
	if after.UTC().Day() != 30 {
		t.Fatal("the test's midnight is not still 30 November in UTC")
	}
	clock.Store(&after)
	eventually(t, step, "the new month frees the budget", func() bool {
		b := r.term.Status().Budget
		return !b.VoiceOnly && b.UsedBytes == 0 && b.Limit == "very-low" && b.Month == "2026-12" // 100 MB pays for an hour of very low, not of low
	})
}

// TestLimitCallMidway: the budget runs low during a call. It starts at
// low with 300 KB more left than low's reserve; once the call has used
// that (counted every second here), what the terminal sends steps down to
// very low at once — the phone decodes 160×120 pictures — as the next call
// would start. Before, a call kept its starting profile to its end, however
// long, and could spend a week's reserve.
func TestLimitCallMidway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	path := filepath.Join(t.TempDir(), "terminal.db")
	const total = 200 * databudget.MB
	used := total - databudget.Threshold(media.Low) - 300_000
	seedUsage(t, path, databudget.Month(time.Now()), used)
	r := startTerminal(t, ctx, srv, terminalOpts{statePath: path, dataBudget: total, budgetFlush: time.Second})
	cred := r.pair()
	if b := r.term.Status().Budget; b.Limit != media.Low.Name || b.VoiceOnly {
		t.Fatalf("terminal's budget %+v, want calls to start at low", b)
	}
	ph := r.phone(cred, media.LowData)
	r.childCalls(t, ph)
	r.waitPattern(device.InCall, "terminal shows in call")
	call := ph.Current()
	eventually(t, mediaWait, "the phone decodes the child's first pictures", func() bool { return call.Stats().VideoFramesDecoded >= 5 })
	if st := call.Stats(); st.VideoWidth != media.Low.Width {
		t.Fatalf("the call starts at %dx%d, want low's %d wide", st.VideoWidth, st.VideoHeight, media.Low.Width)
	}
	start := time.Now()
	eventually(t, mediaWait, "the phone decodes very low's pictures", func() bool {
		return call.Stats().VideoWidth == media.VeryLow.Width
	})
	b := r.term.Status().Budget
	if b.Limit != media.VeryLow.Name || b.UsedBytes <= used {
		t.Errorf("terminal's budget %+v after the step down, want very-low with more than %d used", b, used)
	}
	frames := call.Stats().VideoFramesDecoded
	eventually(t, step, "pictures go on at very low", func() bool { return call.Stats().VideoFramesDecoded > frames+10 })
	if st := call.Stats(); st.VideoWidth != media.VeryLow.Width {
		t.Errorf("the call went back to %dx%d under the budget's limit", st.VideoWidth, st.VideoHeight)
	}
	t.Logf("the call stepped down to very low %v after its media flowed (%d of %d bytes used)", time.Since(start).Round(100*time.Millisecond), b.UsedBytes, b.TotalBytes)
}
