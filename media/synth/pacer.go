package synth

import (
	"sync"
	"time"
)

// pacer holds a source's Reads to real time, one per period, and ends them at
// close: a source is read on mediadevices' goroutine and closed from another.
//
// A camera and a microphone differ when their reader falls behind (a busy
// CPU). A camera's driver overwrites the frames nobody took: with no
// backlog, a late reader simply gets the next tick and the missed frames
// are gone. A microphone's capture buffer keeps what was recorded: with a
// backlog, a late reader gets the missed chunks at once, one per Read,
// until it has caught up, so the stream stays in real time; only a reader
// more than the backlog behind loses audio (an overrun).
type pacer struct {
	ticker  *time.Ticker // nil when unpaced or with a backlog
	period  time.Duration
	backlog time.Duration
	timer   *time.Timer
	next    time.Time // a backlog pacer's next chunk is due; owned by the reader
	done    chan struct{}
	once    sync.Once
}

func newPacer(period time.Duration, unpaced bool) *pacer {
	p := &pacer{done: make(chan struct{}), period: period}
	if !unpaced {
		p.ticker = time.NewTicker(period)
	}
	return p
}

// newBufferedPacer is a pacer that keeps up to backlog for a late reader.
func newBufferedPacer(period, backlog time.Duration, unpaced bool) *pacer {
	if unpaced {
		return newPacer(period, true)
	}
	return &pacer{done: make(chan struct{}), period: period, backlog: backlog, timer: time.NewTimer(time.Hour)}
}

// wait returns at the next tick (at once when unpaced, or when a buffered
// pacer's reader is behind) with true, or with false once the pacer is
// closed, also when it already was.
func (p *pacer) wait() bool {
	select {
	case <-p.done:
		return false
	default:
	}
	switch {
	case p.ticker != nil:
		select {
		case <-p.done:
			return false
		case <-p.ticker.C:
		}
	case p.timer != nil:
		if d := p.due(time.Now()); d > 0 {
			p.timer.Reset(d)
			select {
			case <-p.done:
				return false
			case <-p.timer.C:
			}
		}
	}
	return true
}

// due takes a buffered pacer's next chunk at now: how long until it is
// due (0: at once, the reader is behind and gets the recorded chunk).
func (p *pacer) due(now time.Time) time.Duration {
	if p.next.IsZero() || now.Sub(p.next) > p.backlog {
		p.next = now // the first chunk, or an overrun: what is older is lost
	}
	d := max(p.next.Sub(now), 0)
	p.next = p.next.Add(p.period)
	return d
}

// close ends every pending and later wait; it is safe to call more than once.
func (p *pacer) close() {
	p.once.Do(func() {
		close(p.done)
		if p.ticker != nil {
			p.ticker.Stop()
		}
		if p.timer != nil {
			p.timer.Stop()
		}
	})
}
