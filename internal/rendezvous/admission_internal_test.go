package rendezvous

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// TestClientIP: X-Forwarded-For counts only on a connection from a trusted
// proxy, and then only its right-most entries, which the proxies wrote.
func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name, remote string
		xff          []string
		proxies      []netip.Prefix
		want         string
	}{
		{"no proxies: header ignored", "198.51.100.7:5000", []string{"203.0.113.9"}, nil, "198.51.100.7"},
		{"untrusted peer forging", "198.51.100.7:5000", []string{"203.0.113.9"}, proxies, "198.51.100.7"},
		{"trusted proxy", "10.1.2.3:443", []string{"203.0.113.9"}, proxies, "203.0.113.9"},
		{"client's own entries left of the proxy's", "10.1.2.3:443", []string{"1.2.3.4, 5.6.7.8, 203.0.113.9"}, proxies, "203.0.113.9"},
		{"two proxies in a row", "10.1.2.3:443", []string{"1.2.3.4, 203.0.113.9, 10.9.9.9"}, proxies, "203.0.113.9"},
		{"several header lines", "10.1.2.3:443", []string{"1.2.3.4", "203.0.113.9"}, proxies, "203.0.113.9"},
		{"garbage stops at the last trusted hop", "10.1.2.3:443", []string{"203.0.113.9, nonsense, 10.9.9.9"}, proxies, "10.9.9.9"},
		{"proxy without header", "10.1.2.3:443", nil, proxies, "10.1.2.3"},
		{"IPv6 proxy", "[fd00::1]:443", []string{"2001:db8::5"}, proxies, "2001:db8::5"},
		{"mapped IPv4 entry", "10.1.2.3:443", []string{"::ffff:203.0.113.9"}, proxies, "203.0.113.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{proxies: tc.proxies}
			r := httptest.NewRequest("GET", "/ws", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := s.clientIP(r); got != tc.want {
				t.Errorf("clientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPrefixKey(t *testing.T) {
	for ip, want := range map[string]string{
		"203.0.113.9":         "203.0.113.0/24",
		"::ffff:203.0.113.9":  "203.0.113.0/24",
		"2001:db8:1:2:3::4":   "2001:db8:1::/48",
		"2001:db8:1:ffff::77": "2001:db8:1::/48",
	} {
		if got := prefixKey(ip); got != want {
			t.Errorf("prefixKey(%s) = %s, want %s", ip, got, want)
		}
	}
}

// TestPoolDisplacement: in a full pool a newcomer displaces the oldest
// socket of the prefix that holds the most, only if that prefix holds more
// than the newcomer's own; otherwise it is refused.
func TestPoolDisplacement(t *testing.T) {
	a := newAdmission(LimitsConfig{PendingMax: 4, PendingPerIP: 4, PendingPerPrefix: 4, ConnectsPerIP: Rate{Burst: 100}})
	now := time.Now()
	admit := func(ip string) *ticket {
		t.Helper()
		tk, status, why := a.admit(ip, now)
		if tk == nil {
			t.Logf("%s refused: %d %s", ip, status, why)
		}
		return tk
	}
	busy1, busy2, busy3 := admit("192.0.2.1"), admit("192.0.2.2"), admit("192.0.2.3")
	other := admit("198.51.100.1")
	// Full. The busy /24 holds 3: a fourth from it is refused.
	if admit("192.0.2.4") != nil {
		t.Fatal("a newcomer from the busiest prefix displaced one of its own")
	}
	// A newcomer from a third network displaces the busy /24's oldest.
	var kicked []*ticket
	for _, tk := range []*ticket{busy1, busy2, busy3, other} {
		if !tk.attach(func(bool) { kicked = append(kicked, tk) }) {
			t.Fatal("attach refused a live ticket")
		}
	}
	if admit("203.0.113.1") == nil || len(kicked) != 1 || kicked[0] != busy1 {
		t.Fatalf("newcomer from a quiet network: kicked %d, want the busy network's oldest", len(kicked))
	}
	// 2, 1, 1: the next from 198.51.100.0/24 (holding 1) displaces busy2.
	if admit("198.51.100.2") == nil || len(kicked) != 2 || kicked[1] != busy2 {
		t.Fatalf("second displacement: kicked %d, want busy2", len(kicked))
	}
	// 1, 2, 1: one from 198.51.100.0/24 again finds no prefix holding more.
	if admit("198.51.100.3") != nil {
		t.Fatal("a newcomer displaced a socket of a prefix holding no more than its own")
	}
	if st := a.snapshot(); st.Pending != 4 || st.Evicted != 2 || st.RefusedTotal != 2 {
		t.Fatalf("stats %+v, want 4 pending, 2 evicted, 2 refused", st)
	}
	// A displaced ticket cannot be attached any more (its upgrade was still
	// under way): the server closes that socket itself.
	if busy1.attach(func(bool) {}) {
		t.Fatal("a displaced ticket attached")
	}
}
