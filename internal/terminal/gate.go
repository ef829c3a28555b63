package terminal

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/call"
	"github.com/tuanju/tuanju/media"
)

// The "never silent" rule. A box with a camera and a microphone sits in a
// child's home; it must never watch or listen unannounced. Its camera and
// microphone therefore open only
//
//  1. while the "in call" light is on for that very call, and
//  2. after the connect sound has played to its end,
//
// and close when the call ends (StopMedia). This file is the only place in
// the terminal that opens them: openCapture is the one caller of media.Open
// (TestOnlyTheGateOpensMedia walks the module's source to keep it so), and it
// takes an announcement, which only announce makes — after the light and the
// sound. Whoever adds a new way to start a call (auto-answer, a technician's
// test call) goes through announce too, or the build's tests fail.

// ErrNotAnnounced means media was about to open without the light and sound
// of the never-silent rule (the call ended, or the lights failed).
var ErrNotAnnounced = errors.New("camera and microphone may open only in an announced call")

// announcement is the proof that the child was told a call is live. Its
// fields are unexported and only announce fills them.
type announcement struct {
	callID string
	cue    call.Cue
}

// lights remembers what the LEDs last showed, for the gate to check from the
// media goroutine. The loop writes it after every LEDs.Show.
type lights struct {
	mu      sync.Mutex
	pattern device.Pattern // "" when the last Show failed
	callID  string         // the call the pattern belongs to
}

func (l *lights) set(p device.Pattern, callID string) {
	l.mu.Lock()
	l.pattern, l.callID = p, callID
	l.mu.Unlock()
}

// inCall reports whether the in-call light is on for callID.
func (l *lights) inCall(callID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return callID != "" && l.pattern == device.InCall && l.callID == callID
}

// announce plays cue to its end while the in-call light is on for callID,
// and returns the announcement openCapture needs. ctx ends with the call, so
// a hang-up during the sound opens nothing.
func (t *Terminal) announce(ctx context.Context, callID string, cue call.Cue) (announcement, error) {
	if !t.lit.inCall(callID) {
		return announcement{}, fmt.Errorf("terminal: call %s: in-call light is not on: %w", callID, ErrNotAnnounced)
	}
	if t.d.Speaker != nil {
		t.setLastCue(cue)
		if err := t.d.Speaker.PlayCueWait(ctx, string(cue)); err != nil {
			return announcement{}, fmt.Errorf("terminal: call %s: connect sound: %w", callID, err)
		}
	}
	if !t.lit.inCall(callID) {
		return announcement{}, fmt.Errorf("terminal: call %s: call ended during the connect sound: %w", callID, ErrNotAnnounced)
	}
	return announcement{callID: callID, cue: cue}, nil
}

// openCapture opens camera and microphone for an announced call. It checks
// the light again after opening (a camera can take a while to open): if the
// call ended meanwhile, it closes them at once.
func (t *Terminal) openCapture(ctx context.Context, a announcement) (*media.Capture, error) {
	if a.callID == "" || !t.lit.inCall(a.callID) {
		return nil, fmt.Errorf("terminal: open camera and microphone: %w", ErrNotAnnounced)
	}
	open := media.Open
	if t.d.OpenCapture != nil {
		open = t.d.OpenCapture
	}
	c, err := open(ctx, t.cfg.Capture)
	if err != nil {
		return nil, fmt.Errorf("terminal: call %s: %w", a.callID, err)
	}
	if !t.lit.inCall(a.callID) {
		if cerr := c.Close(); cerr != nil {
			t.log.Warn("close capture", "err", cerr)
		}
		return nil, fmt.Errorf("terminal: call %s: call ended while the camera opened: %w", a.callID, ErrNotAnnounced)
	}
	t.log.Info("camera and microphone open", "call_id", a.callID, "announced_with", a.cue)
	return c, nil
}

// openSession is a call's media start, in the rule's order: announce, open
// camera and microphone, then the peer connection and the offer.
func (t *Terminal) openSession(ctx context.Context, callID string, cue call.Cue, info iceInfo, d sessionDeps) (*session, error) {
	a, err := t.announce(ctx, callID, cue)
	if err != nil {
		return nil, err
	}
	c, err := t.openCapture(ctx, a)
	if err != nil {
		return nil, err
	}
	return startSession(callID, info.servers, info.policy, c, d)
}
