package rendezvous

import (
	"net/http"
	"net/netip"
	"sync/atomic"
)

// metrics are the server's counters since it started. They hold no IDs:
// only how often something went wrong, for an operator's alerting.
type metrics struct {
	callLogWriteFailures atomic.Uint64
	callLogWritesRetried atomic.Uint64
	callLogWritesDropped atomic.Uint64
	callLogPending       atomic.Int64
	callLogHung          atomic.Uint64
	callsClosedAtStart   atomic.Uint64
	backupsWritten       atomic.Uint64
	backupFailures       atomic.Uint64
	lastBackup           atomic.Int64 // Unix seconds

	// Notifications (push.go, notifier.go).
	push              outboxStats
	pushRemoved       atomic.Uint64
	notify            outboxStats
	notifyRateLimited atomic.Uint64
}

// Metrics is a snapshot of the server's counters (GET /metrics serves them).
type Metrics struct {
	// CallLogWriteFailures counts call-log writes that failed, each try
	// (a full disk). The call itself went on.
	CallLogWriteFailures uint64
	// CallLogWritesRetried counts records written by a retry after failing.
	CallLogWritesRetried uint64
	// CallLogWritesDropped counts records given up on (still failing after
	// an hour, too many waiting, or the server closing): those calls are
	// missing from the parent's log.
	CallLogWritesDropped uint64
	// CallLogPending is how many records wait for a retry now.
	CallLogPending int64
	// CallLogHung counts commits that hung past the wait for them
	// (barrierPatience): messages then went out before their records.
	CallLogHung uint64
	// CallsClosedAtStart counts calls found open at start and closed
	// (interrupted or missed): the server had stopped without ending them.
	CallsClosedAtStart uint64
	// BackupsWritten and BackupFailures count automatic registry backups
	// (backup.go); LastBackup is when the newest good one was made (Unix
	// seconds, 0: none yet).
	BackupsWritten, BackupFailures uint64
	LastBackup                     int64

	// PushSent counts Web Push messages a push service accepted;
	// PushFailed each failed try (retried while the message is worth
	// sending); PushDropped messages given up on (queue full, too late,
	// refused, or the server closing); PushQueued those waiting now;
	// PushSubscriptionsRemoved subscriptions the push service said are
	// gone (404, 410).
	PushSent, PushFailed, PushDropped, PushSubscriptionsRemoved uint64
	PushQueued                                                  int64
	// NotifySent counts webhook events (SMS, voice) the programme's
	// gateway took; NotifyFailed each failed try; NotifyDropped events
	// given up on; NotifyRateLimited events not sent because the family
	// had its day's allowance; NotifyQueued those waiting now.
	NotifySent, NotifyFailed, NotifyDropped, NotifyRateLimited uint64
	NotifyQueued                                               int64
}

// Metrics returns the server's counters.
func (s *Server) Metrics() Metrics {
	return Metrics{
		CallLogWriteFailures: s.metrics.callLogWriteFailures.Load(),
		CallLogWritesRetried: s.metrics.callLogWritesRetried.Load(),
		CallLogWritesDropped: s.metrics.callLogWritesDropped.Load(),
		CallLogPending:       s.metrics.callLogPending.Load(),
		CallLogHung:          s.metrics.callLogHung.Load(),
		CallsClosedAtStart:   s.metrics.callsClosedAtStart.Load(),
		BackupsWritten:       s.metrics.backupsWritten.Load(),
		BackupFailures:       s.metrics.backupFailures.Load(),
		LastBackup:           s.metrics.lastBackup.Load(),

		PushSent: s.metrics.push.sent.Load(), PushFailed: s.metrics.push.failed.Load(),
		PushDropped: s.metrics.push.dropped.Load(), PushQueued: s.metrics.push.queued.Load(),
		PushSubscriptionsRemoved: s.metrics.pushRemoved.Load(),
		NotifySent:               s.metrics.notify.sent.Load(), NotifyFailed: s.metrics.notify.failed.Load(),
		NotifyDropped: s.metrics.notify.dropped.Load(), NotifyQueued: s.metrics.notify.queued.Load(),
		NotifyRateLimited: s.metrics.notifyRateLimited.Load(),
	}
}

// serveMetrics answers GET /metrics in the Prometheus text format, to
// clients on the server's own machine only (loopback, after
// trusted_proxies): an operator's scraper or curl there, not the internet,
// which has no business knowing the server's disk is full. Anyone else gets
// 404, as if there were no such page. It serves the server's one registry
// (health_metrics.go): these counters, its health and the fleet's
// aggregates; GET /fleet/metrics serves the same to an operator's token.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	ip, err := netip.ParseAddr(s.clientIP(r))
	if err != nil || !ip.Unmap().IsLoopback() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.registry.ServeHTTP(w, r)
}
