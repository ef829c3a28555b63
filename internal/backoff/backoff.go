// Package backoff is the reconnect delay of the project's clients: the
// terminal's signalling connection, and the test clients that stand in for
// a thousand terminals (internal/rendezvous's restart test), so the test
// measures the policy the units run.
//
// It is "decorrelated jitter" (each delay drawn between Min and three times
// the last one, capped at Max): the delays grow like an exponential backoff,
// but two clients that failed together draw apart at once instead of
// retrying in lockstep, which is what a village of terminals does after a
// server restart or a power cut. Reset after every successful login, so that
// two restarts a few seconds apart do not leave a unit waiting the maximum.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff hands out the waits between one client's reconnect attempts. The
// zero value is not usable: set Min and Max (Min > 0, Max ≥ Min).
type Backoff struct {
	Min, Max time.Duration
	// Rand, if set, returns a number in [0, n) (tests pin the draw);
	// nil is math/rand/v2's.
	Rand func(n int64) int64

	last time.Duration
}

// Next is the wait before the next attempt: between Min and three times the
// previous wait (Min for the first), at most Max.
func (b *Backoff) Next() time.Duration {
	hi := max(b.last, b.Min) * 3
	if hi > b.Max || hi <= 0 {
		hi = b.Max
	}
	d := b.Min
	if span := int64(hi - b.Min); span > 0 {
		d += time.Duration(b.rand(span))
	}
	b.last = d
	return d
}

// Reset starts over from Min: the client logged in.
func (b *Backoff) Reset() { b.last = 0 }

func (b *Backoff) rand(n int64) int64 {
	if b.Rand != nil {
		return b.Rand(n)
	}
	return rand.Int64N(n)
}
