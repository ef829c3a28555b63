package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/simboard"
	"github.com/tuanju/tuanju/internal/logbuf"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/synth"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// gateLog records, in order, what the terminal played and what it showed
// when it opened camera and microphone.
type gateLog struct {
	voice  atomic.Int64 // samples of the parent's voice given to the speaker
	mu     sync.Mutex
	events []string
	board  func() simboard.State
	log    logbuf.Buffer // the terminal's log
}

func (g *gateLog) add(e string) {
	g.mu.Lock()
	g.events = append(g.events, e)
	g.mu.Unlock()
}

func (g *gateLog) list() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.events)
}

// gateSpeaker wraps the board's speaker to log when cues start and end,
// and counts the parent's voice it is given to play.
type gateSpeaker struct {
	terminal.Speaker
	log   *gateLog
	voice *atomic.Int64
}

func (s gateSpeaker) WritePCM(pcm []int16) { s.voice.Add(int64(len(pcm))) }

func (s gateSpeaker) PlayCue(cue string) { s.log.add("cue " + cue); s.Speaker.PlayCue(cue) }

func (s gateSpeaker) PlayCueWait(ctx context.Context, cue string) error {
	s.log.add("cue-start " + cue)
	err := s.Speaker.PlayCueWait(ctx, cue)
	if err == nil {
		s.log.add("cue-end " + cue)
	}
	return err
}

func gateRig(t *testing.T) (*rig, *gateLog) {
	g := &gateLog{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	r := startTerminal(t, ctx, srv, terminalOpts{
		logTo:   &g.log,
		speaker: func(s terminal.Speaker) terminal.Speaker { return gateSpeaker{s, g, &g.voice} },
		onCaptureOpen: func(media.CaptureConfig) {
			st := g.board()
			g.add(fmt.Sprintf("open lights=%s blue=%v", st.Pattern, st.LEDs[device.Blue]))
		},
	})
	g.board = r.board.State
	return r, g
}

// opened waits for camera and microphone to open and returns the events
// so far. They open only after the parent's signed answer (the offer goes
// out first), so a test waits for them rather than for a message.
func (g *gateLog) opened(t *testing.T) []string {
	t.Helper()
	eventually(t, step, "camera and microphone open", func() bool {
		return slices.ContainsFunc(g.list(), func(e string) bool { return strings.HasPrefix(e, "open ") })
	})
	return g.list()
}

// checkAnnounced asserts the never-silent order: the connect sound started
// and ended, then media opened, with the in-call light on.
func checkAnnounced(t *testing.T, events []string) {
	t.Helper()
	t.Logf("events: %q", events)
	end := slices.Index(events, "cue-end connected")
	open := slices.IndexFunc(events, func(e string) bool { return strings.HasPrefix(e, "open ") })
	switch {
	case open < 0:
		t.Fatal("camera and microphone never opened")
	case end < 0 || end > open:
		t.Fatalf("media opened before the connect sound had played to its end: %q", events)
	case events[open] != "open lights=in_call blue=true":
		t.Fatalf("media opened with %q, want the in-call light (steady blue) on", events[open])
	}
}

// childCalls presses the terminal's button and has the phone accept the
// ring; it returns the ring.
func childCalls(t *testing.T, r *rig, ph *Phone) protocol.Message {
	t.Helper()
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	ring := await(t, ph, protocol.TypeRing)
	if err := ph.Accept(r.ctx, ring.CallID); err != nil {
		t.Fatal(err)
	}
	return ring
}

// TestNeverSilent: in both call directions the camera and microphone open
// only after the in-call light is on and the connect sound has played; a
// call that ends during that sound opens nothing.
func TestNeverSilent(t *testing.T) {
	t.Run("child calls", func(t *testing.T) {
		r, g := gateRig(t)
		ph := r.phone(r.pair(), media.LowData)
		childCalls(t, r, ph)
		await(t, ph, protocol.TypeOffer)
		r.waitPattern(device.InCall, "in call")
		checkAnnounced(t, g.opened(t))
		// The parent's decoded voice reaches the speaker.
		eventually(t, mediaWait, "a second of the parent's voice is played", func() bool { return g.voice.Load() >= media.AudioSampleRate })
	})
	t.Run("parent calls", func(t *testing.T) {
		r, g := gateRig(t)
		ph := r.phone(r.pair(), media.LowData)
		if _, err := ph.Ring(r.ctx); err != nil {
			t.Fatal(err)
		}
		r.waitPattern(device.Ringing, "terminal rings")
		if slices.ContainsFunc(g.list(), func(e string) bool { return strings.HasPrefix(e, "open ") }) {
			t.Fatal("media opened while the terminal was only ringing")
		}
		if err := r.board.Press(r.ctx); err != nil {
			t.Fatal(err)
		}
		await(t, ph, protocol.TypeOffer)
		checkAnnounced(t, g.opened(t))
	})
	t.Run("hang-up during the connect sound", func(t *testing.T) {
		r, g := gateRig(t)
		ph := r.phone(r.pair(), media.LowData)
		ring := childCalls(t, r, ph)
		// The connect sound lasts ~0.5 s; hang up as soon as it starts.
		eventually(t, step, "connect sound starts", func() bool { return slices.Contains(g.list(), "cue-start connected") })
		if err := ph.Hangup(r.ctx, ring.CallID, protocol.ReasonHangup); err != nil {
			t.Fatal(err)
		}
		r.waitPattern(device.Ready, "ready after the hang-up")
		// The barrier: the opening worker has reported back and the loop
		// has dealt with it (it logs that the call had ended).
		eventually(t, step, "the media start of the ended call is stopped", func() bool {
			return g.log.Has("media start of an ended call stopped", ring.CallID)
		})
		events := g.list()
		t.Logf("events: %q", events)
		if slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, "open ") }) {
			t.Fatalf("media opened for a call that ended during the connect sound: %q", events)
		}
		if slices.Contains(events, "cue-end connected") {
			t.Errorf("the connect sound played on after the call ended: %q", events)
		}
	})
}

