package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Five seconds of the low-data profile: 15 fps video, 48 kHz audio.
const (
	minFrames  = 5 * 15
	minSamples = 5 * media.AudioSampleRate
	mediaWait  = 60 * time.Second
)

// waitMedia waits until both ends decoded five seconds of each other's media.
func waitMedia(t testing.TB, r *rig, call *PhoneCall) {
	t.Helper()
	select {
	case <-call.Connected():
	case <-time.After(step):
		t.Fatal("phone's media never connected")
	}
	defer func() {
		if t.Failed() { // what the phone and terminal had decoded when it gave up
			ps, ts := call.Stats(), r.term.Status().Received
			t.Logf("phone decoded: %d frames (%d key), %d video bytes; audio %+v", ps.VideoFramesDecoded, ps.VideoKeyFrames, ps.VideoBytes, audioStats(ps))
			t.Logf("terminal decoded: %d frames; audio %+v", ts.VideoFramesDecoded, audioStats(ts))
		}
	}()
	eventually(t, mediaWait, "phone decodes ≥5 s of the terminal's H.264 and Opus", func() bool {
		s := call.Stats()
		return s.VideoFramesDecoded >= minFrames && s.AudioSamplesDecoded >= minSamples
	})
	eventually(t, mediaWait, "terminal decodes ≥5 s of the phone's H.264 and Opus", func() bool {
		s := r.term.Status().Received
		return s.VideoFramesDecoded >= minFrames && s.AudioSamplesDecoded >= minSamples
	})
	ps, ts := call.Stats(), r.term.Status().Received
	t.Logf("phone received: %d frames %dx%d (%d key), %d audio samples, %d video bytes", ps.VideoFramesDecoded,
		ps.VideoWidth, ps.VideoHeight, ps.VideoKeyFrames, ps.AudioSamplesDecoded, ps.VideoBytes)
	t.Logf("terminal received: %d frames %dx%d, %d audio samples", ts.VideoFramesDecoded, ts.VideoWidth, ts.VideoHeight, ts.AudioSamplesDecoded)
	if ps.VideoWidth != media.LowData.Width || ps.VideoHeight != media.LowData.Height {
		t.Errorf("phone decoded %dx%d, want the low-data profile's %dx%d", ps.VideoWidth, ps.VideoHeight, media.LowData.Width, media.LowData.Height)
	}
}

// audioStats is the audio half of a receiver's stats, for a failure's log.
func audioStats(s media.Stats) string {
	return fmt.Sprintf("%d packets %d B, samples: %d decoded %d concealed %d comfort noise, %d late, %d errors, delay %v",
		s.AudioPackets, s.AudioBytes, s.AudioSamplesDecoded, s.AudioSamplesConcealed, s.AudioSamplesComfortNoise,
		s.AudioPacketsLate, s.AudioDecodeErrors, s.AudioDelay)
}

