package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/simboard"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/autoanswer"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// quickButton shortens the long press; quickReset the power-up reset
// gesture (arm after 0.6 s held, three presses within 5 s, 0.6 s of quiet).
var (
	quickButton = device.ButtonOpts{LongPress: 300 * time.Millisecond, StuckAfter: 5 * time.Second}
	quickReset  = device.ResetOpts{Arm: 600 * time.Millisecond, Window: 5 * time.Second, Quiet: 600 * time.Millisecond}
)

// resetFinger is the factory-reset gesture: the button held while the unit
// powers up until the reset-armed light, let go, then pressed three times.
// (Sleeps between presses are the finger's pace, not timing assertions.)
func resetFinger(t testing.TB, ctx context.Context, presses int) func(*simboard.Board) {
	return func(b *simboard.Board) {
		t.Helper()
		eventually(t, step, "the unit shows the reset-armed light and plays the reset sound while held at power-up", func() bool {
			st := b.State()
			return st.Pattern == device.ResetArmed && st.Cue == "reset"
		})
		if err := b.Release(); err != nil {
			t.Fatal(err)
		}
		eventually(t, step, "the button reads released", func() bool { return !b.Button().Pressed() })
		for range presses {
			if err := b.Press(ctx); err != nil {
				t.Fatal(err)
			}
			eventually(t, step, "the button reads released", func() bool { return !b.Button().Pressed() })
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// resetAtPowerUp powers the unit down and up again with the reset gesture,
// on the same state file, and returns the new rig. online: wait for the
// restarted terminal to reach the server.
func (r *rig) resetAtPowerUp(online bool) *rig {
	r.t.Helper()
	r.stop()
	o := r.opts
	o.atPowerUp, o.resetOpts, o.refused = resetFinger(r.t, r.ctx, 3), quickReset, !online
	// The unit stayed unplugged for longer than terminal.RecentCall: no
	// reset is accepted within a minute of a call (TestBootReset).
	o.resetClock = func() time.Time { return time.Now().Add(terminal.RecentCall) }
	n := startTerminal(r.t, r.ctx, r.srv, o)
	if !n.bootReset {
		r.t.Fatal("the reset gesture at power-up did not reset the unit")
	}
	eventually(r.t, step, "the reset erased the pairing", func() bool {
		_, err := n.store.Parent()
		return errors.Is(err, terminalstore.ErrNotPaired) && !n.term.Status().Paired
	})
	return n
}

// TestFactoryResetWithParentOnline: the power-up reset gesture erases the terminal's
// pairing and call log, the parent's open page is told and cut off, its
// token is dead, the terminal shows "pairable", a new parent pairs inside
// the new window, and the server's audit log has it all.
func TestFactoryResetWithParentOnline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	r := startTerminal(t, ctx, srv, terminalOpts{button: quickButton})
	old := r.pair()
	ph := r.phone(old, media.LowData)
	// One call for the logs: the phone declines.
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	ring := await(t, ph, protocol.TypeRing)
	if err := ph.Hangup(r.ctx, ring.CallID, protocol.ReasonDecline); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the call is in the terminal's log", func() bool {
		calls, _ := r.store.Calls(10)
		return len(calls) == 1
	})
	r.waitIdle("terminal idle after the call")

	r = r.resetAtPowerUp(true)
	m := await(t, ph, protocol.TypeUnpaired)
	if m.DeviceID != r.term.DeviceID() {
		t.Errorf("unpaired names %q, want %q", m.DeviceID, r.term.DeviceID())
	}
	eventually(t, step, "the old parent's page is disconnected", func() bool {
		select {
		case _, ok := <-ph.Events():
			return !ok
		default:
			return false
		}
	})
	r.waitPattern(device.Pairable, "terminal shows pairable after the reset")
	if calls, err := r.store.Calls(10); err != nil || len(calls) != 0 {
		t.Errorf("terminal call log after reset = %+v, %v; want empty", calls, err)
	}
	eventually(t, step, "the server confirms and the pending unpair clears", func() bool {
		p, err := r.store.UnpairPending()
		return err == nil && !p
	})
	ctx2, cancel2 := context.WithTimeout(r.ctx, step)
	defer cancel2()
	if _, err := rendezvoustest.DialPaired(ctx2, srv.WSURL, old); err == nil {
		t.Fatal("the old parent's credential still logs in after the reset")
	}

	// A new parent pairs inside the window the reset opened.
	cred := r.pair()
	if cred.ParentID == old.ParentID {
		t.Fatal("new pairing reused the old parent ID")
	}
	want := []string{"paired " + old.ParentID, "factory_reset " + old.ParentID, "paired " + cred.ParentID}
	if events := auditEvents(t, srv); !slices.Equal(events, want) {
		t.Errorf("audit log %q, want %q", events, want)
	}
}