// TestCameraUnpluggedMidCall: a camera that disappears in a call ends the
// call cleanly (the phone hears "failed"), the terminal shows needs-repair
// and refuses to call while the camera is gone, and recovers when it is back.
func TestCameraUnpluggedMidCall(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sock := &synth.Socket{}
	r := startTerminal(t, ctx, rendezvoustest.NewServer(t, nil), terminalOpts{cameraSocket: sock})
	ph := r.phone(r.pair(), media.LowData)
	ring := childCalls(t, r, ph)
	await(t, ph, protocol.TypeOffer)
	c := ph.Current()
	eventually(t, mediaWait, "phone decodes the terminal's video", func() bool { return c.Stats().VideoFramesDecoded >= 15 })

	sock.Unplug()
	h := await(t, ph, protocol.TypeHangup)
	if h.CallID != ring.CallID || h.Reason != protocol.ReasonFailed {
		t.Errorf("phone got hangup %+v, want call %s reason %s", h, ring.CallID, protocol.ReasonFailed)
	}
	r.waitPattern(device.Fault, "needs-repair after the camera is pulled out")
	if f := r.term.Status().Fault; !strings.Contains(f, "camera") {
		t.Errorf("status fault = %q, want it to name the camera", f)
	}
	// While it is gone, a press cannot call: the loop takes it (the refused
	// sound proves it) and the lights stay on needs-repair.
	if cue := r.board.State().Cue; cue == "refused" {
		t.Fatalf("cue %q before the press: the check below would prove nothing", cue)
	}
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the press is refused", func() bool { return r.board.State().Cue == "refused" })
	if p := r.board.State().Pattern; p != device.Fault {
		t.Fatalf("lights %q with the camera still out, want fault", p)
	}

	sock.Replug()
	r.waitPattern(device.Ready, "ready once the camera is back")
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	ring2 := await(t, ph, protocol.TypeRing)
	if ring2.CallID == ring.CallID {
		t.Fatal("no new call after the camera came back")
	}
	calls, err := r.store.Calls(10)
	if err != nil || !slices.ContainsFunc(calls, func(c terminalstore.CallRecord) bool {
		return c.CallID == ring.CallID && c.Outcome == protocol.OutcomeFailed
	}) {
		t.Errorf("terminal's call log = %+v, %v; want call %s logged as failed", calls, err, ring.CallID)
	}
}