// TestChildCallsParent is the heart of the product: a press on the
// terminal's button rings the parent's phone; answering gives a two-way call;
// a long press hangs up.
func TestChildCallsParent(t *testing.T) {
	r := newRig(t, nil)
	cred := r.pair()
	ph := r.phone(cred, media.LowData)

	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Calling, "terminal shows calling after a press")
	ring := await(t, ph, protocol.TypeRing)
	if len(ring.ICEServers) == 0 {
		t.Error("ring carries no TURN servers: a phone behind CGNAT could not connect")
	}
	if err := ph.Accept(r.ctx, ring.CallID); err != nil {
		t.Fatal(err)
	}
	await(t, ph, protocol.TypeOffer)
	call := ph.Current()
	if call == nil || call.ID != ring.CallID {
		t.Fatalf("phone has no call for %s after the offer", ring.CallID)
	}
	r.waitPattern(device.InCall, "terminal shows in call")
	waitMedia(t, r, call)
	if cue := r.board.State().Cue; cue != "connected" {
		t.Errorf("last sound cue in the call = %q, want connected", cue)
	}
	if img := r.term.Screen(); img == nil || img.Bounds().Dx() != 320 || img.Bounds().Dy() != 240 {
		t.Errorf("terminal's screen shows %v, want the parent's 320x240 picture", img)
	}

	// A short press during the call does nothing harmful.
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.term.Status(); s.State != "in_call" {
		t.Fatalf("a short press in a call changed the state to %s", s.State)
	}
	// A long press always hangs up.
	if err := r.board.LongPress(r.ctx); err != nil {
		t.Fatal(err)
	}
	h := await(t, ph, protocol.TypeHangup)
	if h.CallID != ring.CallID || h.Reason != protocol.ReasonHangup {
		t.Errorf("phone got hangup %+v, want call %s reason hangup", h, ring.CallID)
	}
	r.waitPattern(device.Ready, "terminal ready after hanging up")
	if cue := r.board.State().Cue; cue != "hangup" {
		t.Errorf("sound cue after hanging up = %q, want hangup", cue)
	}
	if r.term.Screen() != nil {
		t.Error("the terminal's screen still shows the parent after the call")
	}

	log := await(t, ph, protocol.TypeCallLog)
	if len(log.Calls) == 0 || log.Calls[0].CallID != ring.CallID || log.Calls[0].Outcome != protocol.OutcomeAnswered {
		t.Errorf("parent's call log after the call = %+v, want %s answered first", log.Calls, ring.CallID)
	}
	calls, err := r.store.Calls(10)
	if err != nil || len(calls) != 1 || calls[0].CallID != ring.CallID || !calls[0].Outgoing || calls[0].Outcome != protocol.OutcomeAnswered {
		t.Errorf("terminal's call log = %+v, %v; want one answered outgoing call", calls, err)
	}
}

// TestParentCallsChild: the parent rings, the terminal rings, a press answers.
func TestParentCallsChild(t *testing.T) {
	r := newRig(t, nil)
	cred := r.pair()
	ph := r.phone(cred, media.LowData)

	callID, err := ph.Ring(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	await(t, ph, protocol.TypeRinging)
	r.waitPattern(device.Ringing, "terminal rings")
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	await(t, ph, protocol.TypeAccept)
	await(t, ph, protocol.TypeOffer)
	call := ph.Current()
	if call == nil || call.ID != callID {
		t.Fatalf("phone has no call %s after the offer", callID)
	}
	waitMedia(t, r, call)

	// The parent hangs up; the terminal goes back to ready by itself.
	if err := ph.Hangup(r.ctx, callID, protocol.ReasonHangup); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after the parent hung up")
}

// TestLongPressDeclines: a long press on a ringing terminal declines.
func TestLongPressDeclines(t *testing.T) {
	r := newRig(t, nil)
	ph := r.phone(r.pair(), media.LowData)
	callID, err := ph.Ring(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ringing, "terminal rings")
	if err := r.board.LongPress(r.ctx); err != nil {
		t.Fatal(err)
	}
	h := await(t, ph, protocol.TypeHangup)
	if h.CallID != callID || h.Reason != protocol.ReasonDecline {
		t.Errorf("phone got %+v, want decline of %s", h, callID)
	}
	r.waitPattern(device.Ready, "terminal ready after declining")
}

// TestParentDeclinesShowsNoAnswer: the child sees "no answer" and the
// terminal returns to ready by itself.
func TestParentDeclinesShowsNoAnswer(t *testing.T) {
	r := newRig(t, nil)
	ph := r.phone(r.pair(), media.LowData)
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	ring := await(t, ph, protocol.TypeRing)
	if err := ph.Hangup(r.ctx, ring.CallID, protocol.ReasonDecline); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.NoAnswer, "terminal shows no answer")
	r.waitPattern(device.Ready, "terminal back to ready after showing no answer")
}

// TestMissedCallWhileParentOffline: the child calls while the parent's phone
// is offline and cannot be woken (no push subscription, no number): the
// child sees and hears at once that the parent cannot be reached (not
// "calling", not "no answer"); the parent sees the missed call when they
// come online.
func TestMissedCallWhileParentOffline(t *testing.T) {
	r := newRig(t, nil)
	cred := r.pair()
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Unreachable, "terminal shows the parent cannot be reached")
	if cue := r.board.State().Cue; cue != "unreachable" {
		t.Errorf("sound %q, want unreachable", cue)
	}
	r.waitPattern(device.Ready, "and is ready again a few seconds later")

	ctx, cancel := context.WithTimeout(r.ctx, step)
	defer cancel()
	conn, err := rendezvoustest.DialPaired(ctx, r.srv.WSURL, cred)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	log, err := conn.Expect(ctx, protocol.TypeCallLog)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Calls) != 1 || log.Calls[0].Outcome != protocol.OutcomeMissed || log.Calls[0].Direction != protocol.DirFromTerminal || log.Calls[0].Seen {
		t.Fatalf("call log = %+v, want one unseen missed call from the terminal", log.Calls)
	}
}

