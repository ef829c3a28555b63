package rendezvous

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// How the call log copes with writes that fail (a full disk). A record that
// could not be written is kept in memory and written again: at once when
// another write succeeds (the disk has room again), else every
// callLogRetryEvery, for at most callLogGiveUpAfter; then it is dropped with
// an error. At most maxPendingCalls records wait (one per call: a newer
// record of the same call replaces the older), about 200 bytes each.
const (
	callLogRetryEvery  = 10 * time.Second
	callLogGiveUpAfter = time.Hour
	maxPendingCalls    = 10_000
)

// callLog writes the hub's call records. A call never waits for, or fails
// because of, its log: ringing, accepting and relaying go on whatever the
// disk says, and a failed write is counted (Metrics), logged at error level
// and retried.
type callLog struct {
	store   *Store
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
	kick    chan struct{} // a write succeeded: retry the pending ones now

	// mu is held across each store write, so a retry never overwrites a
	// newer record of the same call that the hub wrote meanwhile.
	mu      sync.Mutex
	pending map[string]*pendingCall // call ID → newest record not yet written
}

type pendingCall struct {
	parentID    string
	rec         protocol.CallRecord
	firstFailed time.Time
}

func newCallLog(store *Store, log *slog.Logger, m *metrics, now func() time.Time) *callLog {
	return &callLog{store: store, log: log, metrics: m, now: now,
		kick: make(chan struct{}, 1), pending: map[string]*pendingCall{}}
}

// put writes a call record, or keeps it for a retry if the write fails.
func (l *callLog) put(parentID string, rec protocol.CallRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.store.PutCall(parentID, rec)
	switch {
	case err == nil:
		delete(l.pending, rec.CallID)
		l.metrics.callLogPending.Store(int64(len(l.pending)))
		if len(l.pending) > 0 {
			select {
			case l.kick <- struct{}{}:
			default:
			}
		}
		return
	case errors.Is(err, ErrNotFound):
		// The pairing was deleted (factory reset): its log is gone on purpose.
		delete(l.pending, rec.CallID)
		l.metrics.callLogPending.Store(int64(len(l.pending)))
		l.log.Debug("call log write for a deleted pairing skipped", "call", rec.CallID, "parent", parentID)
		return
	}
	l.metrics.callLogWriteFailures.Add(1)
	p := l.pending[rec.CallID]
	if p == nil && len(l.pending) >= maxPendingCalls {
		l.metrics.callLogWritesDropped.Add(1)
		l.log.Error("call log write failed; dropped (too many waiting)", "call", rec.CallID, "parent", parentID,
			"outcome", rec.Outcome, "waiting", len(l.pending), "err", err)
		return
	}
	if p == nil {
		p = &pendingCall{firstFailed: l.now()}
		l.pending[rec.CallID] = p
	}
	p.parentID, p.rec = parentID, rec
	l.metrics.callLogPending.Store(int64(len(l.pending)))
	l.log.Error("call log write failed; will retry", "call", rec.CallID, "parent", parentID,
		"outcome", rec.Outcome, "waiting", len(l.pending), "err", err)
}

// has reports whether a call ID is in a pairing's log, written or waiting.
func (l *callLog) has(parentID, callID string) (bool, error) {
	l.mu.Lock()
	p := l.pending[callID]
	l.mu.Unlock()
	if p != nil && p.parentID == parentID {
		return true, nil
	}
	return l.store.HasCall(parentID, callID)
}

// read returns a pairing's log as the parent should see it: the stored
// records with the waiting ones laid over them. With markSeen it marks them
// seen; if that write fails the log is still read and sent, unmarked (the
// next request marks them).
func (l *callLog) read(parentID string, markSeen bool) ([]protocol.CallRecord, error) {
	calls, err := l.store.CallLog(parentID, markSeen)
	if err != nil && markSeen {
		l.metrics.callLogWriteFailures.Add(1)
		l.log.Error("call log: marking calls seen failed; sending the log unmarked", "parent", parentID, "err", err)
		calls, err = l.store.CallLog(parentID, false)
	}
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var waiting []protocol.CallRecord
	for _, p := range l.pending {
		if p.parentID == parentID {
			waiting = append(waiting, p.rec)
		}
	}
	if len(waiting) == 0 {
		return calls, nil
	}
	calls = slices.DeleteFunc(calls, func(r protocol.CallRecord) bool {
		return slices.ContainsFunc(waiting, func(w protocol.CallRecord) bool { return w.CallID == r.CallID })
	})
	calls = append(calls, waiting...)
	slices.SortStableFunc(calls, func(a, b protocol.CallRecord) int { return b.StartedAt.Compare(a.StartedAt) })
	if len(calls) > MaxCallLog {
		calls = calls[:MaxCallLog]
	}
	return calls, nil
}

// retryLoop writes the waiting records again until stop is closed.
func (l *callLog) retryLoop(stop <-chan struct{}) {
	t := time.NewTicker(callLogRetryEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-l.kick:
		}
		l.retry(false)
	}
}

// retry writes every waiting record once. Records that have waited longer
// than callLogGiveUpAfter, or every one that still fails when final is set
// (the server is closing), are dropped with an error. The lock is taken per
// record, so the hub waits for at most one write, however many are waiting.
func (l *callLog) retry(final bool) {
	l.mu.Lock()
	ids := make([]string, 0, len(l.pending))
	for id := range l.pending {
		ids = append(ids, id)
	}
	l.mu.Unlock()
	var lastErr error
	failed, dropped := 0, 0
	for _, id := range ids {
		gone, err := l.retryOne(id, final)
		if err != nil {
			failed++
			lastErr = err
			if gone {
				dropped++
			}
		}
	}
	l.mu.Lock()
	waiting := len(l.pending)
	l.metrics.callLogPending.Store(int64(waiting))
	l.mu.Unlock()
	if failed > 0 {
		// One line per round, not per record: a full disk may hold many.
		l.log.Error("call log writes still failing", "failed", failed, "dropped", dropped, "waiting", waiting, "err", lastErr)
	}
}

// retryOne writes one waiting record again. err is the write's failure;
// dropped says the record was given up on.
func (l *callLog) retryOne(id string, final bool) (dropped bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pending[id]
	if p == nil {
		return false, nil // written meanwhile by a newer record of the call
	}
	err = l.store.PutCall(p.parentID, p.rec)
	switch {
	case err == nil:
		delete(l.pending, id)
		l.metrics.callLogWritesRetried.Add(1)
		l.log.Info("call log write succeeded on retry", "call", id, "parent", p.parentID, "outcome", p.rec.Outcome)
		return false, nil
	case errors.Is(err, ErrNotFound):
		delete(l.pending, id)
		return false, nil
	}
	l.metrics.callLogWriteFailures.Add(1)
	waited := l.now().Sub(p.firstFailed)
	if !final && waited < callLogGiveUpAfter {
		return false, err
	}
	delete(l.pending, id)
	l.metrics.callLogWritesDropped.Add(1)
	l.log.Error("call log write dropped", "call", id, "parent", p.parentID, "outcome", p.rec.Outcome,
		"waited", waited.Round(time.Second), "err", err)
	return true, err
}