// TestChildsCallOpensAtTheAccept: in the child's own call camera and
// microphone open (after the in-call light and the whole connect sound) at
// the parent's accept, which signs this call's fresh ring nonce, while the
// offer and answer are on their way: here the parent's answer never comes
// and they open all the same. A forged accept opens nothing (internal/
// terminal TestUntrustedMessages); the parent's call still waits for the
// answer over the terminal's own accept nonce (TestNeverSilent, "parent
// calls"; TestReplayedCallAfterRestart).
func TestChildsCallOpensAtTheAccept(t *testing.T) {
	r, g := gateRig(t)
	cred := r.pair()
	ctx, cancel := context.WithTimeout(r.ctx, mediaWait)
	defer cancel()
	parent, err := rendezvoustest.DialPaired(ctx, r.srv.WSURL, cred)
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	ring, err := parent.WaitFor(ctx, protocol.TypeRing)
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.FromTerminal(ring, time.Now()); err != nil { // as the page checks it
		t.Fatal(err)
	}
	if err := parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: ring.CallID}); err != nil {
		t.Fatal(err)
	}
	if _, err := parent.WaitFor(ctx, protocol.TypeOffer); err != nil {
		t.Fatal(err)
	}
	checkAnnounced(t, g.opened(t)) // no answer was sent
	if err := parent.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: ring.CallID, Reason: protocol.ReasonHangup}); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "ready after the hang-up")
}

// preparing is PhoneConfig.Prepare on, as the web app has it.
func preparing(c *PhoneConfig) { c.Prepare = true }

// preparedIdle waits for the phone's prepared connection c to be up at
// both ends while the call rings (the terminal's lights showing pattern),
// then checks that nothing was announced, opened, decoded or played: no
// one has answered yet.
func preparedIdle(t *testing.T, r *rig, g *gateLog, c *PhoneCall, pattern device.Pattern) {
	t.Helper()
	waitClosed(t, c.Connected(), "the prepared connection, while the call rings")
	eventually(t, step, "the terminal sees its prepared connection up", func() bool {
		return g.log.Has("peer connection", "connected", c.ID)
	})
	time.Sleep(300 * time.Millisecond) // a while for anything that would flow to flow
	if p := r.board.State().Pattern; p != pattern {
		t.Fatalf("lights %q with the call prepared and not answered, want %q", p, pattern)
	}
	if ev := g.list(); slices.ContainsFunc(ev, func(e string) bool { return strings.HasPrefix(e, "open ") || e == "cue-start connected" }) {
		t.Fatalf("the terminal announced or opened media before the call was answered: %q", ev)
	}
	if st := c.Stats(); st.VideoFramesDecoded != 0 || st.AudioSamplesDecoded != 0 {
		t.Fatalf("the phone decoded %d pictures and %d samples before the call was answered", st.VideoFramesDecoded, st.AudioSamplesDecoded)
	}
	if n := g.voice.Load(); n != 0 {
		t.Fatalf("the terminal played %d samples of the parent before the call was answered", n)
	}
}

