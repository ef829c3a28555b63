package terminal

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestPairWindow drives the window through time and wrong proofs from
// several sources: closed until opened, open for its length; a source is
// refused after PairFailuresPerSource wrong proofs while others still get
// in; all sources together close it at maxFailures; reopening starts fresh
// counts: a stranger's wrong proofs never shut out the real parent early.
func TestPairWindow(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	type op = windowOp
	tests := []struct {
		name string
		max  int
		ops  []op
	}{
		{"closed until opened", 20, []op{{0, "check", "a", false, false}}},
		{"open for ten minutes", 20, []op{
			{0, "open", "", true, false}, {9*time.Minute + 59*time.Second, "check", "a", true, false},
			{10 * time.Minute, "check", "a", false, false}}},
		{"a source's third wrong proof refuses that source, not another", 20, append(fails("stranger", PairFailuresPerSource-1),
			op{time.Minute, "fail", "stranger", false, false},
			op{time.Minute, "check", "parent", true, false})},
		{"a stranger on many networks cannot shut out the parent before the window's allowance", 20,
			append(failsFrom(6, PairFailuresPerSource), op{time.Minute, "check", "parent", true, false})},
		{"all sources together close it at the window's allowance", 20,
			append(failsFrom(6, PairFailuresPerSource), op{time.Minute, "fail", "s6", true, false},
				op{time.Minute, "fail", "s7", false, true}, op{time.Minute, "check", "parent", false, false})},
		{"untagged requests share the whole allowance", 20, append(fails("", 19), op{time.Minute, "fail", "", false, true})},
		{"a failure outside the window counts nothing", 20, []op{{0, "fail", "a", false, false}, {0, "open", "", true, false}}},
		{"reopening starts fresh counts", 20, append(append(fails("a", PairFailuresPerSource), op{2 * time.Minute, "open", "", true, false}),
			op{2 * time.Minute, "check", "a", true, false})},
		{"the default allowance", DefaultPairWindowFailures, append(failsFrom(DefaultPairWindowFailures/PairFailuresPerSource, PairFailuresPerSource),
			op{time.Minute, "check", "parent", true, false})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := pairWindow{length: DefaultPairWindow, maxFailures: tt.max}
			for i, o := range tt.ops {
				now := t0.Add(o.at)
				switch o.do {
				case "open":
					w.open(now)
				case "fail":
					if got := w.failed(now, o.source); got != o.closed {
						t.Fatalf("op %d: failed(%q) = %v, want %v", i, o.source, got, o.closed)
					}
				}
				err := w.admit(now, o.source)
				if o.admit != (err == nil) || (err != nil && !errors.Is(err, ErrNotPairable)) {
					t.Fatalf("op %d (%s from %q at +%v): admit = %v, want admitted=%v", i, o.do, o.source, o.at, err, o.admit)
				}
			}
		})
	}
}

// windowOp is one step of TestPairWindow.
type windowOp struct {
	at     time.Duration
	do     string // "open", "fail", "check"
	source string
	admit  bool // admit(source) after the op
	closed bool // for "fail": did it close the window
}

// fails opens the window at 0 and records n wrong proofs from source
// (admitted after each while fewer than its allowance).
func fails(source string, n int) []windowOp {
	out := []windowOp{{0, "open", "", true, false}}
	for i := range n {
		out = append(out, windowOp{time.Second, "fail", source, source == "" || i+1 < PairFailuresPerSource, false})
	}
	return out
}

// failsFrom opens the window and has sources s0, s1, … make n wrong proofs each.
func failsFrom(sources, n int) []windowOp {
	out := []windowOp{{0, "open", "", true, false}}
	for s := range sources {
		for i := range n {
			out = append(out, windowOp{time.Second, "fail", fmt.Sprintf("s%d", s), i+1 < n, false})
		}
	}
	return out
}
