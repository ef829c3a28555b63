package rendezvous

import (
	"container/list"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// admission decides, before the WebSocket upgrade, whether a connection may
// become a socket: the per-address connect rate, then the caps on sockets not
// yet logged in (per address, per network prefix, in total). A refusal is an
// HTTP status with Retry-After and costs no upgrade. An admitted socket holds
// a "pending" slot until it logs in or closes; a pairing page, which proves
// nothing at login, then moves to a pool of its own, capped the same way.
//
// A full pool evicts instead of refusing (longest-queue drop): the newcomer
// takes the oldest slot of the prefix that holds the most, if that holds more
// than the newcomer's own. Whoever holds most sockets cannot keep others out,
// and a flood must come from as many prefixes as the pool has slots.
type admission struct {
	cfg      LimitsConfig
	connects *limiter

	mu      sync.Mutex
	pending *pool
	pairing *pool

	stats struct {
		admitted, refusedRate, refusedPerIP, refusedPerPrefix, refusedTotal, evicted,
		pairingRefused, pairingEvicted, loginsRefused, messagesRefused atomic.Int64
	}
}

// pool counts sockets in one state, in total, per address and per prefix,
// and keeps each prefix's sockets oldest first so it can evict.
type pool struct {
	max, perAddr, perPrefix int

	total    int
	addrs    map[string]int
	prefixes map[string]*list.List // of *ticket, oldest first
}

func newPool(max, perAddr, perPrefix int) *pool {
	return &pool{max: max, perAddr: perAddr, perPrefix: perPrefix, addrs: map[string]int{}, prefixes: map[string]*list.List{}}
}

func (p *pool) count(prefix string) int {
	if l := p.prefixes[prefix]; l != nil {
		return l.Len()
	}
	return 0
}

func (p *pool) add(t *ticket) {
	p.total++
	p.addrs[t.addr]++
	l := p.prefixes[t.prefix]
	if l == nil {
		l = list.New()
		p.prefixes[t.prefix] = l
	}
	t.elem = l.PushBack(t)
}

func (p *pool) remove(t *ticket) {
	p.total--
	if p.addrs[t.addr]--; p.addrs[t.addr] <= 0 {
		delete(p.addrs, t.addr)
	}
	if l := p.prefixes[t.prefix]; l != nil {
		l.Remove(t.elem)
		if l.Len() == 0 {
			delete(p.prefixes, t.prefix)
		}
	}
	t.elem = nil
}

// check says whether a socket from t's address and prefix may join now:
// why is "" if it may, else the cap it is over ("addr", "prefix", "full").
// In a full pool it may if it can displace victim (see pickVictim).
func (p *pool) check(t *ticket) (why string, victim *ticket) {
	switch {
	case p.addrs[t.addr] >= p.perAddr:
		return "addr", nil
	case p.count(t.prefix) >= p.perPrefix:
		return "prefix", nil
	case p.total < p.max:
		return "", nil
	}
	if victim = p.pickVictim(t.prefix); victim == nil {
		return "full", nil
	}
	return "", victim
}

// pickVictim is the socket a newcomer from prefix displaces in a full pool:
// the oldest of the prefix holding the most sockets (the oldest head among
// equals), if that prefix holds more than the newcomer's does, else nil.
// It scans the prefixes, at most max of them, and only when the pool is
// full.
func (p *pool) pickVictim(prefix string) *ticket {
	var best *ticket
	bestN := p.count(prefix) // a victim's prefix must hold more than this
	for _, l := range p.prefixes {
		head := l.Front().Value.(*ticket)
		if n := l.Len(); n > bestN || (best != nil && n == bestN && head.seq < best.seq) {
			best, bestN = head, n
		}
	}
	return best
}

// AdmissionStats counts what the limits did since the server started.
type AdmissionStats struct {
	Admitted         int64 // WebSocket upgrades let through
	RefusedRate      int64 // 429: the address's connect rate
	RefusedPerIP     int64 // 429: the address's pending sockets
	RefusedPerPrefix int64 // 429: the network prefix's pending sockets
	RefusedTotal     int64 // 503: all pending sockets, none of them displaceable
	Evicted          int64 // pending sockets closed to make room for a newcomer
	PairingRefused   int64 // pairing logins over the pairing pool's caps
	PairingEvicted   int64 // pairing pages closed to make room for a newcomer
	Pending          int   // sockets not logged in right now
	Pairing          int   // pairing pages connected right now
	LoginsRefused    int64 // logins over an identity's rate
	MessagesRefused  int64 // messages answered rate_limited
}

func newAdmission(cfg LimitsConfig) *admission {
	return &admission{cfg: cfg, connects: newRateLimiter(cfg.ConnectsPerIP),
		pending: newPool(cfg.PendingMax, cfg.PendingPerIP, cfg.PendingPerPrefix),
		pairing: newPool(cfg.PairingMax, cfg.PairingPerIP, cfg.PairingPerPrefix)}
}

// ticket is one admitted socket's place in the pools.
type ticket struct {
	a            *admission
	addr, prefix string
	seq          uint64 // admission order, for the oldest among equals

	// Guarded by a.mu.
	state ticketState
	elem  *list.Element // in its pool's prefix list
	evict func(pairing bool)
}

type ticketState int

const (
	ticketPending ticketState = iota
	ticketPairing
	ticketNone    // logged in as terminal or parent, or closed
	ticketEvicted // displaced by a newcomer: its socket is being dropped
)

var ticketSeq atomic.Uint64

// admit takes a pending slot for a connection from ip, displacing another
// socket's if the pool is full (see admission), or says which HTTP status
// refuses it (t is then nil).
func (a *admission) admit(ip string, now time.Time) (t *ticket, status int, why string) {
	t = &ticket{a: a, addr: addressKey(ip), prefix: prefixKey(ip), seq: ticketSeq.Add(1)}
	if !a.connects.allow(t.addr, now) {
		a.stats.refusedRate.Add(1)
		return nil, http.StatusTooManyRequests, "too many connections from this address"
	}
	a.mu.Lock()
	why, victim := a.pending.check(t)
	switch why {
	case "addr":
		a.mu.Unlock()
		a.stats.refusedPerIP.Add(1)
		return nil, http.StatusTooManyRequests, "too many connections from this address are not logged in"
	case "prefix":
		a.mu.Unlock()
		a.stats.refusedPerPrefix.Add(1)
		return nil, http.StatusTooManyRequests, "too many connections from this network are not logged in"
	case "full":
		a.mu.Unlock()
		a.stats.refusedTotal.Add(1)
		return nil, http.StatusServiceUnavailable, "server busy"
	}
	if victim != nil {
		a.pending.remove(victim)
		victim.state = ticketEvicted
		a.stats.evicted.Add(1)
	}
	a.pending.add(t)
	a.mu.Unlock()
	a.stats.admitted.Add(1)
	victim.kick(false)
	return t, 0, ""
}

// kick closes an evicted socket, if it has one yet (see attach).
func (t *ticket) kick(pairing bool) {
	if t == nil {
		return
	}
	t.a.mu.Lock()
	evict := t.evict
	t.a.mu.Unlock()
	if evict != nil {
		evict(pairing)
	}
}

// attach gives the ticket the means to close its socket when it is
// evicted. It reports false if it was evicted already, before its socket
// existed: the caller closes it then.
func (t *ticket) attach(evict func(pairing bool)) bool {
	t.a.mu.Lock()
	defer t.a.mu.Unlock()
	if t.state == ticketNone || t.state == ticketEvicted {
		return false
	}
	t.evict = evict
	return true
}

// authenticated: the socket logged in as terminal or parent; it counts
// nowhere any more, not even against its address's connect rate (its token
// goes back). So the connect rate counts the connections that proved
// nothing — floods, failed logins, pairing pages, sockets that never said
// hello — and a thousand units behind one carrier-grade NAT address, which
// each log in with a valid device certificate, come back after a server
// restart as fast as they can log in (docs/security.md, "Reconnects"). A
// stolen credential cannot buy more than its identity's own login rate
// (LoginsPerIdentity, checked before this).
func (t *ticket) authenticated(now time.Time) {
	t.leave()
	t.a.connects.refund(t.addr, now)
}

// pairing moves a pending socket that logged in as a pairing page to the
// pairing pool, displacing a page of a busier prefix if the pool is full,
// unless the pool's caps refuse it.
func (t *ticket) pairing() bool {
	a := t.a
	a.mu.Lock()
	if t.state != ticketPending {
		a.mu.Unlock()
		return t.state == ticketPairing
	}
	why, victim := a.pairing.check(t)
	if why != "" {
		a.mu.Unlock()
		a.stats.pairingRefused.Add(1)
		return false
	}
	if victim != nil {
		a.pairing.remove(victim)
		victim.state = ticketEvicted
		a.stats.pairingEvicted.Add(1)
	}
	a.pending.remove(t)
	a.pairing.add(t)
	t.state = ticketPairing
	a.mu.Unlock()
	victim.kick(true)
	return true
}

// leave gives back whatever slot the ticket holds; it is idempotent.
func (t *ticket) leave() {
	a := t.a
	a.mu.Lock()
	defer a.mu.Unlock()
	switch t.state {
	case ticketPending:
		a.pending.remove(t)
	case ticketPairing:
		a.pairing.remove(t)
	case ticketEvicted:
		return // stays evicted: see failing
	}
	t.state = ticketNone
}

// failing takes a socket whose login failed out of the pools at once, so
// it cannot be chosen to make room while its refusal is sent, and reports
// whether a newcomer displaced it already (it is being dropped then, and
// is told nothing). Each socket is then either refused or displaced,
// never both (TestFloodWhileCalling counts them).
func (t *ticket) failing() (evicted bool) {
	t.leave()
	t.a.mu.Lock()
	defer t.a.mu.Unlock()
	return t.state == ticketEvicted
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

// prefixKey is the network a client address belongs to for the per-prefix
// caps and for counting wrong pairing proofs: an IPv4 /24 or an IPv6 /48,
// what one hosting customer or one site typically holds. Parents behind
// carrier-grade NAT share addresses within a carrier's pool, so the
// per-prefix caps are several times the per-address ones.
func prefixKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	return netip.PrefixFrom(addr, bits).Masked().String()
}

func (a *admission) countLoginRefused()   { a.stats.loginsRefused.Add(1) }
func (a *admission) countMessageRefused() { a.stats.messagesRefused.Add(1) }

func (a *admission) snapshot() AdmissionStats {
	a.mu.Lock()
	pending, pairing := a.pending.total, a.pairing.total
	a.mu.Unlock()
	return AdmissionStats{
		Admitted: a.stats.admitted.Load(), RefusedRate: a.stats.refusedRate.Load(),
		RefusedPerIP: a.stats.refusedPerIP.Load(), RefusedPerPrefix: a.stats.refusedPerPrefix.Load(),
		RefusedTotal: a.stats.refusedTotal.Load(), Evicted: a.stats.evicted.Load(),
		PairingRefused: a.stats.pairingRefused.Load(), PairingEvicted: a.stats.pairingEvicted.Load(),
		Pending: pending, Pairing: pairing,
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
