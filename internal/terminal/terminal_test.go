package terminal

import (
	"testing"
	"time"
)

func TestLoopbackCandidate(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", true},
		{"candidate:2 1 udp 1694498815 127.0.0.1 40000 typ relay raddr 0.0.0.0 rport 0", true},
		{"candidate:3 1 udp 2130706431 ::1 50000 typ host", true},
		{"candidate:4 1 udp 2130706431 192.0.2.7 50000 typ host", false},
		{"candidate:5 1 udp 2130706431 10.0.0.2 50000 typ host", false},
		{"candidate:6 1 udp 2130706431 2b1a4c0e-8a7d-4c3b-9f1e-0d4c5e6f7a8b.local 50000 typ host", false},
		{"candidate:7 1 udp", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := loopbackCandidate(tt.line); got != tt.want {
			t.Errorf("loopbackCandidate(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

// TestBackoffGrowsWithJitterAndCaps: delays grow, stay within [min/2, max+min/2),
// are not all equal (jitter), and reset returns to the start.
func TestBackoffGrowsWithJitterAndCaps(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: 2 * time.Second}
	var seen = map[time.Duration]bool{}
	var maxSeen time.Duration
	for range 200 {
		d := b.next()
		if d < b.min/2 || d >= b.max+b.min/2 {
			t.Fatalf("delay %v outside [%v, %v)", d, b.min/2, b.max+b.min/2)
		}
		seen[d] = true
		maxSeen = max(maxSeen, d)
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct delays in 200: no jitter", len(seen))
	}
	if maxSeen < time.Second {
		t.Errorf("largest delay %v never approached the cap %v", maxSeen, b.max)
	}
	b.reset()
	for range 20 {
		if d := b.next(); d > b.max {
			t.Fatal("cap exceeded after reset")
		}
		b.reset()
		if d := b.next(); d >= b.min+b.min/2 {
			t.Fatalf("first delay after reset %v, want < %v", d, b.min+b.min/2)
		}
	}
}
