package terminal

import (
	"fmt"
	"time"

	"github.com/tuanju/tuanju/internal/terminal/autoanswer"
	"github.com/tuanju/tuanju/internal/terminal/call"
)

// DefaultAutoAnswerDelay is how long a reunion-window ring sounds before it
// is answered.
const DefaultAutoAnswerDelay = 5 * time.Second

// AutoAnswer is the reunion window: rings from the paired parent inside
// Windows are answered after Delay of ringing, with the same connect sound
// and media gate as a press. Empty Windows (the default) turns it off.
type AutoAnswer struct {
	Windows autoanswer.Schedule
	// Delay is how long the ring light and sound play first; zero means
	// DefaultAutoAnswerDelay, and less than call.MinAutoAnswerDelay is a
	// configuration error.
	Delay time.Duration
}

func (a *AutoAnswer) validate() error {
	if a.Delay == 0 {
		a.Delay = DefaultAutoAnswerDelay
	}
	if a.Delay < call.MinAutoAnswerDelay {
		return fmt.Errorf("terminal: auto-answer delay %v is under %v: the child must see and hear the ring: %w",
			a.Delay, call.MinAutoAnswerDelay, ErrConfig)
	}
	return nil
}

// autoAnswerAfter is how long a ring arriving at now rings before it is
// answered without a press, or 0 for "wait for the press". Only a ring for
// our paired parent qualifies (the server routes rings from the stored
// pairing; end-to-end signatures drop anything else before this point),
// only inside a window, and never while the terminal needs repair.
func (t *Terminal) autoAnswerAfter(now time.Time) time.Duration {
	a := t.cfg.AutoAnswer
	switch {
	case len(a.Windows) == 0, !t.m.Paired, t.parentID == "", len(t.faults) > 0, t.m.State == call.Fault:
		return 0
	case !a.Windows.Contains(now):
		return 0
	}
	return a.Delay
}
