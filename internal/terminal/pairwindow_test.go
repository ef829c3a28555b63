package terminal

import (
	"errors"
	"testing"
	"time"
)

// TestPairWindow drives the window through time and wrong proofs: closed
// until opened, open for its length, closed by the maxFailures-th wrong
// proof, and reopened with a fresh count.
func TestPairWindow(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	type op = windowOp
	tests := []struct {
		name string
		ops  []op
	}{
		{"closed until opened", []op{{0, "check", false, false}}},
		{"open for ten minutes", []op{
			{0, "open", true, false}, {9*time.Minute + 59*time.Second, "check", true, false},
			{10 * time.Minute, "check", false, false}}},
		{"nineteen wrong proofs leave it open, the twentieth closes it", append(fails(19), op{time.Minute, "fail", false, true})},
		{"a failure outside the window counts nothing", []op{{0, "fail", false, false}, {0, "open", true, false}}},
		{"reopening starts a fresh count", append(append(fails(19), op{2 * time.Minute, "open", true, false}),
			op{2 * time.Minute, "fail", true, false})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := pairWindow{length: DefaultPairWindow, maxFailures: DefaultPairWindowFailures}
			for i, o := range tt.ops {
				now := t0.Add(o.at)
				switch o.do {
				case "open":
					w.open(now)
				case "fail":
					if got := w.failed(now); got != o.closed {
						t.Fatalf("op %d: failed() = %v, want %v", i, got, o.closed)
					}
				}
				if got := w.isOpen(now); got != o.open {
					t.Fatalf("op %d (%s at +%v): isOpen = %v, want %v", i, o.do, o.at, got, o.open)
				}
				err := w.admit(now)
				if o.open != (err == nil) || (err != nil && !errors.Is(err, ErrNotPairable)) {
					t.Fatalf("op %d: admit = %v, want open=%v", i, err, o.open)
				}
			}
		})
	}
}

// windowOp is one step of TestPairWindow.
type windowOp struct {
	at     time.Duration
	do     string // "open", "fail", "check"
	open   bool   // isOpen / admit after the op
	closed bool   // for "fail": did it close the window
}

// fails opens the window at 0 and records n wrong proofs inside it.
func fails(n int) []windowOp {
	out := []windowOp{{0, "open", true, false}}
	for range n {
		out = append(out, windowOp{time.Second, "fail", true, false})
	}
	return out
}
