package rendezvous

import (
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// admission decides, before the WebSocket upgrade, whether a connection may
// become a socket at all: the per-address connect rate, then the per-address
// and global caps on sockets that have not logged in yet. A refusal is an
// HTTP status with Retry-After and costs no upgrade, no goroutines and no
// challenge; an admitted socket holds its "pending" slot until its login
// succeeds or it closes (the hello deadline bounds that).
type admission struct {
	cfg      LimitsConfig
	connects *limiter

	mu      sync.Mutex
	pending int
	perIP   map[string]int

	stats struct {
		admitted, refusedRate, refusedPerIP, refusedTotal, loginsRefused, messagesRefused atomic.Int64
	}
}

// AdmissionStats counts what the limits did since the server started.
type AdmissionStats struct {
	Admitted        int64 // WebSocket upgrades let through
	RefusedRate     int64 // 429: the address's connect rate
	RefusedPerIP    int64 // 429: the address's pending sockets
	RefusedTotal    int64 // 503: all pending sockets
	Pending         int   // sockets not logged in right now
	LoginsRefused   int64 // logins over an identity's rate
	MessagesRefused int64 // messages answered rate_limited
}

func newAdmission(cfg LimitsConfig) *admission {
	return &admission{cfg: cfg, connects: newRateLimiter(cfg.ConnectsPerIP), perIP: map[string]int{}}
}

// admit takes a pending slot for a connection from ip, or says which HTTP
// status refuses it. release gives the slot back; it is idempotent.
func (a *admission) admit(ip string, now time.Time) (release func(), status int, why string) {
	ip = addressKey(ip)
	if !a.connects.allow(ip, now) {
		a.stats.refusedRate.Add(1)
		return nil, http.StatusTooManyRequests, "too many connections from this address"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.perIP[ip] >= a.cfg.PendingPerIP:
		a.stats.refusedPerIP.Add(1)
		return nil, http.StatusTooManyRequests, "too many connections from this address are not logged in"
	case a.pending >= a.cfg.PendingMax:
		a.stats.refusedTotal.Add(1)
		return nil, http.StatusServiceUnavailable, "server busy"
	}
	a.pending++
	a.perIP[ip]++
	a.stats.admitted.Add(1)
	var once sync.Once
	return func() { once.Do(func() { a.release(ip) }) }, 0, ""
}

// addressKey is what the per-address limits count by: an IPv4 address, or
// an IPv6 address's /64, which one subscriber normally holds whole, so
// rotating through it buys no new budget.
func addressKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	return netip.PrefixFrom(addr, 64).Masked().String()
}

func (a *admission) release(ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending--
	if a.perIP[ip]--; a.perIP[ip] <= 0 {
		delete(a.perIP, ip)
	}
}

func (a *admission) countLoginRefused()   { a.stats.loginsRefused.Add(1) }
func (a *admission) countMessageRefused() { a.stats.messagesRefused.Add(1) }

func (a *admission) snapshot() AdmissionStats {
	a.mu.Lock()
	pending := a.pending
	a.mu.Unlock()
	return AdmissionStats{
		Admitted: a.stats.admitted.Load(), RefusedRate: a.stats.refusedRate.Load(),
		RefusedPerIP: a.stats.refusedPerIP.Load(), RefusedTotal: a.stats.refusedTotal.Load(),
		Pending: pending, LoginsRefused: a.stats.loginsRefused.Load(), MessagesRefused: a.stats.messagesRefused.Load(),
	}
}

// AdmissionStats reports what the connection and message limits did.
func (s *Server) AdmissionStats() AdmissionStats { return s.admission.snapshot() }

// refuse answers a connection the admission refused, before any upgrade.
func refuse(w http.ResponseWriter, status int, why string) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	w.Header().Set("Connection", "close")
	http.Error(w, why, status)
}

// retryAfterSeconds is what a refused client is told to wait.
const retryAfterSeconds = 10
