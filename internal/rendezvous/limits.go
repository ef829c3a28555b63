package rendezvous

import (
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// LimitsConfig bounds what one address, one identity or one socket can make
// the server do (docs/protocol.md, "Limits"). The defaults are far above what
// a family's terminal and phones need and low enough that a flood costs the
// server little: a refusal before login is an HTTP status without an upgrade;
// after login it is a rate_limited error, and a socket that keeps going is
// closed.
type LimitsConfig struct {
	// PendingMax caps sockets that have not logged in yet, from all addresses
	// together; PendingPerIP caps them per client address and
	// PendingPerPrefix per network (an IPv4 /24, an IPv6 /48), both 429. A
	// socket stops counting when it logs in or closes; one that never says
	// hello is closed after hello_timeout. When all PendingMax are taken, a
	// newcomer displaces the oldest socket of the prefix holding the most,
	// if that prefix holds more than the newcomer's (admission.go); only
	// when none does is it refused (503). So no flood from a few networks
	// keeps a terminal or a parent from logging in.
	PendingMax       int `toml:"pending_max"`
	PendingPerIP     int `toml:"pending_per_ip"`
	PendingPerPrefix int `toml:"pending_per_prefix"`
	// PairingMax, PairingPerIP and PairingPerPrefix cap pairing pages, which
	// log in without credentials and then count here until they close
	// (beyond: their hello gets rate_limited instead of a welcome, close
	// 1013); a full pool displaces pages the way the pending pool does.
	// PairingLifetime is how long a pairing page may stay connected at all
	// (close 1013 after it): a real pairing, the child's press included,
	// takes well under two minutes, and the page reconnects if it needs more.
	PairingMax       int           `toml:"pairing_max"`
	PairingPerIP     int           `toml:"pairing_per_ip"`
	PairingPerPrefix int           `toml:"pairing_per_prefix"`
	PairingLifetime  time.Duration `toml:"pairing_lifetime"`
	// PairFailuresPerSource is how many wrong pairing proofs (the terminal's
	// pair_reject "bad_secret" or "bad_proof") one network prefix may cause
	// per terminal within PairFailureMemory; after that its pair_requests
	// for that terminal get rate_limited and never reach it. The terminal
	// counts the same per source (the tag this server puts on each relayed
	// pair_request) and closes its pairing window after 200 wrong proofs
	// from all sources (internal/terminal, pairwindow.go); this keeps a
	// stranger's requests from using up the per-terminal rate as well.
	PairFailuresPerSource int           `toml:"pair_failures_per_source"`
	PairFailureMemory     time.Duration `toml:"pair_failure_memory"`
	// ConnectsPerIP is the WebSocket upgrade rate per client address (429).
	// Parents' phones are often behind carrier-grade NAT, many households to
	// one IPv4 address, so it is generous; the pending caps are what bound
	// a single address's weight.
	ConnectsPerIP Rate `toml:"connects_per_ip"`

	// LoginsPerIdentity is the successful-credential rate per terminal and per
	// parent: a terminal in a reconnect loop (or a stolen parent token used
	// from many places) cannot hammer the store. Beyond it the login gets
	// rate_limited and the socket is closed with 1013.
	LoginsPerIdentity Rate `toml:"logins_per_identity"`

	// Per logged-in socket: offers and answers, candidates, rings, call log
	// requests. Pairing requests have their own per-IP and per-device limits.
	SDP        Rate `toml:"sdp"`
	Candidates Rate `toml:"candidates"`
	Rings      Rate `toml:"rings"`
	CallLog    Rate `toml:"call_log"`
	// Resumes: a side sends one resume per call each time its socket
	// comes back; more is a client probing for calls (resume.go).
	Resumes Rate `toml:"resumes"`
	// Notify: a parent's notification settings (push_subscribe,
	// push_unsubscribe, phone_set, phone_clear, notify_status), together.
	Notify Rate `toml:"notify"`
	// Status: a terminal's health reports (status), sent when its health
	// changes: a few per call. Pings: a page's ping, sent when it has heard
	// nothing for a while or the phone's network comes back (hub_status.go).
	Status Rate `toml:"status"`
	Pings  Rate `toml:"pings"`
	// RateLimitedMax rate_limited answers on one socket close it with 1008.
	RateLimitedMax int `toml:"rate_limited_max"`

	// The HTTP server's own limits (see ConfigureHTTP): the time a client
	// may take to send its request headers (slow-loris), how long an idle
	// keep-alive connection stays open, and the size of the headers.
	ReadHeaderTimeout time.Duration `toml:"read_header_timeout"`
	IdleTimeout       time.Duration `toml:"idle_timeout"`
	MaxHeaderBytes    int           `toml:"max_header_bytes"`
}

// Rate is a token bucket: Burst events at once, refilled at PerMinute a
// minute. PerMinute 0 never refills (for tests that must not depend on time).
type Rate struct {
	Burst     int `toml:"burst"`
	PerMinute int `toml:"per_minute"`
}

func (r Rate) limit() rate.Limit { return rate.Limit(float64(r.PerMinute) / 60) }

func (r Rate) newLimiter() *rate.Limiter { return rate.NewLimiter(r.limit(), r.Burst) }

// DefaultLimits are the production limits.
func DefaultLimits() LimitsConfig {
	return LimitsConfig{
		PendingMax:            1000,
		PendingPerIP:          20,
		PendingPerPrefix:      100,
		PairingMax:            200,
		PairingPerIP:          5,
		PairingPerPrefix:      20,
		PairingLifetime:       3 * time.Minute,
		PairFailuresPerSource: 3,
		PairFailureMemory:     time.Hour,
		ConnectsPerIP:         Rate{Burst: 60, PerMinute: 120},
		LoginsPerIdentity:     Rate{Burst: 10, PerMinute: 10},
		SDP:                   Rate{Burst: 10, PerMinute: 10},
		Candidates:            Rate{Burst: 100, PerMinute: 300},
		Rings:                 Rate{Burst: 5, PerMinute: 10},
		CallLog:               Rate{Burst: 10, PerMinute: 20},
		Resumes:               Rate{Burst: 5, PerMinute: 10},
		Notify:                Rate{Burst: 10, PerMinute: 20},
		Status:                Rate{Burst: 10, PerMinute: 30},
		Pings:                 Rate{Burst: 10, PerMinute: 20},
		RateLimitedMax:        10,
		ReadHeaderTimeout:     5 * time.Second,
		IdleTimeout:           60 * time.Second,
		MaxHeaderBytes:        8 << 10,
	}
}

func (l LimitsConfig) validate(bad func(string, ...any) error) error {
	// A prefix may be allowed more than the total (the total then binds
	// first), but never less than one address.
	if l.PendingPerIP < 1 || l.PendingPerIP > l.PendingPerPrefix || l.PendingPerIP > l.PendingMax {
		return bad("limits: pending_per_ip %d must be at least 1 and at most pending_per_prefix %d and pending_max %d", l.PendingPerIP, l.PendingPerPrefix, l.PendingMax)
	}
	if l.PairingPerIP < 1 || l.PairingPerIP > l.PairingPerPrefix || l.PairingPerIP > l.PairingMax {
		return bad("limits: pairing_per_ip %d must be at least 1 and at most pairing_per_prefix %d and pairing_max %d", l.PairingPerIP, l.PairingPerPrefix, l.PairingMax)
	}
	if l.PairFailuresPerSource < 1 || l.PairFailureMemory <= 0 {
		return bad("limits: pair_failures_per_source must be at least 1 and pair_failure_memory positive")
	}
	for name, r := range map[string]Rate{
		"connects_per_ip": l.ConnectsPerIP, "logins_per_identity": l.LoginsPerIdentity, "sdp": l.SDP,
		"candidates": l.Candidates, "rings": l.Rings, "call_log": l.CallLog, "resumes": l.Resumes, "notify": l.Notify,
		"status": l.Status, "pings": l.Pings,
	} {
		if r.Burst < 1 || r.PerMinute < 0 {
			return bad("limits.%s: burst %d must be at least 1 and per_minute %d not negative", name, r.Burst, r.PerMinute)
		}
	}
	if l.Candidates.Burst < protocol.MaxCandidates {
		return bad("limits.candidates.burst %d is below the %d candidates a call may carry", l.Candidates.Burst, protocol.MaxCandidates)
	}
	if l.RateLimitedMax < 1 {
		return bad("limits.rate_limited_max must be at least 1")
	}
	if l.ReadHeaderTimeout <= 0 || l.IdleTimeout <= 0 || l.PairingLifetime <= 0 {
		return bad("limits: read_header_timeout, idle_timeout and pairing_lifetime must be positive")
	}
	if l.MaxHeaderBytes < 1024 {
		return bad("limits.max_header_bytes %d is below 1024", l.MaxHeaderBytes)
	}
	return nil
}

// ConfigureHTTP sets the HTTP server's own limits from the configuration:
// ReadHeaderTimeout (a client dribbling its upgrade request is cut off),
// IdleTimeout and MaxHeaderBytes. Call it on the http.Server that serves
// Handler.
func (s *Server) ConfigureHTTP(hs *http.Server) {
	hs.ReadHeaderTimeout = s.cfg.Limits.ReadHeaderTimeout
	hs.IdleTimeout = s.cfg.Limits.IdleTimeout
	hs.MaxHeaderBytes = s.cfg.Limits.MaxHeaderBytes
}

// loginAllowed spends one token of the identity's login rate. On refusal
// the client gets rate_limited and the socket is closed with 1013 (try again
// later); its reconnect backoff does the rest.
func (s *Server) loginAllowed(sess *session, identity string, m protocol.Message) bool {
	if s.logins.allow(identity, s.now()) {
		return true
	}
	s.admission.countLoginRefused()
	s.health.refused(refusedRateLimited)
	sess.log.Warn("login rate limited", "identity", identity)
	sess.sendError(protocol.ErrCodeRateLimited, "too many logins; wait a minute", m)
	sess.closeWith(websocket.StatusTryAgainLater, "rate limited")
	return false
}

// socketLimits are one logged-in socket's token buckets, used only by its
// reader goroutine. A bucket is made at its kind's first message: most
// sockets are idle terminals that never send most kinds, and a node holds
// 100,000 of them (BenchmarkIdleTerminals).
type socketLimits struct {
	cfg     *LimitsConfig
	byKind  map[limitKind]*rate.Limiter
	refused int
}

// limitKind is one bucket: the notification settings share one, and
// offers and answers another.
type limitKind uint8

const (
	limitNone limitKind = iota
	limitNotify
	limitSDP
	limitCandidates
	limitRings
	limitCallLog
	limitResumes
	limitStatus
	limitPings
)

func kindOf(typ string) limitKind {
	switch typ {
	case protocol.TypePushSubscribe, protocol.TypePushUnsubscribe, protocol.TypePhoneSet,
		protocol.TypePhoneClear, protocol.TypeNotifyStatus:
		return limitNotify
	case protocol.TypeOffer, protocol.TypeAnswer:
		return limitSDP
	case protocol.TypeCandidate:
		return limitCandidates
	case protocol.TypeRing:
		return limitRings
	case protocol.TypeCallLog:
		return limitCallLog
	case protocol.TypeResume:
		return limitResumes
	case protocol.TypeStatus:
		return limitStatus
	case protocol.TypePing:
		return limitPings
	}
	return limitNone
}

func (l *LimitsConfig) rate(k limitKind) Rate {
	switch k {
	case limitNotify:
		return l.Notify
	case limitSDP:
		return l.SDP
	case limitCandidates:
		return l.Candidates
	case limitRings:
		return l.Rings
	case limitCallLog:
		return l.CallLog
	case limitResumes:
		return l.Resumes
	case limitStatus:
		return l.Status
	default:
		return l.Pings
	}
}

func newSocketLimits(l *LimitsConfig) *socketLimits {
	return &socketLimits{cfg: l}
}

// allow reports whether a message of type typ may go on now.
func (l *socketLimits) allow(typ string, now time.Time) bool {
	k := kindOf(typ)
	if k == limitNone {
		return true
	}
	lim := l.byKind[k]
	if lim == nil {
		if l.byKind == nil {
			l.byKind = map[limitKind]*rate.Limiter{}
		}
		lim = l.cfg.rate(k).newLimiter()
		l.byKind[k] = lim
	}
	return lim.AllowN(now, 1)
}

// rateLimited answers a message over its socket's rate and reports whether
// the socket has now been refused often enough to be closed (1008).
func (s *Server) rateLimited(sess *session, lim *socketLimits, m protocol.Message) (closed bool) {
	lim.refused++
	s.admission.countMessageRefused()
	sess.sendError(protocol.ErrCodeRateLimited, fmt.Sprintf("too many %s messages; slow down", m.Type), m)
	if lim.refused >= s.cfg.Limits.RateLimitedMax {
		sess.log.Warn("too many rate-limited messages, closing", "type", m.Type)
		sess.closeWith(websocket.StatusPolicyViolation, "too many rate-limited messages")
		return true
	}
	return false
}
