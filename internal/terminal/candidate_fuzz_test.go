package terminal

import (
	"net/netip"
	"testing"

	"github.com/pion/ice/v4"
)

// FuzzLoopbackCandidate: the loopback-only filter on the parent's
// candidates (untrusted: they come through the server) never panics, and it
// cannot be fooled: whenever it lets a line through, pion's own candidate
// parser, which decides where the terminal sends its checks, either rejects
// the line or reads a loopback address from it.
func FuzzLoopbackCandidate(f *testing.F) {
	for _, s := range []string{
		"candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
		"candidate:2 1 udp 1694498815 127.0.0.1 40000 typ relay raddr 0.0.0.0 rport 0",
		"candidate:3 1 udp 2130706431 ::1 50000 typ host",
		"candidate:3627851771 1 udp 2122194687 127.0.0.1 37817 typ host generation 0 ufrag 3ZZA network-id 3 network-cost 50",
		"candidate:4 1 udp 2130706431 192.0.2.7 50000 typ host",
		"candidate:6 1 udp 2130706431 2b1a4c0e-8a7d-4c3b-9f1e-0d4c5e6f7a8b.local 50000 typ host",
		"candidate:1 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active",
		"candidate:1  1 udp 1 10.0.0.1 127.0.0.1 typ host",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if !loopbackCandidate(line) {
			return
		}
		c, err := ice.UnmarshalCandidate(line)
		if err != nil {
			return
		}
		addr, err := netip.ParseAddr(c.Address())
		if err != nil || !addr.IsLoopback() {
			t.Fatalf("loopbackCandidate(%q) = true, but pion reads address %q", line, c.Address())
		}
	})
}