// TestPreparedCall: a phone that prepares the child's call (docs/
// protocol.md, "Preparing a call") gets the terminal's offer while it
// rings, and its connection is up — ICE and DTLS done — before the parent
// answers, with nothing opened on the terminal and no picture or sound
// sent either way. At the accept the call takes that connection: the
// in-call light, the whole connect sound, then camera and microphone, and
// pictures and voice flow both ways with no second offer. When another tab
// accepts instead, the prepared connection is dropped and that tab gets a
// fresh offer over its own nonce; a declined call drops it too.
func TestPreparedCall(t *testing.T) {
	// ringPrepared presses the button and waits for the phone's prepared
	// connection to be up while the call still rings.
	ringPrepared := func(t *testing.T, r *rig, g *gateLog, ph *Phone) (protocol.Message, *PhoneCall) {
		t.Helper()
		if err := r.board.Press(r.ctx); err != nil {
			t.Fatal(err)
		}
		ring := await(t, ph, protocol.TypeRing)
		await(t, ph, protocol.TypeOffer)
		c := ph.Current()
		if c == nil || c.ID != ring.CallID {
			t.Fatal("the phone has no call after the prepared offer")
		}
		preparedIdle(t, r, g, c, device.Calling)
		return ring, c
	}

	t.Run("the phone accepts", func(t *testing.T) {
		r, g := gateRig(t)
		ph := r.phoneWith(r.pair(), media.LowData, nil, preparing)
		ring, c := ringPrepared(t, r, g, ph)
		if err := ph.Accept(r.ctx, ring.CallID); err != nil {
			t.Fatal(err)
		}
		checkAnnounced(t, g.opened(t))
		eventually(t, mediaWait, "the phone decodes the child's pictures", func() bool { return c.Stats().VideoFramesDecoded >= 15 })
		eventually(t, mediaWait, "a second of the parent's voice is played", func() bool { return g.voice.Load() >= media.AudioSampleRate })
		if !g.log.Has("the accepted call takes its prepared connection", ring.CallID) {
			t.Error("the terminal did not take the prepared connection")
		}
		if ph.Current() != c {
			t.Error("the phone's call changed: a second offer was answered")
		}
		eventually(t, step, "in call", func() bool { return r.board.State().Pattern == device.InCall })
	})

	t.Run("accepted at once", func(t *testing.T) {
		// The parent answers as the phone rings: the accept may pass the
		// prepare, the offer or the answer on their way.
		for i := range 3 {
			r, g := gateRig(t)
			ph := r.phoneWith(r.pair(), media.LowData, nil, preparing)
			ring := childCalls(t, r, ph)
			checkAnnounced(t, g.opened(t))
			await(t, ph, protocol.TypeOffer)
			c := ph.Current()
			eventually(t, mediaWait, fmt.Sprintf("call %d: the phone decodes the child's pictures", i), func() bool { return c.Stats().VideoFramesDecoded >= 15 })
			eventually(t, mediaWait, fmt.Sprintf("call %d: a second of the parent's voice is played", i), func() bool { return g.voice.Load() >= media.AudioSampleRate })
			if err := ph.Hangup(r.ctx, ring.CallID, protocol.ReasonHangup); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("another tab accepts", func(t *testing.T) {
		r, g := gateRig(t)
		cred := r.pair()
		ph := r.phoneWith(cred, media.LowData, nil, preparing)
		ctx, cancel := context.WithTimeout(r.ctx, mediaWait)
		defer cancel()
		tab, err := rendezvoustest.DialPaired(ctx, r.srv.WSURL, cred)
		if err != nil {
			t.Fatal(err)
		}
		defer tab.Close()
		ring, _ := ringPrepared(t, r, g, ph)
		if m, err := tab.WaitFor(ctx, protocol.TypeRing); err != nil || tab.FromTerminal(m, time.Now()) != nil {
			t.Fatalf("the other tab's ring: %v", err)
		}
		if err := tab.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: ring.CallID}); err != nil {
			t.Fatal(err)
		}
		if h := await(t, ph, protocol.TypeHangup); h.Reason != protocol.ReasonAnsweredElsewhere {
			t.Fatalf("the prepared phone got hangup %q, want answered_elsewhere", h.Reason)
		}
		offer, err := tab.WaitFor(ctx, protocol.TypeOffer)
		if err != nil {
			t.Fatal(err)
		}
		// Signed over the accepting tab's own nonce, not the prepare's.
		if err := tab.FromTerminal(offer, time.Now()); err != nil {
			t.Fatalf("the accepting tab's offer: %v", err)
		}
		eventually(t, step, "the prepared connection is dropped", func() bool {
			return g.log.Has("dropping the prepared call connection", ring.CallID)
		})
	})

	// The parent's own call, prepared: the phone rings, prepares once it
	// rings, and the terminal's offer (with its accept nonce) is answered
	// while the child's terminal rings.
	ringOwnPrepared := func(t *testing.T, r *rig, g *gateLog, ph *Phone) (string, *PhoneCall) {
		t.Helper()
		id, err := ph.Ring(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		r.waitPattern(device.Ringing, "the terminal rings")
		if o := await(t, ph, protocol.TypeOffer); o.CallID != id || o.Nonce == "" {
			t.Fatalf("the terminal's prepared offer: call %s, nonce %q", o.CallID, o.Nonce)
		}
		c := ph.Current()
		if c == nil || c.ID != id {
			t.Fatal("the phone has no call after the prepared offer")
		}
		preparedIdle(t, r, g, c, device.Ringing)
		return id, c
	}

	t.Run("the parent's call: the child answers", func(t *testing.T) {
		r, g := gateRig(t)
		ph := r.phoneWith(r.pair(), media.LowData, nil, preparing)
		id, c := ringOwnPrepared(t, r, g, ph)
		if err := r.board.Press(r.ctx); err != nil {
			t.Fatal(err)
		}
		if a := await(t, ph, protocol.TypeAccept); a.Nonce != c.nonce {
			t.Fatalf("the terminal's accept brings nonce %q, its prepared offer %q", a.Nonce, c.nonce)
		}
		checkAnnounced(t, g.opened(t))
		eventually(t, mediaWait, "the phone decodes the child's pictures", func() bool { return c.Stats().VideoFramesDecoded >= 15 })
		eventually(t, mediaWait, "a second of the parent's voice is played", func() bool { return g.voice.Load() >= media.AudioSampleRate })
		if !g.log.Has("the accepted call takes its prepared connection", id) {
			t.Error("the terminal did not take the prepared connection")
		}
		if ph.Current() != c {
			t.Error("the phone's call changed: a second offer was answered")
		}
		eventually(t, step, "in call", func() bool { return r.board.State().Pattern == device.InCall })
	})

	t.Run("the parent's call: the parent gives up", func(t *testing.T) {
		r, g := gateRig(t)
		ph := r.phoneWith(r.pair(), media.LowData, nil, preparing)
		id, _ := ringOwnPrepared(t, r, g, ph)
		if err := ph.Hangup(r.ctx, id, protocol.ReasonCancel); err != nil {
			t.Fatal(err)
		}
		r.waitPattern(device.Ready, "ready after the parent gave up")
		eventually(t, step, "the prepared connection is dropped", func() bool {
			return g.log.Has("dropping the prepared call connection", id)
		})
		if ev := g.list(); slices.ContainsFunc(ev, func(e string) bool { return strings.HasPrefix(e, "open ") }) {
			t.Fatalf("media opened for a call the child never answered: %q", ev)
		}
	})

	t.Run("the phone declines", func(t *testing.T) {
		r, g := gateRig(t)
		ph := r.phoneWith(r.pair(), media.LowData, nil, preparing)
		ring, _ := ringPrepared(t, r, g, ph)
		if err := ph.Hangup(r.ctx, ring.CallID, protocol.ReasonDecline); err != nil {
			t.Fatal(err)
		}
		r.waitPattern(device.Ready, "ready after the decline")
		eventually(t, step, "the prepared connection is dropped", func() bool {
			return g.log.Has("dropping the prepared call connection", ring.CallID)
		})
		if ev := g.list(); slices.ContainsFunc(ev, func(e string) bool { return strings.HasPrefix(e, "open ") }) {
			t.Fatalf("media opened for a declined call: %q", ev)
		}
	})
}
