package rendezvous

import (
	"fmt"
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
	callsClosedAtStart   atomic.Uint64
	backupsWritten       atomic.Uint64
	backupFailures       atomic.Uint64
	lastBackup           atomic.Int64 // Unix seconds
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
	// CallsClosedAtStart counts calls found open at start and closed
	// (interrupted or missed): the server had stopped without ending them.
	CallsClosedAtStart uint64
	// BackupsWritten and BackupFailures count automatic registry backups
	// (backup.go); LastBackup is when the newest good one was made (Unix
	// seconds, 0: none yet).
	BackupsWritten, BackupFailures uint64
	LastBackup                     int64
}

// Metrics returns the server's counters.
func (s *Server) Metrics() Metrics {
	return Metrics{
		CallLogWriteFailures: s.metrics.callLogWriteFailures.Load(),
		CallLogWritesRetried: s.metrics.callLogWritesRetried.Load(),
		CallLogWritesDropped: s.metrics.callLogWritesDropped.Load(),
		CallLogPending:       s.metrics.callLogPending.Load(),
		CallsClosedAtStart:   s.metrics.callsClosedAtStart.Load(),
		BackupsWritten:       s.metrics.backupsWritten.Load(),
		BackupFailures:       s.metrics.backupFailures.Load(),
		LastBackup:           s.metrics.lastBackup.Load(),
	}
}

// serveMetrics answers GET /metrics in the Prometheus text format, to
// clients on the server's own machine only (loopback, after
// trusted_proxies): an operator's scraper or curl there, not the internet,
// which has no business knowing the server's disk is full. Anyone else gets
// 404, as if there were no such page.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	ip, err := netip.ParseAddr(s.clientIP(r))
	if err != nil || !ip.Unmap().IsLoopback() {
		http.NotFound(w, r)
		return
	}
	m := s.Metrics()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	for _, c := range []struct {
		name, kind, help string
		v                any
	}{
		{"tuanju_call_log_write_failures_total", "counter", "Call-log writes that failed (each try); the calls went on.", m.CallLogWriteFailures},
		{"tuanju_call_log_writes_retried_total", "counter", "Call-log records written by a retry after failing.", m.CallLogWritesRetried},
		{"tuanju_call_log_writes_dropped_total", "counter", "Call-log records given up on: missing from a family's log.", m.CallLogWritesDropped},
		{"tuanju_call_log_pending", "gauge", "Call-log records waiting for a retry.", m.CallLogPending},
		{"tuanju_calls_closed_at_start_total", "counter", "Calls found open at start (the server stopped without ending them) and closed.", m.CallsClosedAtStart},
		{"tuanju_registry_backups_total", "counter", "Automatic registry backups written and checked.", m.BackupsWritten},
		{"tuanju_registry_backup_failures_total", "counter", "Automatic registry backups that failed (the last good one was kept).", m.BackupFailures},
		{"tuanju_registry_last_backup_timestamp_seconds", "gauge", "When the newest good registry backup was made (Unix time; 0: none yet).", m.LastBackup},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", c.name, c.help, c.name, c.kind, c.name, c.v)
	}
}
