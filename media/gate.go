package media

import (
	"context"
	"errors"
	"fmt"
)

// The "never silent" rule. A box with a camera and a microphone sits in a
// child's home; it must never watch or listen unannounced. So the only way
// to a *Capture, in the whole module, is Gate.Open, and a Gate opens nothing
// before it has itself turned the in-call light on and played the announce
// sound to its end. The openers below it are out of reach of the compiler:
// open is unexported, the camera and microphone drivers live under
// media/internal (Go's internal rule: only media may import them), and a
// test (TestOnlyMediaReachesDrivers, an import-graph check) keeps
// mediadevices' GetUserMedia and driver packages, and device/alsa's capture,
// out of every other package.

// ErrNotAnnounced means camera and microphone were about to open without the
// in-call light and the sound of the never-silent rule (the call ended, the
// light failed, the sound was cut short). Nothing was opened.
var ErrNotAnnounced = errors.New("media: camera and microphone open only after the in-call light and sound")

// Light is the in-call light.
type Light interface {
	// InCall turns the in-call light on, or checks that it is on, for the
	// call (or self-test) about to open media. An error means it is not
	// lit: nothing opens. The gate asks before the sound, again before
	// opening, and once more after (opening a camera takes a while).
	InCall() error
}

// Sound is the announce sound (a call's connect sound, the self-test's tone).
type Sound interface {
	// Announce plays the sound and returns once it has played to its end,
	// or with ctx's error if ctx ended first. A unit without a speaker
	// returns nil at once: it is announced by the light alone, and its
	// self-test says so.
	Announce(ctx context.Context) error
}

// Gate is the capability to open camera and microphone: it holds the light
// and the sound that announce them.
type Gate struct {
	light Light
	sound Sound
	// Opening, if set, is called after the light and sound, right before
	// the sources open: tests record what the unit shows then.
	Opening func(CaptureConfig)
}

// NewGate makes a gate; both light and sound are required.
func NewGate(light Light, sound Sound) (*Gate, error) {
	if light == nil || sound == nil {
		return nil, fmt.Errorf("media: new gate: a light and a sound are required: %w", ErrNotAnnounced)
	}
	return &Gate{light: light, sound: sound}, nil
}

// Open announces, then opens the sources cfg names (see open): the in-call
// light on, the sound played to its end, the light still on; if the light
// went off while the sources opened, they are closed again. ctx bounds the
// announcement and the opening, not the Capture.
func (g *Gate) Open(ctx context.Context, cfg CaptureConfig) (*Capture, error) {
	if err := g.light.InCall(); err != nil {
		return nil, fmt.Errorf("%w: in-call light: %w", ErrNotAnnounced, err)
	}
	if err := g.sound.Announce(ctx); err != nil {
		return nil, fmt.Errorf("%w: sound: %w", ErrNotAnnounced, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotAnnounced, err)
	}
	if err := g.light.InCall(); err != nil {
		return nil, fmt.Errorf("%w: in-call light off after the sound: %w", ErrNotAnnounced, err)
	}
	if g.Opening != nil {
		g.Opening(cfg)
	}
	c, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := g.light.InCall(); err != nil {
		if cerr := c.Close(); cerr != nil {
			c.log.Warn("close capture", "err", cerr)
		}
		return nil, fmt.Errorf("%w: in-call light off while the sources opened: %w", ErrNotAnnounced, err)
	}
	return c, nil
}
