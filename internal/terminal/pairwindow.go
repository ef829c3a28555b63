package terminal

import (
	"fmt"
	"time"

	"github.com/tuanju/tuanju/internal/terminal/call"
)

// The pairing window (docs/protocol.md, "Pairing window"): pairing is only
// possible for a while after a physical act on the terminal — a fresh or
// just-reset unit at boot or reset, or a 3 s hold of the button while
// unpaired — and wrong proofs are bounded per window. Each accepted request
// still waits for its own short press (call.PairConfirm).
//
// Wrong proofs are counted per source (the opaque network tag the server
// puts on each relayed pair_request): a source that guessed wrong
// PairFailuresPerSource times is refused for the rest of the window, so a
// stranger cannot spend the real parent's tries; all sources together may
// guess wrong maxFailures times before the window shuts, which bounds the
// work a window allows. With a 128-bit label secret neither bound is what
// keeps a guesser out; they keep a guesser's traffic from mattering.
const (
	DefaultPairWindow         = 10 * time.Minute
	DefaultPairWindowFailures = 200
	PairFailuresPerSource     = 3
)

// pairWindow is the window's bookkeeping. It reads no clock: the loop passes
// the time in, so tests drive it from a table.
type pairWindow struct {
	length      time.Duration
	maxFailures int

	until    time.Time      // zero: closed
	failures int            // wrong proofs in the current window
	bySource map[string]int // wrong proofs per source in the current window
}

// open opens (or reopens, with fresh counts) the window from now.
func (w *pairWindow) open(now time.Time) {
	w.until = now.Add(w.length)
	w.failures = 0
	w.bySource = map[string]int{}
}

func (w *pairWindow) close() { w.until = time.Time{} }

// isOpen reports whether the window is open at now.
func (w *pairWindow) isOpen(now time.Time) bool {
	return !w.until.IsZero() && now.Before(w.until)
}

// perSource is how many wrong proofs a source may make in one window. An
// untagged request (a server that does not say where requests come from)
// shares the window's whole allowance.
func (w *pairWindow) perSource(source string) int {
	if source == "" {
		return w.maxFailures
	}
	return PairFailuresPerSource
}

// admit decides whether a pairing request from source may proceed at now:
// nil inside the window, ErrNotPairable outside it or once that source has
// used up its wrong proofs. Every pairing handshake calls it before looking
// at the request's proof.
func (w *pairWindow) admit(now time.Time, source string) error {
	if !w.isOpen(now) {
		return fmt.Errorf("terminal: pairing request: %w", ErrNotPairable)
	}
	if w.bySource[source] >= w.perSource(source) {
		return fmt.Errorf("terminal: pairing request: %d wrong proofs from this source: %w", w.bySource[source], ErrNotPairable)
	}
	return nil
}

// failed records a request from source whose proof was wrong and reports
// whether that used up the window's allowance, closing it.
func (w *pairWindow) failed(now time.Time, source string) (closed bool) {
	if !w.isOpen(now) {
		return false
	}
	w.failures++
	w.bySource[source]++
	if w.failures >= w.maxFailures {
		w.close()
		return true
	}
	return false
}

// openPairWindow opens the window and shows "pairable".
func (t *Terminal) openPairWindow(why string) {
	t.window.open(time.Now())
	t.log.Info("pairing window open", "why", why, "for", t.window.length, "max_failures", t.window.maxFailures)
	t.step(call.PairWindow{Open: true})
}

// closePairWindow closes the window (if open) and drops "pairable".
func (t *Terminal) closePairWindow(why string) {
	if t.window.until.IsZero() && !t.m.Pairable {
		return
	}
	t.window.close()
	t.log.Info("pairing window closed", "why", why)
	t.step(call.PairWindow{Open: false})
}

// checkPairWindow closes a window whose time is up; the health tick calls it.
func (t *Terminal) checkPairWindow(now time.Time) {
	if t.m.Pairable && !t.window.isOpen(now) {
		t.closePairWindow("time is up")
	}
}

// mayPair is the question a pairing handshake asks first: may a request
// proceed now? Outside the window the answer is ErrNotPairable, and the
// request must be refused without lights or sound.
func (t *Terminal) mayPair(source string) error { return t.window.admit(time.Now(), source) }

// pairProofFailed records a wrong proof from source; the window's
// maxFailures-th closes it.
func (t *Terminal) pairProofFailed(source string) {
	if t.window.failed(time.Now(), source) {
		t.log.Warn("pairing window closed after too many wrong proofs", "failures", t.window.maxFailures)
		t.closePairWindow("too many wrong proofs")
	}
}
