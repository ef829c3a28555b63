package terminal

import (
	"context"
	"fmt"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/media"
)

// The "never silent" rule (media/gate.go): camera and microphone open only
//
//  1. while the "in call" light is on for that very call, and
//  2. after the connect sound has played to its end,
//
// and close when the call ends (StopMedia). The terminal cannot do it any
// other way: the only way to a *media.Capture is media.Gate.Open, which
// asks the light and plays the sound itself. Here the light is the loop's
// (callLight checks that the lights, as the loop last published them, show
// "in call" for this call) and the sound is the speaker's connect cue. The terminal opens them only for a
// call whose answer is signed over its own nonce (session.go). Whoever adds
// a new way to start a call (auto-answer, a technician's test call) goes
// through openMedia too.

// ErrNotAnnounced means media was about to open without the light and sound
// of the never-silent rule (the call ended, or the lights failed).
var ErrNotAnnounced = media.ErrNotAnnounced

// lights is what the LEDs last showed. The loop sets it after every
// LEDs.Show and publishes it in its view, where the gate reads it.
type lights struct {
	pattern device.Pattern // "" when the last Show failed
	callID  string         // the call the pattern belongs to
}

// inCall reports whether the in-call light (or its voice-only form) is on
// for callID.
func (l lights) inCall(callID string) bool {
	return callID != "" && (l.pattern == device.InCall || l.pattern == device.InCallVoice) && l.callID == callID
}

// callLight is the in-call light of one call, as the loop shows it: the
// gate cannot turn it on (the call machine owns the LEDs), only find it on.
type callLight struct {
	shown  func() lights // the lights as the loop last published them
	callID string
}

func (l callLight) InCall() error {
	if !l.shown().inCall(l.callID) {
		return fmt.Errorf("terminal: call %s: the in-call light is not on (the call ended?)", l.callID)
	}
	return nil
}

// connectSound is the call's connect cue, played to its end. It runs on the
// gate's goroutine, so it tells the loop the cue is playing by an event.
type connectSound struct {
	t   *Terminal
	cue call.Cue
}

func (s connectSound) Announce(ctx context.Context) error {
	if s.t.d.Speaker == nil {
		return nil // no speaker fitted: the light alone announces
	}
	s.t.post(ctx, cuePlaying{s.cue})
	return s.t.d.Speaker.PlayCueWait(ctx, string(s.cue))
}

// openMedia opens a call's camera and microphone in the rule's order,
// through the gate: the light checked, the connect sound played to its end,
// then the opening. ctx ends with the call, so a hang-up during the sound
// opens nothing.
func (t *Terminal) openMedia(ctx context.Context, callID string, cue call.Cue, profile media.Profile) (*media.Capture, error) {
	shown := func() lights { return t.view.Load().lit }
	g, err := media.NewGate(callLight{shown, callID}, connectSound{t, cue})
	if err != nil {
		return nil, err
	}
	g.Opening = t.d.OnCaptureOpen
	cfg := t.cfg.Capture
	cfg.Profile = profile // the call's: the data budget may have lowered it
	c, err := g.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("terminal: call %s: %w", callID, err)
	}
	t.log.Info("camera and microphone open", "call_id", callID, "announced_with", cue)
	return c, nil
}
