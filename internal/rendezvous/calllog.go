package rendezvous

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
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

// callLog writes the hub's call records behind the hub. put keeps a record
// in memory and returns; one writer goroutine commits everything put since
// its last commit in one transaction, so the calls that rang meanwhile share
// one fsync, and the hub's lock is never held across a disk write (issue 16:
// three fsyncs per call under that lock held a node to ~500 call setups/s;
// BenchmarkCallSetups).
//
// What the hub sends to a socket after a put waits for that put's commit
// before it goes on the wire (mark and settledAt, used by session.flush): a
// peer never hears of a call, its answer or its end before the log says
// so on disk, so a crash right after loses nothing a family was told, as
// when the hub wrote under its lock (TestCallsOpenAtCrashClosedAtStart).
//
// A call never waits long for, or fails because of, its log: a commit that
// fails (a full disk) is counted (Metrics), logged at error level and
// retried, and what waited for it goes on.
type callLog struct {
	store   Registry
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
	kick    chan struct{} // something was put, or a retry is due now

	issued atomic.Uint64 // puts so far: each one's number is its sequence

	mu      sync.Mutex
	pending map[string]*pendingCall // call ID → newest record not yet committed
	// kept holds the records a commit took out of pending while reads were
	// under way: such a read may have read the store before the commit
	// wrote them, and finds them here, so that no record is in neither
	// (TestReconnectStorm's pushed logs) without a read holding commits
	// back while it waits on the store (on NATS, a round trip). A record
	// goes once no read that began before its commit is left (purgeKept).
	kept    map[string]keptCall
	epoch   uint64         // commits so far
	reading map[uint64]int // reads under way, by the epoch they began in
	settled uint64         // every put up to this one has been committed or tried
	advance chan struct{}  // closed (and replaced) when settled moves
	retryAt bool           // a commit succeeded with failed records waiting: retry them now
	stopped bool           // the server has closed: nothing waits any more
	// since is when the commit in progress began (zero: none runs). One
	// older than barrierPatience is a disk that hangs: messages stop
	// waiting for it (settledAt), so signalling goes on without the log.
	since time.Time
	hung  bool // logged and counted for the commit in progress
}

type keptCall struct {
	parentID string
	rec      protocol.CallRecord
	epoch    uint64 // the commit that wrote it
}

type pendingCall struct {
	parentID    string
	rec         protocol.CallRecord
	seq         uint64    // the put that made this record
	tried       bool      // its commit failed; it waits for a retry
	firstFailed time.Time // zero until a commit of the call failed
}

func newCallLog(store Registry, log *slog.Logger, m *metrics, now func() time.Time) *callLog {
	return &callLog{store: store, log: log, metrics: m, now: now,
		kick: make(chan struct{}, 1), pending: map[string]*pendingCall{}, advance: make(chan struct{}),
		kept: map[string]keptCall{}, reading: map[uint64]int{}}
}

// put records a call's newest record, to be committed by the writer.
func (l *callLog) put(parentID string, rec protocol.CallRecord) {
	l.mu.Lock()
	seq := l.issued.Add(1)
	p := l.pending[rec.CallID]
	switch {
	case p == nil && len(l.pending) >= maxPendingCalls:
		l.metrics.callLogWritesDropped.Add(1)
		l.log.Error("call log write dropped (too many waiting)", "call", rec.CallID, "parent", parentID,
			"outcome", rec.Outcome, "waiting", len(l.pending))
	case p == nil:
		p = &pendingCall{}
		l.pending[rec.CallID] = p
		fallthrough
	default:
		p.parentID, p.rec, p.seq, p.tried = parentID, rec, seq, false
	}
	l.mu.Unlock()
	l.wake()
}

func (l *callLog) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// mark is the sequence a message queued now waits for: every put so far.
func (l *callLog) mark() uint64 { return l.issued.Load() }

