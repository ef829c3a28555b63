package rendezvous

import (
	"fmt"
	"testing"
	"time"
)

func TestAddressKey(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
	}
	for _, tc := range tests {
		if got := addressKey(tc.ip); got != tc.want {
			t.Errorf("addressKey(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}

// TestLimiterManyLiveKeys: a table full of live keys is not scanned again
// on every new key, and a pruned table forgets only buckets that refilled.
func TestLimiterManyLiveKeys(t *testing.T) {
	l := newRateLimiter(Rate{Burst: 1, PerMinute: 1})
	now := time.Unix(1_000_000, 0)
	for i := range limiterPruneAt + 10 {
		if !l.allow(fmt.Sprint(i), now) {
			t.Fatalf("key %d refused on its first event", i)
		}
	}
	if l.pruneAt != 2*limiterPruneAt {
		t.Fatalf("after a prune that removed nothing the next is at %d, want %d", l.pruneAt, 2*limiterPruneAt)
	}
	if l.allow("0", now) {
		t.Fatal("a live key's empty bucket was forgotten")
	}
	later := now.Add(2 * time.Minute)
	for i := range limiterPruneAt + 1 {
		l.allow(fmt.Sprint("new", i), later)
	}
	if _, ok := l.buckets["0"]; ok {
		t.Fatal("a bucket idle long enough to refill survived the prune")
	}
}
