package terminal

import (
	"time"

	"github.com/tuanju/tuanju/internal/terminal/call"
)

// timers are the call machine's timers, owned by the loop: StartTimer adds
// one, and Run's select fires what is due through a single time.Timer set
// to the earliest. Nothing runs in another goroutine and no timeout can be
// lost to a full event queue. A timer is never cancelled: the machine
// ignores a timeout whose token is stale.
type timers struct {
	pending []call.Timeout
	due     []time.Time // due[i] is when pending[i] fires
	clock   *time.Timer // nil until the first start
}

// start schedules a timeout of kind for token after d from now.
func (ts *timers) start(now time.Time, kind call.Timer, token string, d time.Duration) {
	ts.pending = append(ts.pending, call.Timeout{Timer: kind, Token: token})
	ts.due = append(ts.due, now.Add(d))
	ts.arm(now)
}

// arm sets the clock to the earliest pending timeout.
func (ts *timers) arm(now time.Time) {
	if len(ts.due) == 0 {
		return
	}
	first := ts.due[0]
	for _, d := range ts.due[1:] {
		if d.Before(first) {
			first = d
		}
	}
	wait := max(first.Sub(now), 0)
	if ts.clock == nil {
		ts.clock = time.NewTimer(wait)
		return
	}
	ts.clock.Reset(wait)
}

// C is the channel Run waits on; nil (never ready) when nothing is pending.
func (ts *timers) C() <-chan time.Time {
	if ts.clock == nil || len(ts.pending) == 0 {
		return nil
	}
	return ts.clock.C
}

// fire removes and returns, in the order they were started, the timeouts
// due at now, and sets the clock for the rest.
func (ts *timers) fire(now time.Time) []call.Timeout {
	var out []call.Timeout
	keep, keepDue := ts.pending[:0], ts.due[:0]
	for i, p := range ts.pending {
		if !ts.due[i].After(now) {
			out = append(out, p)
			continue
		}
		keep, keepDue = append(keep, p), append(keepDue, ts.due[i])
	}
	ts.pending, ts.due = keep, keepDue
	ts.arm(now)
	return out
}

func (ts *timers) stop() {
	if ts.clock != nil {
		ts.clock.Stop()
	}
}
