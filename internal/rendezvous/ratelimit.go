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
	every   time.Duration
	burst   int
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

const limiterPruneAt = 10_000

// newLimiter allows perMinute events a minute per key, all of them at once.
func newLimiter(perMinute int) *limiter {
	return &limiter{every: time.Minute / time.Duration(perMinute), burst: perMinute, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= limiterPruneAt {
			l.prune(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.buckets[key] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}

// prune forgets buckets idle long enough to have refilled completely.
func (l *limiter) prune(now time.Time) {
	full := l.every * time.Duration(l.burst)
	for k, b := range l.buckets {
		if now.Sub(b.last) > full {
			delete(l.buckets, k)
		}
	}
}
