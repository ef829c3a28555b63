package rendezvous

import (
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// The server's own health for Prometheus, beside the fleet's aggregates
// (fleet_http.go), in one registry (newRegistry) that both GET /metrics
// (the server's own machine) and GET /fleet/metrics (also an operator's
// token) serve: sockets open, logins and the logins refused by reason,
// call setups, TURN allocations, errors by kind, the push and notifier
// outboxes, the call log and backups. Like the rest of metrics.go, none of
// it names a unit, a parent or a call; every label takes one of a few
// fixed values.

// Login refusals (tuanju_logins_refused_total's reason).
const (
	refusedTimeout        = "timeout"         // no hello in time
	refusedBadHello       = "bad_hello"       // not a hello, or the wrong fields for its role
	refusedBadCertificate = "bad_certificate" // a terminal's certificate did not verify
	refusedBadSignature   = "bad_signature"   // a terminal's login signature did not verify
	refusedKeyMismatch    = "key_mismatch"    // a device ID registered with another key
	refusedRevoked        = "revoked"         // on the deny list
	refusedNotInManifest  = "not_in_manifest" // fleet.require and in no manifest
	refusedWrongToken     = "wrong_token"     // a parent unknown, or its token wrong
	refusedPending        = "pairing_pending" // a parent whose pairing its terminal has not confirmed
	refusedRateLimited    = "rate_limited"    // the identity's login rate
	refusedPairingFull    = "pairing_full"    // too many pairing pages
	refusedInternal       = "internal"        // the server could not record it
)

var loginRefusals = []string{refusedTimeout, refusedBadHello, refusedBadCertificate, refusedBadSignature,
	refusedKeyMismatch, refusedRevoked, refusedNotInManifest, refusedWrongToken, refusedPending,
	refusedRateLimited, refusedPairingFull, refusedInternal}

// setupFailures are the reasons a call that was not answered ended for
// (tuanju_call_setups_failed_total): its hangup reason, or the hub's
// refusal of the ring (not_paired, busy, unavailable). Anything else
// counts as "other".
var setupFailures = []string{protocol.ReasonNotPaired, protocol.ReasonBusy, protocol.ReasonUnavailable,
	protocol.ReasonNoAnswer, protocol.ReasonDecline, protocol.ReasonCancel, protocol.ReasonPeerLeft,
	protocol.ReasonFailed, protocol.ReasonHangup, reasonNotResumed, "other"}

// errorKinds are tuanju_errors_total's kinds: the protocol error codes the
// server answers clients with, and send_queue_full, a client dropped for
// not reading what it was sent.
var errorKinds = []string{protocol.ErrCodeBadMessage, protocol.ErrCodeAuthFailed, protocol.ErrCodeNotAllowed,
	protocol.ErrCodeNotPaired, protocol.ErrCodeUnknownCall, protocol.ErrCodeUnknownDevice, protocol.ErrCodeDeviceOffline,
	protocol.ErrCodeAlreadyPaired, protocol.ErrCodePairRejected, protocol.ErrCodeRateLimited, protocol.ErrCodeBusy,
	protocol.ErrCodeInternal, protocol.ErrCodePairingPending, protocol.ErrCodePairBusy, errSendQueueFull, "other"}

const errSendQueueFull = "send_queue_full"

// health are the server's counters kept by client_golang itself.
type health struct {
	logins        *prometheus.CounterVec // role
	loginsRefused *prometheus.CounterVec // reason
	callsStarted  *prometheus.CounterVec // direction
	callsAnswered prometheus.Counter
	setupsFailed  *prometheus.CounterVec // reason
	callsEnded    *prometheus.CounterVec // outcome
	errors        *prometheus.CounterVec // kind
}

func newHealth() *health {
	h := &health{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tuanju_logins_total",
			Help: "Logins that succeeded, by role (terminal, parent, pairing page)."}, []string{"role"}),
		loginsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tuanju_logins_refused_total",
			Help: "Logins refused, by reason."}, []string{"reason"}),
		callsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tuanju_call_setups_started_total",
			Help: "Rings the server took (a call being set up), by who rang: from_terminal, from_parent."}, []string{"direction"}),
		callsAnswered: prometheus.NewCounter(prometheus.CounterOpts{Name: "tuanju_call_setups_answered_total",
			Help: "Rings that were answered."}),
		setupsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tuanju_call_setups_failed_total",
			Help: "Rings that ended unanswered or were refused, by reason (the hangup's, or the server's refusal)."}, []string{"reason"}),
		callsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tuanju_calls_ended_total",
			Help: "Calls ended, by the outcome the call log records (answered, missed, declined, cancelled, failed, interrupted)."}, []string{"outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tuanju_errors_total",
			Help: "Errors the server answered clients with, by protocol error code; send_queue_full: clients dropped for not reading."}, []string{"kind"}),
	}
	// Every label value from the start, at 0, so an alert's rate() sees
	// the first one.
	for _, r := range []string{protocol.RoleTerminal, protocol.RoleParent, protocol.RolePairing} {
		h.logins.WithLabelValues(r)
	}
	for _, r := range loginRefusals {
		h.loginsRefused.WithLabelValues(r)
	}
	for _, d := range []string{protocol.DirFromTerminal, protocol.DirFromParent} {
		h.callsStarted.WithLabelValues(d)
	}
	for _, r := range setupFailures {
		h.setupsFailed.WithLabelValues(r)
	}
	for _, o := range []string{protocol.OutcomeAnswered, protocol.OutcomeMissed, protocol.OutcomeDeclined,
		protocol.OutcomeCancelled, protocol.OutcomeFailed, protocol.OutcomeInterrupted} {
		h.callsEnded.WithLabelValues(o)
	}
	for _, k := range errorKinds {
		h.errors.WithLabelValues(k)
	}
	return h
}

