package synth

import (
	"sync"
	"time"
)

// pacer holds a source's Reads to real time, one per period, and ends them at
// close: a source is read on mediadevices' goroutine and closed from another.
type pacer struct {
	ticker *time.Ticker // nil when unpaced
	done   chan struct{}
	once   sync.Once
}

func newPacer(period time.Duration, unpaced bool) *pacer {
	p := &pacer{done: make(chan struct{})}
	if !unpaced {
		p.ticker = time.NewTicker(period)
	}
	return p
}

// wait returns at the next tick (at once when unpaced) with true, or with
// false once the pacer is closed, also when it already was.
func (p *pacer) wait() bool {
	select {
	case <-p.done:
		return false
	default:
	}
	if p.ticker != nil {
		select {
		case <-p.done:
			return false
		case <-p.ticker.C:
		}
	}
	return true
}

// close ends every pending and later wait; it is safe to call more than once.
func (p *pacer) close() {
	p.once.Do(func() {
		close(p.done)
		if p.ticker != nil {
			p.ticker.Stop()
		}
	})
}
