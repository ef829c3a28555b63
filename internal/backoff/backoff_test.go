package backoff

import (
	"testing"
	"time"
)

// TestBounds: every wait lies in [Min, Max], the waits grow while the
// attempts fail (the highest draw triples them up to Max), and Reset starts
// over from Min.
func TestBounds(t *testing.T) {
	high := func(n int64) int64 { return n - 1 }
	tests := []struct {
		name string
		rand func(int64) int64
		want []time.Duration // successive waits
	}{
		{"lowest draws stay at min", func(int64) int64 { return 0 }, []time.Duration{500, 500, 500, 500}},
		{"highest draws triple up to max", high, []time.Duration{1499, 4496, 13487, 29999, 29999}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := Backoff{Min: 500, Max: 30000, Rand: tc.rand}
			for i, want := range tc.want {
				if got := b.Next(); got != want {
					t.Fatalf("wait %d = %v, want %v", i, got, want)
				}
			}
			b.Reset()
			if got := b.Next(); got > 1500 {
				t.Fatalf("first wait after Reset = %v, want at most 3×Min", got)
			}
		})
	}
}

// TestJitterSpreads: a thousand clients that failed together do not retry
// together: their first waits spread over [Min, 3×Min) and their fifth over
// seconds.
func TestJitterSpreads(t *testing.T) {
	const clients = 1000
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range clients {
		b := Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
		var d time.Duration
		for range 5 {
			d = b.Next()
			if d < b.Min || d > b.Max {
				t.Fatalf("wait %v outside [%v, %v]", d, b.Min, b.Max)
			}
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi-lo < 5*time.Second {
		t.Fatalf("fifth waits of %d clients span only %v..%v", clients, lo, hi)
	}
}