// settledAt returns nil once every put up to seq has been committed (or
// tried and held back), else a channel that closes when more has been:
// check again then.
//
// A commit that has run longer than barrierPatience (a disk that hangs
// rather than fails: a dying SD card, a stalled network volume) settles
// nothing but no longer holds messages back: a ring, an answer or a
// hangup then goes out before its record is on disk, which a crash could
// lose — better than signalling that stops for every family on the node
// (TestCallLogHungDiskLetsSignallingGo). The session's wait looks again
// after barrierPatience (session.write).
func (l *callLog) settledAt(seq uint64) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.settled >= seq || l.stopped {
		return nil
	}
	if !l.since.IsZero() && l.now().Sub(l.since) >= barrierPatience {
		if !l.hung {
			l.hung = true
			l.metrics.callLogHung.Add(1)
			l.log.Error("call log: a commit has hung for longer than the wait for it: messages go out without waiting", "since", l.since, "wait", barrierPatience)
		}
		return nil
	}
	return l.advance
}

// barrierPatience is how long a message waits for the call-log commit
// before it: commits take milliseconds (one fsync); a disk that takes
// seconds is broken.
const barrierPatience = 2 * time.Second

// settle moves settled to seq and wakes whoever waits. l.mu is held.
func (l *callLog) settle(seq uint64) {
	if seq <= l.settled {
		return
	}
	l.settled = seq
	close(l.advance)
	l.advance = make(chan struct{})
}

// hasFrom reports whether a call ID is in a pairing's log, written or
// waiting, for a check the caller finishes later under the hub's lock
// (usedSince). The waiting records are looked at first: one written
// meanwhile is then in the store. began holds the records that commits take out of
// pending meanwhile (as a read does), so that a record put and written
// between this look and the lock is not missed: it was neither in the
// store when read nor waiting when usedSince looks. Every hasFrom must be
// ended with doneChecking(began).
func (l *callLog) hasFrom(parentID, callID string) (used bool, began uint64, err error) {
	l.mu.Lock()
	began = l.epoch
	l.reading[began]++
	p := l.pending[callID]
	l.mu.Unlock()
	if p != nil && p.parentID == parentID {
		return true, began, nil
	}
	used, err = l.store.HasCall(parentID, callID)
	return used, began, err
}

// usedSince reports whether a record of the call ID is waiting to be
// written, or was written since the hasFrom that returned began.
func (l *callLog) usedSince(parentID, callID string, began uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.pending[callID]; p != nil && p.parentID == parentID {
		return true
	}
	k, ok := l.kept[callID]
	return ok && k.parentID == parentID && k.epoch >= began
}

// doneChecking ends a hasFrom.
func (l *callLog) doneChecking(began uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.doneReading(began)
}