// refused counts a refused login.
func (h *health) refused(reason string) { h.loginsRefused.WithLabelValues(reason).Inc() }

// setupFailed counts a ring that ended unanswered, or was refused.
func (h *health) setupFailed(reason string) {
	if !slices.Contains(setupFailures, reason) {
		reason = "other"
	}
	h.setupsFailed.WithLabelValues(reason).Inc()
}

// error counts an error a client was answered with (its code).
func (h *health) error(code string) {
	if !slices.Contains(errorKinds, code) {
		code = "other"
	}
	h.errors.WithLabelValues(code).Inc()
}

var (
	descConnections = prometheus.NewDesc("tuanju_connections",
		"WebSocket connections open now: terminal, parent (each page), pairing (pairing pages), unauthenticated (not logged in yet).",
		[]string{"kind"}, nil)
	descTURNLive = prometheus.NewDesc("tuanju_turn_allocations",
		"TURN relay allocations live now.", nil, nil)
	descTURNCreated = prometheus.NewDesc("tuanju_turn_allocations_created_total",
		"TURN relay allocations made since the server started.", nil, nil)
	descAdmission = prometheus.NewDesc("tuanju_connections_refused_total",
		"WebSocket connections refused or closed by the connection limits before login, by limit.", []string{"limit"}, nil)
)

// counterDesc is one of metrics.go's counters or gauges, read at scrape.
type counterDesc struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	v    func(Metrics) float64
}

func newCounterDesc(name, help string, kind prometheus.ValueType, v func(Metrics) float64) counterDesc {
	return counterDesc{prometheus.NewDesc(name, help, nil, nil), kind, v}
}

