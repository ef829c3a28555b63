package screen

import (
	"context"
	"image"
	"log/slog"
	"time"

	"github.com/tuanju/tuanju/device/screen/fb"
)

// Source is what the screen shows: the terminal (internal/terminal's
// Terminal satisfies it through small adapters in cmd/terminald).
type Source interface {
	// Picture is the parent's latest decoded picture during a call, or nil.
	Picture() image.Image
	// Pattern is the lights' pattern name (device.Pattern), which the state
	// pictures share.
	Pattern() string
}

// Options tune Run.
type Options struct {
	// FPS caps how often a new picture is drawn (default 15: the low-data
	// profile's rate; drawing faster only burns the board's CPU).
	FPS int
	Log *slog.Logger
}

// Run draws until ctx ends. A picture is drawn only when it is new (the
// decoder hands out a new image per decoded frame), a state screen only when
// the state changes; a failing screen is logged once per kind of failure
// and retried, since a loose cable must not stop the terminal.
func Run(ctx context.Context, src Source, d fb.Display, o Options) {
	if o.FPS <= 0 {
		o.FPS = 15
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tick := time.NewTicker(time.Second / time.Duration(o.FPS))
	defer tick.Stop()
	var (
		lastPic   image.Image
		lastState string
		lastErr   string
	)
	for {
		var err error
		if pic := src.Picture(); pic != nil {
			if pic != lastPic {
				err = d.Draw(pic)
				lastPic = pic
				lastState = ""
			}
		} else if p := src.Pattern(); p != lastState {
			err = Show(d, p)
			lastState, lastPic = p, nil
		}
		if err != nil {
			if err.Error() != lastErr {
				log.Error("screen", "err", err)
				lastErr = err.Error()
			}
			lastState, lastPic = "", nil // try again next tick
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