// TestFactoryResetWhileServerUnreachable: a reset made offline is kept as a
// pending unpair and sent on the next login, before anything else; the
// server then drops the pairing and the old token.
func TestFactoryResetWhileServerUnreachable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	proxy := newProxy(t, srv.URL)
	r := startTerminal(t, ctx, srv, terminalOpts{wsURL: proxy.wsURL(), button: quickButton})
	old := r.pair()
	proxy.cut()
	r.waitPattern(device.Offline, "terminal offline")
	r = r.resetAtPowerUp(false)
	if p, err := r.store.UnpairPending(); err != nil || !p {
		t.Fatalf("pending unpair after an offline reset = %v, %v; want true", p, err)
	}
	if _, err := srv.Registry().ParentOf(r.term.DeviceID()); err != nil {
		t.Fatalf("server lost the pairing before hearing of the reset: %v", err)
	}
	proxy.restore()
	eventually(t, step, "the server drops the pairing once the terminal is back", func() bool {
		_, err := srv.Registry().ParentOf(r.term.DeviceID())
		return errors.Is(err, rendezvous.ErrNotFound)
	})
	eventually(t, step, "the pending unpair clears", func() bool {
		p, err := r.store.UnpairPending()
		return err == nil && !p
	})
	r.waitPattern(device.Pairable, "terminal pairable after reconnecting")
	ctx2, cancel2 := context.WithTimeout(r.ctx, step)
	defer cancel2()
	if _, err := rendezvoustest.DialPaired(ctx2, srv.WSURL, old); err == nil {
		t.Fatal("the old parent's credential still logs in after the reset reached the server")
	}
}

// patternWatch records every light pattern the board shows while it runs.
type patternWatch struct {
	mu   sync.Mutex
	seen []device.Pattern
	stop func()
}

func watchPatterns(r *rig) *patternWatch {
	w := &patternWatch{}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			p := r.board.State().Pattern
			w.mu.Lock()
			if len(w.seen) == 0 || w.seen[len(w.seen)-1] != p {
				w.seen = append(w.seen, p)
			}
			w.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	w.stop = func() { cancel(); <-done }
	return w
}

// TestPairingOutsideWindowRefused: once the window has closed, a pairing
// request with the right secret is refused with not_pairable, and the
// terminal shows and plays nothing for it; a hold reopens the window.
func TestPairingOutsideWindowRefused(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	r := startTerminal(t, ctx, srv, terminalOpts{pairWindow: 1500 * time.Millisecond, button: quickButton})
	r.waitPattern(device.Ready, "the boot window closes and the terminal shows ready")
	if r.term.Status().Pairable {
		t.Fatal("status says pairable after the window closed")
	}
	cueBefore := r.term.Status().LastCue
	w := watchPatterns(r)
	pctx, pcancel := context.WithTimeout(r.ctx, step)
	defer pcancel()
	_, err := rendezvoustest.PairLink(pctx, srv.WSURL, r.term.PairingURL(), nil)
	w.stop()
	var refused *rendezvoustest.RefusedError
	if !asRefused(err, &refused) || refused.Code != protocol.ErrCodePairRejected || refused.Text != "not_pairable" {
		t.Fatalf("pairing outside the window: err = %v, want pair_rejected not_pairable", err)
	}
	if !slices.Equal(w.seen, []device.Pattern{device.Ready}) {
		t.Errorf("lights during the refused request: %q, want only ready", w.seen)
	}
	if c := r.term.Status().LastCue; c != cueBefore {
		t.Errorf("a sound (%q) played for a refused request", c)
	}
	if _, err := srv.Registry().ParentOf(r.term.DeviceID()); err == nil {
		t.Fatal("refused request paired the terminal")
	}
	// A hold opens the window again, and the same link now pairs.
	r.pair()
}