// read returns a pairing's log as the parent should see it: the stored
// records with the waiting ones laid over them. With markSeen it marks them
// seen; if that write fails the log is still read and sent, unmarked (the
// next request marks them).
func (l *callLog) read(parentID string, markSeen bool) ([]protocol.CallRecord, error) {
	l.mu.Lock()
	began := l.epoch
	l.reading[began]++
	l.mu.Unlock()
	calls, err := l.store.CallLog(parentID, markSeen)
	if err != nil && markSeen {
		l.metrics.callLogWriteFailures.Add(1)
		l.log.Error("call log: marking calls seen failed; sending the log unmarked", "parent", parentID, "err", err)
		calls, err = l.store.CallLog(parentID, false)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.doneReading(began)
	if err != nil {
		return nil, err
	}
	var waiting []protocol.CallRecord
	for _, p := range l.pending {
		if p.parentID == parentID {
			waiting = append(waiting, p.rec)
		}
	}
	for id, k := range l.kept {
		// One in pending is newer; one kept before this read began is in
		// the store as read, or older than what is.
		if k.parentID == parentID && k.epoch >= began && l.pending[id] == nil {
			waiting = append(waiting, k.rec)
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

// doneReading ends a read that began in epoch began, and lets go of the
// kept records no read left needs. l.mu is held.
func (l *callLog) doneReading(began uint64) {
	if l.reading[began]--; l.reading[began] == 0 {
		delete(l.reading, began)
	}
	l.purgeKept()
}

// purgeKept drops the kept records every read under way began after: it
// read the store after their commit. l.mu is held.
func (l *callLog) purgeKept() {
	if len(l.kept) == 0 {
		return
	}
	oldest, any := uint64(0), false
	for e := range l.reading {
		if !any || e < oldest {
			oldest, any = e, true
		}
	}
	for id, k := range l.kept {
		if !any || k.epoch < oldest {
			delete(l.kept, id)
		}
	}
}

// run is the writer: it commits what is put, and retries what failed every
// callLogRetryEvery, until stop is closed.
func (l *callLog) run(stop <-chan struct{}) {
	t := time.NewTicker(callLogRetryEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-l.kick:
			l.commit(false)
		case <-t.C:
			l.mu.Lock()
			l.retryAt = true
			l.mu.Unlock()
			l.commit(false)
		}
	}
}

// retry commits everything waiting once more. With final (the server is
// closing, the writer has stopped) what still fails is dropped, and nothing
// waits for the log any more.
func (l *callLog) retry(final bool) {
	l.mu.Lock()
	l.retryAt = true
	l.mu.Unlock()
	l.commit(final)
	if final {
		l.mu.Lock()
		l.stopped = true
		l.settle(l.issued.Load())
		l.mu.Unlock()
	}
}

// commit writes, in one transaction, every record put since the last
// commit, and the held-back ones too when a retry is due. Records that have
// waited longer than callLogGiveUpAfter, or every one that still fails when
// final is set, are dropped with an error.
func (l *callLog) commit(final bool) {
	l.mu.Lock()
	upto := l.issued.Load()
	retrying := l.retryAt || final
	l.retryAt = false
	type item struct {
		id    string
		seq   uint64
		retry bool
	}
	var items []item
	var writes []CallWrite
	for id, p := range l.pending {
		if p.tried && !retrying {
			continue
		}
		items = append(items, item{id, p.seq, p.tried})
		writes = append(writes, CallWrite{ParentID: p.parentID, Record: p.rec})
	}
	if len(writes) > 0 {
		l.since = l.now()
	}
	l.mu.Unlock()

	var gone []int
	var err error
	if len(writes) > 0 {
		gone, err = l.store.PutCalls(writes)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	defer func() { l.epoch++ }()
	if l.hung {
		l.log.Warn("call log: the hung commit returned", "after", l.now().Sub(l.since), "err", err)
	}
	l.since, l.hung = time.Time{}, false
	now := l.now()
	failed, dropped, waiting := 0, 0, 0
	for i, it := range items {
		p := l.pending[it.id]
		if p == nil || p.seq != it.seq {
			continue // replaced meanwhile: the newer record goes in the next commit
		}
		switch {
		case err == nil && slices.Contains(gone, i):
			// The pairing was deleted (factory reset): its log is gone on purpose.
			delete(l.pending, it.id)
			l.log.Debug("call log write for a deleted pairing skipped", "call", it.id, "parent", p.parentID)
		case err == nil:
			if len(l.reading) > 0 {
				l.kept[it.id] = keptCall{parentID: p.parentID, rec: p.rec, epoch: l.epoch}
			} else {
				delete(l.kept, it.id)
			}
			delete(l.pending, it.id)
			if it.retry {
				l.metrics.callLogWritesRetried.Add(1)
				l.log.Info("call log write succeeded on retry", "call", it.id, "parent", p.parentID, "outcome", p.rec.Outcome)
			}
		default:
			l.metrics.callLogWriteFailures.Add(1)
			failed++
			if p.firstFailed.IsZero() {
				p.firstFailed = now
			}
			p.tried = true
			if waited := now.Sub(p.firstFailed); final || waited >= callLogGiveUpAfter {
				delete(l.pending, it.id)
				dropped++
				l.metrics.callLogWritesDropped.Add(1)
				l.log.Error("call log write dropped", "call", it.id, "parent", p.parentID, "outcome", p.rec.Outcome,
					"waited", waited.Round(time.Second), "err", err)
			} else if !it.retry {
				l.log.Error("call log write failed; will retry", "call", it.id, "parent", p.parentID,
					"outcome", p.rec.Outcome, "err", err)
			}
		}
	}
	for _, p := range l.pending {
		if p.tried {
			waiting++
		}
	}
	l.metrics.callLogPending.Store(int64(waiting))
	if failed > 0 && retrying {
		// One line per round, not per record: a full disk may hold many.
		l.log.Error("call log writes still failing", "failed", failed, "dropped", dropped, "waiting", waiting, "err", err)
	}
	if err == nil && len(writes) > 0 && waiting > 0 {
		l.retryAt = true // the disk took a write: the held-back ones follow at once
		l.wake()
	}
	l.settle(upto)
}
