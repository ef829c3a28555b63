package rendezvous

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per key (client IP, device ID). Idle buckets are
// forgotten once the table grows, so a flood of keys cannot pin memory.
type limiter struct {
	mu      sync.Mutex
	rate    Rate
	buckets map[string]*bucket
	pruneAt int // table size that triggers the next prune
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
	// refunds: tokens given back by refund, spent before lim's.
	refunds int
}

const limiterPruneAt = 10_000

// newLimiter allows perMinute events a minute per key, all of them at once.
func newLimiter(perMinute int) *limiter {
	return newRateLimiter(Rate{Burst: perMinute, PerMinute: perMinute})
}

// newRateLimiter allows r per key.
func newRateLimiter(r Rate) *limiter {
	return &limiter{rate: r, buckets: map[string]*bucket{}, pruneAt: limiterPruneAt}
}

func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.pruneAt {
			l.prune(now)
			// Many live keys (a flood from many addresses) would otherwise
			// make every new key scan the whole table again.
			l.pruneAt = max(limiterPruneAt, 2*len(l.buckets))
		}
		b = &bucket{lim: l.rate.newLimiter()}
		l.buckets[key] = b
	}
	b.last = now
	if b.refunds > 0 {
		b.refunds--
		return true
	}
	return b.lim.AllowN(now, 1)
}

// refund gives back one event key was allowed: the connect rate counts only
// connections that did not prove a credential (admission.go). The bucket
// never holds more than its burst: a refund beyond what the bucket lacks
// is dropped, so refunds cannot bank budget for later. (rate.Limiter has no
// way to put a token back once it is spent, hence the count beside it.)
func (l *limiter) refund(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return // forgotten: it had refilled completely
	}
	if float64(b.refunds)+b.lim.TokensAt(now) < float64(l.rate.Burst) {
		b.refunds++
	}
}

// prune forgets buckets idle long enough to have refilled completely. A
// bucket that never refills (PerMinute 0, tests only) is never forgotten.
func (l *limiter) prune(now time.Time) {
	if l.rate.PerMinute == 0 {
		return
	}
	full := time.Duration(l.rate.Burst) * time.Minute / time.Duration(l.rate.PerMinute)
	for k, b := range l.buckets {
		if now.Sub(b.last) > full {
			delete(l.buckets, k)
		}
	}
}