// serverCounters are the counters of metrics.go, under the names GET
// /metrics has always served them by.
var serverCounters = []counterDesc{
	newCounterDesc("tuanju_call_log_write_failures_total", "Call-log writes that failed (each try); the calls went on.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.CallLogWriteFailures) }),
	newCounterDesc("tuanju_call_log_writes_retried_total", "Call-log records written by a retry after failing.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.CallLogWritesRetried) }),
	newCounterDesc("tuanju_call_log_writes_dropped_total", "Call-log records given up on: missing from a family's log.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.CallLogWritesDropped) }),
	newCounterDesc("tuanju_call_log_pending", "Call-log records waiting for a retry.", prometheus.GaugeValue, func(m Metrics) float64 { return float64(m.CallLogPending) }),
	newCounterDesc("tuanju_call_log_hung_total", "Call-log commits that hung past the wait for them: messages went out before their records.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.CallLogHung) }),
	newCounterDesc("tuanju_calls_closed_at_start_total", "Calls found open at start (the server stopped without ending them) and closed.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.CallsClosedAtStart) }),
	newCounterDesc("tuanju_registry_backups_total", "Automatic registry backups written and checked.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.BackupsWritten) }),
	newCounterDesc("tuanju_registry_backup_failures_total", "Automatic registry backups that failed (the last good one was kept).", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.BackupFailures) }),
	newCounterDesc("tuanju_registry_last_backup_timestamp_seconds", "When the newest good registry backup was made (Unix time; 0: none yet).", prometheus.GaugeValue, func(m Metrics) float64 { return float64(m.LastBackup) }),
	newCounterDesc("tuanju_push_sent_total", "Web Push messages a push service accepted.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.PushSent) }),
	newCounterDesc("tuanju_push_failures_total", "Web Push tries that failed (each try; retried while worth sending).", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.PushFailed) }),
	newCounterDesc("tuanju_push_dropped_total", "Web Push messages given up on (queue full, too late, refused, shutdown).", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.PushDropped) }),
	newCounterDesc("tuanju_push_queued", "Web Push messages queued or waiting for a retry.", prometheus.GaugeValue, func(m Metrics) float64 { return float64(m.PushQueued) }),
	newCounterDesc("tuanju_push_subscriptions_removed_total", "Push subscriptions the push service reported gone (404/410) and removed.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.PushSubscriptionsRemoved) }),
	newCounterDesc("tuanju_notify_sent_total", "Notifier webhook events (SMS, voice) the gateway accepted.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.NotifySent) }),
	newCounterDesc("tuanju_notify_failures_total", "Notifier webhook tries that failed (each try).", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.NotifyFailed) }),
	newCounterDesc("tuanju_notify_dropped_total", "Notifier events given up on: a parent was not texted or called.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.NotifyDropped) }),
	newCounterDesc("tuanju_notify_rate_limited_total", "Notifier events not sent: the family had used its day's allowance.", prometheus.CounterValue, func(m Metrics) float64 { return float64(m.NotifyRateLimited) }),
	newCounterDesc("tuanju_notify_queued", "Notifier events queued or waiting for a retry.", prometheus.GaugeValue, func(m Metrics) float64 { return float64(m.NotifyQueued) }),
}

// serverCollector reads, at each scrape, what the server keeps outside
// client_golang: metrics.go's counters, the sockets open, the admission's
// counts and the TURN relay's allocations.
type serverCollector struct{ s *Server }

func (c serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range serverCounters {
		ch <- d.desc
	}
	for _, d := range []*prometheus.Desc{descConnections, descTURNLive, descTURNCreated, descAdmission} {
		ch <- d
	}
}

func (c serverCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.Metrics()
	for _, d := range serverCounters {
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, d.v(m))
	}
	terminals, parents := c.s.hub.sockets()
	a := c.s.admission.snapshot()
	for kind, n := range map[string]int{"terminal": terminals, "parent": parents, "pairing": a.Pairing, "unauthenticated": a.Pending} {
		ch <- prometheus.MustNewConstMetric(descConnections, prometheus.GaugeValue, float64(n), kind)
	}
	for limit, n := range map[string]int64{"connect_rate": a.RefusedRate, "per_address": a.RefusedPerIP, "per_prefix": a.RefusedPerPrefix,
		"total": a.RefusedTotal, "evicted": a.Evicted, "pairing_refused": a.PairingRefused, "pairing_evicted": a.PairingEvicted} {
		ch <- prometheus.MustNewConstMetric(descAdmission, prometheus.CounterValue, float64(n), limit)
	}
	var live, created float64
	if c.s.turn != nil {
		live, created = float64(c.s.turn.quota.total.Load()), float64(c.s.turn.quota.made.Load())
	}
	ch <- prometheus.MustNewConstMetric(descTURNLive, prometheus.GaugeValue, live)
	ch <- prometheus.MustNewConstMetric(descTURNCreated, prometheus.CounterValue, created)
}

// sockets counts the terminal and parent sockets logged in now.
func (h *hub) sockets() (terminals, parents int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.parents {
		parents += len(set)
	}
	return len(h.terminals), parents
}

// newRegistry is the server's one Prometheus registry: its health, the
// fleet's aggregates, the Go runtime's and the process's own.
func newRegistry(s *Server) http.Handler {
	reg := prometheus.NewRegistry()
	h := s.health
	reg.MustRegister(h.logins, h.loginsRefused, h.callsStarted, h.callsAnswered, h.setupsFailed, h.callsEnded, h.errors,
		serverCollector{s}, fleetCollector{s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