// TestPairingBruteForce: a stranger guesses the label secret from another
// network, 25 times inside one pairing window. The terminal counts wrong
// proofs per source: the stranger's first PairFailuresPerSource are refused
// as bad_secret, the rest as not_pairable; nothing is accepted, and the
// window stays open for the real parent, who then pairs. Before sources were
// counted, the stranger's 20th wrong proof shut the window and the real
// parent was refused.
func TestPairingBruteForce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, func(c *rendezvous.Config) {
		// The server's own rate limits would stop this at 5 a minute, and
		// its count of wrong proofs per network at 3; here the terminal's
		// window is under test.
		c.PairRequestsPerMinutePerDevice, c.PairRequestsPerMinutePerIP = 1000, 1000
		c.Limits.PairFailuresPerSource = 1000
	})
	r := startTerminal(t, ctx, srv, terminalOpts{})
	r.waitPattern(device.Pairable, "fresh terminal is pairable")
	dev := r.term.DeviceID()
	// The stranger's network: 127.0.1.0/24 (the parent is on 127.0.0.1).
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.1.7")}}
	stranger := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	try := func(secret pairing.Secret) string {
		t.Helper()
		c, cancel := context.WithTimeout(r.ctx, step)
		defer cancel()
		page, err := rendezvoustest.DialVia(c, srv.WSURL, stranger)
		if err != nil {
			t.Fatal(err)
		}
		defer page.Close()
		if err := page.LoginPairing(c); err != nil {
			t.Fatal(err)
		}
		h, err := pairing.StartParent(secret, dev)
		if err != nil {
			t.Fatal(err)
		}
		req := h.Request()
		if err := page.Send(c, protocol.Message{Type: protocol.TypePairRequest, DeviceID: dev, Nonce: req.Nonce,
			EphemeralKey: req.EphemeralKey, Proof: req.Proof}); err != nil {
			t.Fatal(err)
		}
		m, err := page.Recv(c)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != protocol.TypeError || m.Code != protocol.ErrCodePairRejected {
			t.Fatalf("pairing attempt answered %+v, want a pair_rejected error", m)
		}
		return m.Text
	}
	counts := map[string]int{}
	for range 25 {
		counts[try(pairing.NewSecret())]++
	}
	want := map[string]int{"bad_secret": terminal.PairFailuresPerSource, "not_pairable": 25 - terminal.PairFailuresPerSource}
	if len(counts) != len(want) || counts["bad_secret"] != want["bad_secret"] || counts["not_pairable"] != want["not_pairable"] {
		t.Errorf("answers %v, want %v", counts, want)
	}
	if _, err := srv.Registry().ParentOf(dev); err == nil {
		t.Fatal("brute force paired the terminal")
	}
	if !r.term.Status().Pairable {
		t.Fatal("the stranger's guesses closed the pairing window for the real parent")
	}
	// The real parent, with the label, from its own network: pairs.
	r.pair()
	t.Logf("a stranger's guesses per window: %d answered, 0 accepted; the real parent paired after them", counts["bad_secret"])
}

