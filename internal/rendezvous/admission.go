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
// challenge. An admitted socket holds a "pending" slot until it logs in as
// terminal or parent or closes (the hello deadline bounds that). A pairing
// page proves nothing when it logs in, so it moves to a pool of its own,
// capped the same way, and holds that slot until it closes: pairing pages
// can neither bypass the pending caps nor, by filling them, keep terminals
// and parents out.
type admission struct {
	cfg      LimitsConfig
	connects *limiter

	mu      sync.Mutex
	pending pool
	pairing pool

	stats struct {
		admitted, refusedRate, refusedPerIP, refusedTotal, pairingRefused, loginsRefused, messagesRefused atomic.Int64
	}
}

// pool counts sockets in one state, in total and per address.
type pool struct {
	total int
	perIP map[string]int
}

func (p *pool) add(ip string) { p.total++; p.perIP[ip]++ }

func (p *pool) remove(ip string) {
	p.total--
	if p.perIP[ip]--; p.perIP[ip] <= 0 {
		delete(p.perIP, ip)
	}
}

// AdmissionStats counts what the limits did since the server started.
type AdmissionStats struct {
	Admitted        int64 // WebSocket upgrades let through
	RefusedRate     int64 // 429: the address's connect rate
	RefusedPerIP    int64 // 429: the address's pending sockets
	RefusedTotal    int64 // 503: all pending sockets
	PairingRefused  int64 // pairing logins over the pairing pool's caps
	Pending         int   // sockets not logged in right now
	Pairing         int   // pairing pages connected right now
	LoginsRefused   int64 // logins over an identity's rate
	MessagesRefused int64 // messages answered rate_limited
}

func newAdmission(cfg LimitsConfig) *admission {
	return &admission{cfg: cfg, connects: newRateLimiter(cfg.ConnectsPerIP),
		pending: pool{perIP: map[string]int{}}, pairing: pool{perIP: map[string]int{}}}
}

// ticket is one admitted socket's place in the pools.
type ticket struct {
	a     *admission
	ip    string
	state ticketState // guarded by a.mu
}

type ticketState int

const (
	ticketPending ticketState = iota
	ticketPairing
	ticketNone // logged in as terminal or parent, or closed
)

// admit takes a pending slot for a connection from ip, or says which HTTP
// status refuses it (t is then nil).
func (a *admission) admit(ip string, now time.Time) (t *ticket, status int, why string) {
	ip = addressKey(ip)
	if !a.connects.allow(ip, now) {
		a.stats.refusedRate.Add(1)
		return nil, http.StatusTooManyRequests, "too many connections from this address"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.pending.perIP[ip] >= a.cfg.PendingPerIP:
		a.stats.refusedPerIP.Add(1)
		return nil, http.StatusTooManyRequests, "too many connections from this address are not logged in"
	case a.pending.total >= a.cfg.PendingMax:
		a.stats.refusedTotal.Add(1)
		return nil, http.StatusServiceUnavailable, "server busy"
	}
	a.pending.add(ip)
	a.stats.admitted.Add(1)
	return &ticket{a: a, ip: ip}, 0, ""
}

// authenticated: the socket logged in as terminal or parent; it counts
// nowhere any more.
func (t *ticket) authenticated() { t.leave() }

// pairing moves a pending socket that logged in as a pairing page to the
// pairing pool, unless that pool is full for its address or in total.
func (t *ticket) pairing() bool {
	a := t.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.state != ticketPending {
		return t.state == ticketPairing
	}
	if a.pairing.perIP[t.ip] >= a.cfg.PairingPerIP || a.pairing.total >= a.cfg.PairingMax {
		a.stats.pairingRefused.Add(1)
		return false
	}
	a.pending.remove(t.ip)
	a.pairing.add(t.ip)
	t.state = ticketPairing
	return true
}

// leave gives back whatever slot the ticket holds; it is idempotent.
func (t *ticket) leave() {
	a := t.a
	a.mu.Lock()
	defer a.mu.Unlock()
	switch t.state {
	case ticketPending:
		a.pending.remove(t.ip)
	case ticketPairing:
		a.pairing.remove(t.ip)
	}
	t.state = ticketNone
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

func (a *admission) countLoginRefused()   { a.stats.loginsRefused.Add(1) }
func (a *admission) countMessageRefused() { a.stats.messagesRefused.Add(1) }

func (a *admission) snapshot() AdmissionStats {
	a.mu.Lock()
	pending, pairing := a.pending.total, a.pairing.total
	a.mu.Unlock()
	return AdmissionStats{
		Admitted: a.stats.admitted.Load(), RefusedRate: a.stats.refusedRate.Load(),
		RefusedPerIP: a.stats.refusedPerIP.Load(), RefusedTotal: a.stats.refusedTotal.Load(),
		PairingRefused: a.stats.pairingRefused.Load(), Pending: pending, Pairing: pairing,
		LoginsRefused: a.stats.loginsRefused.Load(), MessagesRefused: a.stats.messagesRefused.Load(),
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