// TestUnpairedTerminalReachesNobody: a press on an unpaired terminal rings no
// one and shows "no answer"; it stays unpaired.
func TestUnpairedTerminalReachesNobody(t *testing.T) {
	r := newRig(t, nil)
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.NoAnswer, "unpaired terminal shows no answer")
	r.waitIdle("and goes back to idle (pairable: it is unpaired)")
	if s := r.term.Status(); s.Paired || s.PairingURL == "" {
		t.Errorf("status after press = %+v, want unpaired with a pairing URL", s)
	}
}

// TestSecondParentCannotPair: once paired, a second phone with the same
// pairing link is refused and the first pairing stays.
func TestSecondParentCannotPair(t *testing.T) {
	r := newRig(t, nil)
	first := r.pair()
	ctx, cancel := context.WithTimeout(r.ctx, step)
	defer cancel()
	_, err := rendezvoustest.PairLink(ctx, r.srv.WSURL, r.term.PairingURL(), nil)
	var refused *rendezvoustest.RefusedError
	if !asRefused(err, &refused) || refused.Code != protocol.ErrCodeAlreadyPaired {
		t.Fatalf("second pairing err = %v, want already_paired", err)
	}
	if s := r.term.Status(); s.ParentID != first.ParentID || s.State != "idle" {
		t.Errorf("terminal after a refused second pairing = %+v", s)
	}
	// The first parent still works.
	conn, err := rendezvoustest.DialPaired(ctx, r.srv.WSURL, first)
	if err != nil {
		t.Fatalf("first parent cannot log in after the refused pairing: %v", err)
	}
	conn.Close()
}

// TestReconnectsAfterNetworkLoss: the terminal shows "offline" while the
// server is unreachable, then reconnects by itself and is ready again.
func TestReconnectsAfterNetworkLoss(t *testing.T) {
	srvRig := newRig(t, nil)
	proxy := newProxy(t, srvRig.srv.URL)
	r := startTerminal(t, srvRig.ctx, srvRig.srv, terminalOpts{wsURL: proxy.wsURL()})
	proxy.cut()
	r.waitPattern(device.Offline, "terminal shows offline when the link is cut")
	proxy.restore()
	r.waitIdle("terminal reconnects and is idle by itself")
}

// TestStuckButtonShowsNeedsRepair: a button held far longer than any child
// would (a jammed key) makes the terminal show "needs repair"; freeing it
// brings the terminal back to ready by itself.
func TestStuckButtonShowsNeedsRepair(t *testing.T) {
	srvRig := newRig(t, nil)
	r := startTerminal(t, srvRig.ctx, srvRig.srv, terminalOpts{button: device.ButtonOpts{
		LongPress: 300 * time.Millisecond, StuckAfter: time.Second}})
	if err := r.board.Hold(); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Fault, "a stuck button shows needs-repair")
	if err := r.board.Release(); err != nil {
		t.Fatal(err)
	}
	r.waitIdle("freed button: idle again")
}

// TestCallThatCannotConnectEndsCleanly: when no media path exists (here the
// TURN relay refuses the peers, and both sides may use only the relay) the
// terminal gives up after its connect timeout, tells the phone, and is ready
// for the next press — its loop must not hang on the half-open call.
func TestCallThatCannotConnectEndsCleanly(t *testing.T) {
	r := newRig(t, func(c *rendezvous.Config) {
		c.ICETransportPolicy = "relay"
		c.TURN.AllowPeers = nil // production policy: loopback peers refused
	})
	ph := r.phone(r.pair(), media.LowData)
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	ring := await(t, ph, protocol.TypeRing)
	if err := ph.Accept(r.ctx, ring.CallID); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.InCall, "terminal opens media after the answer")
	eventually(t, call.ConnectTimeout+step, "terminal gives up on the call that cannot connect", func() bool {
		return r.board.State().Pattern == device.Ready
	})
	h := await(t, ph, protocol.TypeHangup)
	if h.CallID != ring.CallID || h.Reason != protocol.ReasonFailed {
		t.Errorf("phone got %+v, want hangup failed for %s", h, ring.CallID)
	}
	// The terminal still answers its button.
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	if again := await(t, ph, protocol.TypeRing); again.CallID == ring.CallID {
		t.Errorf("second press reused call ID %s", again.CallID)
	}
}

