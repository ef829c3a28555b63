package terminal

import "testing"

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
