package terminal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// eventQueue bounds the events waiting for the loop. A full queue means the
// loop is falling behind: the watchdog is not petted then (health.go). It is
// roomy because pion's callbacks (postNow) cannot wait: a burst of local ICE
// candidates must not be dropped while the loop writes the state file.
const eventQueue = 256

// event is one thing the loop is told by another goroutine: the closed set
// of types below. Button presses and timeouts reach the loop on channels
// of their own.
type event interface{ loopEvent() }

type (
	// connUp: connectLoop logged in.
	connUp struct{ c ServerConn }
	// connDown: the connection ended.
	connDown struct{ c ServerConn }
	// dialFailed: a login did not succeed (err wraps ErrAuthFailed when
	// the server refused this unit's credentials).
	dialFailed struct{ err error }
	// received: a message from the server on connection c.
	received struct {
		c ServerConn
		m protocol.Message
	}
	// localCandidate: pion gathered one of the session's ICE candidates.
	localCandidate struct {
		s *session
		m protocol.Message
	}
	// peerState: the session's peer connection connected or failed.
	peerState struct {
		s     *session
		state webrtc.PeerConnectionState
	}
	// captureReady: the gate announced and opened camera and microphone
	// for the call (or failed to).
	captureReady struct {
		callID string
		c      *media.Capture
		err    error
	}
	// sourceLost: the call's camera (or microphone) failed mid-call.
	sourceLost struct {
		callID string
		err    error
	}
	// cuePlaying: the gate is playing the connect sound.
	cuePlaying struct{ cue call.Cue }
)

func (connUp) loopEvent()         {}
func (connDown) loopEvent()       {}
func (dialFailed) loopEvent()     {}
func (received) loopEvent()       {}
func (localCandidate) loopEvent() {}
func (peerState) loopEvent()      {}
func (captureReady) loopEvent()   {}
func (sourceLost) loopEvent()     {}
func (cuePlaying) loopEvent()     {}

// healthEvery is how often the loop checks the hardware's health.
const healthEvery = time.Second

// Run runs until ctx ends. It is called once: at its end it closes the
// terminal's sockets.
//
// Each turn of the loop handles one thing — a button event, an event, a
// timeout, the health tick — and then publishes the view (status.go).
func (t *Terminal) Run(ctx context.Context) error {
	t.ctx = ctx
	defer t.iceNet.Close()
	health := time.NewTicker(healthEvery)
	defer health.Stop()
	defer t.timers.stop()
	t.showLEDs()
	if !t.m.Paired {
		// The pairing URL carries the label's secret: never logged. The
		// technician prints it with `terminald label`.
		t.log.Info("terminal is not paired: scan the QR label on the unit with the parent's phone")
		// A fresh (or reset) unit is pairable after boot; the power-on is
		// the physical act.
		t.openPairWindow("unpaired at boot")
	}
	t.publish()
	t.notify()
	go t.connectLoop(ctx)
	defer func() {
		if t.sess != nil {
			t.countCall(t.sess, time.Now())
			t.sess.close()
		}
		if t.conn != nil {
			t.conn.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-t.d.Buttons:
			if !ok {
				t.d.Buttons = nil
				continue
			}
			t.button(ev)
		case ev := <-t.events:
			t.handle(ev)
		case now := <-t.timers.C():
			for _, to := range t.timers.fire(now) {
				t.step(to)
			}
		case <-health.C:
			t.checkHealth()
			t.checkPairWindow(time.Now())
			t.petWatchdog()
			t.flushCallLog()
			t.countDue(time.Now())
			t.checkBudget()
		}
		t.reportHealth()
		t.publish()
		t.notify()
		if t.tr.dead {
			return nil // a test's fault hook stopped it (trust.go)
		}
	}
}

// post hands an event to the loop from a worker goroutine, waiting while
// the queue is full, until ctx ends.
func (t *Terminal) post(ctx context.Context, ev event) {
	select {
	case t.events <- ev:
	case <-ctx.Done():
	}
}

// postNow hands an event to the loop from a goroutine that must not wait
// (pion's callbacks): with the queue full, the event is dropped and logged.
func (t *Terminal) postNow(ev event) {
	select {
	case t.events <- ev:
	default:
		t.log.Error("event queue full; event lost", "event", fmt.Sprintf("%T", ev))
	}
}

func (t *Terminal) button(ev device.ButtonEvent) {
	switch ev.Kind {
	case device.Press:
		t.step(call.Press{NewCallID: protocol.NewID()})
	case device.LongPress:
		t.step(call.LongPress{})
	case device.Hold:
		// The long press two seconds in has done its work (hung up,
		// declined); on an unpaired terminal the hold also opens pairing.
		if !t.m.Paired {
			t.openPairWindow("button held")
		}
	}
	// No hold resets the unit, however long, in a call or out of one: the
	// factory reset is a power-up gesture (BootReset, reset.go).
}

func (t *Terminal) handle(ev event) {
	switch ev := ev.(type) {
	case connUp:
		t.connected(ev.c)
	case connDown:
		if ev.c != t.conn {
			return
		}
		t.conn = nil
		t.peerOnline = false
		t.reported = nil
		t.step(call.Disconnected{})
	case dialFailed:
		t.refused = errors.Is(ev.err, ErrAuthFailed)
	case received:
		if ev.c == t.conn {
			t.message(ev.m)
		}
	case localCandidate:
		ev.s.sendCandidate(ev.m)
	case peerState:
		t.peerStateChanged(ev.s, ev.state)
	case captureReady:
		t.captureOpened(ev)
	case sourceLost:
		t.log.Error("camera or microphone lost mid-call: ending the call, showing needs-repair", "call_id", ev.callID, "err", ev.err)
		t.cameraLostAt = time.Now()
		t.checkHealth()
	case cuePlaying:
		t.lastCue = ev.cue
	default:
		// Unreachable while every event type is handled above.
		t.log.Error("unknown event", "event", fmt.Sprintf("%T", ev))
	}
}

// step runs the machine on ev and carries out its actions.
//
// Actions never run the machine themselves: an event an action raises (a
// ring that could not be signed, media that could not start) is queued by
// raise and runs as a step of its own once all of the current step's
// actions are done, so the last light and sound are always those of the
// machine's last state.
func (t *Terminal) step(ev call.Event) {
	t.queued = append(t.queued, ev)
	if t.stepping {
		return
	}
	t.stepping = true
	defer func() { t.stepping = false }()
	for len(t.queued) > 0 {
		ev := t.queued[0]
		t.queued = t.queued[1:]
		before := t.m.State
		var acts []call.Action
		t.m, acts = call.Next(t.m, ev)
		if t.m.State != before {
			t.log.Info("call state", "from", before.String(), "to", t.m.State.String(), "event", fmt.Sprintf("%T", ev))
		}
		for _, a := range acts {
			t.do(a)
		}
	}
	t.prepStale()
	t.showLEDs()
}

// raise queues an event an action gives rise to; the step carrying out the
// action runs it next.
func (t *Terminal) raise(ev call.Event) { t.queued = append(t.queued, ev) }
