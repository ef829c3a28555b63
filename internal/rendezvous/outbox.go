package rendezvous

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tuanju/tuanju/internal/backoff"
)

// outbox sends what the hub hands it without ever making the hub wait: a
// ring must reach the child's parent at once whatever a push service or an
// SMS gateway does. Put never blocks (a full queue drops the item, counted
// and logged); a few workers send; a failed try is retried after a
// decorrelated-jitter backoff (internal/backoff) until the item's deadline,
// from a timer, so a retry holds no worker while it waits. A hanging
// endpoint holds one worker for at most the per-try timeout.
type outbox[T any] struct {
	name    string
	log     *slog.Logger
	send    func(ctx context.Context, item T) error // a permanent error is not retried
	timeout time.Duration                           // one try
	retry   backoff.Backoff                         // the first wait and the cap (copied per item)
	now     func() time.Time
	stats   *outboxStats

	queue  chan *outItem[T]
	ctx    context.Context // cancelled by close: a try in flight ends
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	timers map[*time.Timer]bool // retries waiting
}

type outItem[T any] struct {
	v        T
	deadline time.Time
	wait     backoff.Backoff
}

// outboxStats are an outbox's counters (GET /metrics).
type outboxStats struct {
	sent    atomic.Uint64 // items delivered
	failed  atomic.Uint64 // tries that failed (each try)
	dropped atomic.Uint64 // items given up on: queue full, past their deadline, refused for good, or the server closing
	queued  atomic.Int64  // items queued or waiting for a retry now
}

// permanentError is a failure a retry cannot mend (the far end refused
// the request itself).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

func newOutbox[T any](name string, size, workers int, timeout, retryMin time.Duration, send func(context.Context, T) error,
	stats *outboxStats, now func() time.Time, log *slog.Logger) *outbox[T] {
	ctx, cancel := context.WithCancel(context.Background())
	o := &outbox[T]{
		name: name, log: log, send: send, timeout: timeout, now: now, stats: stats,
		retry: backoff.Backoff{Min: retryMin, Max: max(retryMin, 30*time.Second)},
		queue: make(chan *outItem[T], size), ctx: ctx, cancel: cancel, timers: map[*time.Timer]bool{},
	}
	for range workers {
		o.wg.Add(1)
		go o.work()
	}
	return o
}

// put queues v, to be delivered before deadline; it never blocks. It
// reports whether v was queued.
func (o *outbox[T]) put(v T, deadline time.Time) bool {
	it := &outItem[T]{v: v, deadline: deadline, wait: o.retry}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.enqueue(it)
}

// enqueue is put's and a retry's; o.mu is held.
func (o *outbox[T]) enqueue(it *outItem[T]) bool {
	if o.closed {
		o.stats.dropped.Add(1)
		return false
	}
	select {
	case o.queue <- it:
		o.stats.queued.Add(1)
		return true
	default:
		o.stats.dropped.Add(1)
		o.log.Warn(o.name+": queue full, dropped", "queue", cap(o.queue))
		return false
	}
}

func (o *outbox[T]) work() {
	defer o.wg.Done()
	for {
		select {
		case <-o.ctx.Done():
			return
		case it := <-o.queue:
			o.stats.queued.Add(-1)
			o.try(it)
		}
	}
}

func (o *outbox[T]) try(it *outItem[T]) {
	ctx, cancel := context.WithTimeout(o.ctx, o.timeout)
	err := o.send(ctx, it.v)
	cancel()
	if err == nil {
		o.stats.sent.Add(1)
		return
	}
	o.stats.failed.Add(1)
	var perm *permanentError
	wait := it.wait.Next()
	switch {
	case errors.As(err, &perm):
		o.stats.dropped.Add(1)
		o.log.Warn(o.name+": refused, not retried", "err", err)
	case o.now().Add(wait).After(it.deadline):
		o.stats.dropped.Add(1)
		o.log.Warn(o.name+": failed; too late to retry, dropped", "err", err)
	case o.ctx.Err() != nil:
		o.stats.dropped.Add(1)
	default:
		o.log.Info(o.name+": failed; will retry", "err", err, "in", wait.Round(time.Millisecond))
		o.retryAfter(it, wait)
	}
}

// retryAfter puts it back in the queue after wait, holding no worker.
func (o *outbox[T]) retryAfter(it *outItem[T], wait time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		o.stats.dropped.Add(1)
		return
	}
	o.stats.queued.Add(1)
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if !o.timers[t] {
			return // close took it
		}
		delete(o.timers, t)
		o.stats.queued.Add(-1)
		o.enqueue(it)
	})
	o.timers[t] = true
}

// close stops the workers (a try in flight is cancelled) and drops what
// waits: a ring's notification is worth nothing after the server that
// rang has stopped.
func (o *outbox[T]) close() {
	o.mu.Lock()
	o.closed = true
	for t := range o.timers {
		if t.Stop() {
			o.stats.queued.Add(-1)
			o.stats.dropped.Add(1)
		}
	}
	clear(o.timers)
	o.mu.Unlock()
	o.cancel()
	o.wg.Wait()
	for {
		select {
		case <-o.queue:
			o.stats.queued.Add(-1)
			o.stats.dropped.Add(1)
		default:
			return
		}
	}
}