// TestRepairAfterServerLostPairing: the rendezvous server lost its registry
// (a new, empty server) while the terminal still holds its parent. The
// terminal keeps its parent — it never drops one on the server's word, or a
// compromised server could clear it and let a stranger pair (issue 9) — so
// the repair is the deliberate one: the factory-reset gesture on the unit,
// then a press-confirmed pairing, after which the child can call again.
func TestRepairAfterServerLostPairing(t *testing.T) {
	state := filepath.Join(t.TempDir(), "terminal.db")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	old := startTerminal(t, ctx, rendezvoustest.NewServer(t, nil), terminalOpts{statePath: state})
	oldCred := old.pair()
	old.stop()

	r := startTerminal(t, ctx, rendezvoustest.NewServer(t, nil), terminalOpts{statePath: state})
	if s := r.term.Status(); !s.Paired || s.ParentID != oldCred.ParentID || s.Pairable {
		t.Fatalf("terminal on a server without its pairing: %+v; want its parent %s kept and no pairing window", s, oldCred.ParentID)
	}
	r = r.resetAtPowerUp(true)
	cred := r.pair()
	if cred.ParentID == oldCred.ParentID {
		t.Fatal("new server reused the old parent ID")
	}
	p, err := r.store.Parent()
	if err != nil || p.ParentID != cred.ParentID {
		t.Fatalf("stored parent = %+v, %v; want the new %s", p, err, cred.ParentID)
	}
	ph := r.phone(cred, media.LowData)
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	await(t, ph, protocol.TypeRing)
}

// countingWatchdog stands in for /dev/watchdog (device.Watchdog is tested
// against the kernel's softdog in tests/vm).
type countingWatchdog struct{ pets atomic.Int64 }

func (w *countingWatchdog) Pet() error { w.pets.Add(1); return nil }

// TestLoopPetsWatchdog: the terminal's own loop pets the watchdog while it
// runs, and stops when the loop stops (so a hung loop reboots the board).
func TestLoopPetsWatchdog(t *testing.T) {
	srvRig := newRig(t, nil)
	wd := &countingWatchdog{}
	r := startTerminal(t, srvRig.ctx, srvRig.srv, terminalOpts{watchdog: wd})
	eventually(t, step, "the loop pets the watchdog", func() bool { return wd.pets.Load() >= 2 })
	r.stop()
	after := wd.pets.Load()
	time.Sleep(2500 * time.Millisecond) // longer than two health ticks; not an assertion on timing
	if n := wd.pets.Load(); n != after {
		t.Errorf("watchdog petted %d more times after the loop stopped", n-after)
	}
}

// TestCandidatesBeforeAnswer: a phone that sends all its ICE candidates
// before its answer (as a client written from the protocol may) still gets
// a call, with the relay as the only path so nothing else can save it.
// Before, the terminal refused each early candidate (pion takes none before
// the remote description) and the call never connected.
func TestCandidatesBeforeAnswer(t *testing.T) {
	r := newRig(t, func(c *rendezvous.Config) { c.ICETransportPolicy = "relay" })
	cred := r.pair()
	ctx, cancel := context.WithTimeout(r.ctx, step)
	defer cancel()
	conn, err := rendezvoustest.DialPaired(ctx, r.srv.WSURL, cred)
	if err != nil {
		t.Fatal(err)
	}
	ph := NewPhone(conn, PhoneConfig{API: loopbackAPI(t), CandidatesFirst: true, Log: testLog(t),
		Capture: media.CaptureConfig{Profile: media.LowData, Camera: media.SourceSynthetic, Microphone: media.SourceSynthetic}})
	done := make(chan struct{})
	go func() { defer close(done); ph.Run(r.ctx) }()
	t.Cleanup(func() { conn.Close(); <-done })

	r.childCalls(t, ph)
	waitMedia(t, r, ph.Current())
}