// reunionRig is a paired terminal whose clock reads Saturday 19:30 local
// time and whose only reunion window is "Sat 19:00-20:00" or, for
// outside, "Sun 19:00-20:00".
func reunionRig(t *testing.T, inside bool) (*rig, *gateLog) {
	t.Helper()
	spec := "Sun 19:00-20:00"
	if inside {
		spec = "Sat 19:00-20:00"
	}
	sched, err := autoanswer.ParseSchedule([]string{spec})
	if err != nil {
		t.Fatal(err)
	}
	sat := time.Date(2026, 11, 28, 19, 30, 0, 0, time.Local)
	g := &gateLog{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	r := startTerminal(t, ctx, srv, terminalOpts{
		autoAnswer: terminal.AutoAnswer{Windows: sched, Delay: 3 * time.Second},
		now:        func() time.Time { return sat },
		logTo:      &g.log,
		speaker:    func(s terminal.Speaker) terminal.Speaker { return gateSpeaker{s, g, &g.voice} },
		onCaptureOpen: func(media.CaptureConfig) {
			st := g.board()
			g.add("open lights=" + string(st.Pattern) + " blue=" + map[bool]string{true: "true", false: "false"}[st.LEDs[device.Blue]])
		},
	})
	g.board = r.board.State
	return r, g
}

// TestAutoAnswerInsideReunionWindow: the parent's ring inside the window
// rings (light and sound) for the configured delay, then is answered
// without a press, through the connect sound and the media gate.
func TestAutoAnswerInsideReunionWindow(t *testing.T) {
	r, g := reunionRig(t, true)
	ph := r.phone(r.pair(), media.LowData)
	callID, err := ph.Ring(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	await(t, ph, protocol.TypeRinging)
	rangAt := time.Now()
	r.waitPattern(device.Ringing, "terminal rings first")
	acc := await(t, ph, protocol.TypeAccept)
	// A lower bound, not a timing assertion: the answer may not come
	// before the ring has played its delay.
	if waited := time.Since(rangAt); acc.CallID != callID || waited < 3*time.Second-100*time.Millisecond {
		t.Fatalf("accept for %s after %v of ringing, want %s after ≥ 3 s", acc.CallID, waited, callID)
	}
	await(t, ph, protocol.TypeOffer)
	events := g.opened(t)
	if ring := slices.Index(events, "cue ring"); ring < 0 || ring > slices.Index(events, "cue-start connected") {
		t.Fatalf("the ring sound did not play before the answer: %q", events)
	}
	checkAnnounced(t, events)
	r.waitPattern(device.InCall, "in call, answered by the reunion window")
}

// TestNoAutoAnswerOutsideReunionWindow: the same ring outside the window
// rings until the parent gives up; nothing opens.
func TestNoAutoAnswerOutsideReunionWindow(t *testing.T) {
	r, g := reunionRig(t, false)
	ph := r.phone(r.pair(), media.LowData)
	callID, err := ph.Ring(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ringing, "terminal rings")
	// The loop logs its decision as it takes the ring: proof it was taken.
	eventually(t, step, "the terminal took the ring", func() bool { return g.log.Has("ring from the paired parent", "call_id="+callID) })
	if !g.log.Has("ring from the paired parent", "call_id="+callID, "auto_answer_after=0s") {
		t.Fatalf("outside the window the ring was set to be answered by itself:\n%s", g.log.String())
	}
	time.Sleep(3*time.Second + time.Second) // and no answer came where one would have
	if st := r.term.Status(); st.State != "ringing" {
		t.Fatalf("outside the window the terminal is %q, want still ringing", st.State)
	}
	if err := ph.Hangup(r.ctx, callID, protocol.ReasonCancel); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "ready after the parent gave up")
	for _, e := range g.list() {
		if strings.HasPrefix(e, "open ") || e == "cue-start connected" {
			t.Fatalf("outside the window the call was answered: %q", g.list())
		}
	}
}

// TestBrowserShowsResetAndDropsCredential: the parent's real page (headless
// Chromium) hears of the factory reset, deletes its credential and says the
// terminal was reset.
func TestBrowserShowsResetAndDropsCredential(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	r := startTerminal(t, ctx, srv, terminalOpts{button: quickButton})
	page := pairBrowser(t, r)
	r.resetAtPowerUp(true)
	eventually(t, step, "the page reports the reset and forgets its credential", func() bool {
		ok, err := chromedp.Run(page, chromedp.Evaluate[bool](
			`window.tuanju.lastError === 'unpaired' && localStorage.getItem('tuanju.credential') === null`))
		return err == nil && ok
	})
	text, err := chromedp.Run(page, chromedp.Evaluate[string](`document.getElementById('pair-error').textContent`))
	if err != nil || !strings.Contains(text, "This terminal was reset") {
		t.Errorf("page says %q (%v), want the reset explained", text, err)
	}
}

// TestLongHoldInCallNeverResets is the accident the reset gesture replaced:
// a child in a call holds the button, the long press hangs up, and the
// child keeps holding for over 10 s. The unit stays paired, tells the
// server nothing, and the same parent can be called again. The same gesture
// at power-up without the three confirming presses keeps the pairing too.
func TestLongHoldInCallNeverResets(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	// The default stuck threshold is 60 s; 20 s keeps "needs repair" out
	// of a 10.5 s hold.
	r := startTerminal(t, ctx, srv, terminalOpts{button: device.ButtonOpts{LongPress: 300 * time.Millisecond, StuckAfter: 20 * time.Second}})
	cred := r.pair()
	ph := r.phone(cred, media.LowData)
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	ring := await(t, ph, protocol.TypeRing)
	if err := ph.Accept(r.ctx, ring.CallID); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.InCall, "in call")
	if err := r.board.Hold(); err != nil {
		t.Fatal(err)
	}
	await(t, ph, protocol.TypeHangup)    // the long press hung up
	time.Sleep(10500 * time.Millisecond) // the child keeps holding, over 10 s
	if err := r.board.Release(); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the button reads released", func() bool { return !r.board.Button().Pressed() })
	time.Sleep(500 * time.Millisecond) // any reset would have happened on the release
	if _, err := r.store.Parent(); err != nil {
		t.Fatalf("a 10.5 s hold in a call erased the pairing: %v", err)
	}
	if p, _ := r.store.UnpairPending(); p || !r.term.Status().Paired {
		t.Fatalf("after the hold: unpair pending %v, paired %v; want false, true", p, r.term.Status().Paired)
	}
	if _, err := srv.Registry().ParentOf(r.term.DeviceID()); err != nil {
		t.Fatalf("the server lost the pairing: %v", err)
	}
	r.waitIdle("idle after the hold")

	// Power-up with the button held, let go at the light, no presses.
	r.stop()
	o := r.opts
	o.atPowerUp, o.resetOpts = resetFinger(t, r.ctx, 0), quickReset
	r = startTerminal(t, ctx, srv, o)
	if r.bootReset {
		t.Fatal("held at power-up and let go without the confirming presses, the unit reset")
	}
	if _, err := r.store.Parent(); err != nil || !r.term.Status().Paired {
		t.Fatalf("the unit lost its pairing: %v", err)
	}
	// The same parent still rings the child.
	ph = r.phone(cred, media.LowData)
	if _, err := ph.Ring(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ringing, "the parent can still ring the child")
}
