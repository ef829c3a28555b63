package media

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtp"
)

// pacingFactor is how much faster than the estimate the pacer lets
// packets out: a key frame (ten or more packets written at once) leaves
// over a fraction of a second instead of in one burst, which a slow link's
// buffer would hold for as long, and which GCC reads as congestion. pion's
// own leaky-bucket pacer uses 1.5 too.
const pacingFactor = 1.5

// maxPaced bounds the pacer's queue, in packets.
const maxPaced = 200

// pacerBurst is how much a pacer lets out at once after a quiet spell.
const pacerBurst = 10 * time.Millisecond

// pacer is a token bucket in front of the transport, for the congestion
// controller (gcc.Pacer). Unlike pion's leaky-bucket pacer, which wakes
// every 5 ms for the whole call, it sends a packet at once, on the
// writer's goroutine, while the bucket has tokens, and wakes only to drain
// a queue that built up; audio is never held back (a voice packet waiting
// behind a key frame would be late at the far side's jitter buffer), but
// its bytes count.
type pacer struct {
	mu      sync.Mutex
	writers map[uint32]interceptor.RTPWriter
	audio   map[uint32]bool
	target  float64 // bytes a second: pacingFactor × the estimate
	rate    float64 // bytes a second, the pacing rate
	tokens  float64 // bytes; may go below zero by one packet
	// in measures what is written, so the pacing rate is never below
	// twice it: the ABR may hold a step the estimate no longer affords
	// (abr.go), and a pacer at the estimate would then queue without end.
	in      float64 // bytes a second, smoothed
	inBytes float64 // since inSince
	inSince time.Time
	last    time.Time
	queue   []paced
	wake    chan struct{}
	done    chan struct{}
	closed  bool
}

type paced struct {
	h       rtp.Header
	payload []byte
	attr    interceptor.Attributes
}

var _ gcc.Pacer = (*pacer)(nil)

func newPacer(initialBitrate int) *pacer {
	p := &pacer{writers: map[uint32]interceptor.RTPWriter{}, audio: map[uint32]bool{},
		wake: make(chan struct{}, 1), done: make(chan struct{}), last: time.Now()}
	p.SetTargetBitrate(initialBitrate)
	go p.run()
	return p
}

// AddStream implements gcc.Pacer.
func (p *pacer) AddStream(ssrc uint32, w interceptor.RTPWriter) {
	p.mu.Lock()
	p.writers[ssrc] = w
	p.mu.Unlock()
}

// setAudio marks ssrc as audio (sent at once).
func (p *pacer) setAudio(ssrc uint32, mime string) {
	if strings.HasPrefix(strings.ToLower(mime), "audio/") {
		p.mu.Lock()
		p.audio[ssrc] = true
		p.mu.Unlock()
	}
}

// SetTargetBitrate implements gcc.Pacer.
func (p *pacer) SetTargetBitrate(bps int) {
	p.mu.Lock()
	p.target = pacingFactor * float64(bps) / 8
	p.rate = max(p.target, 2*p.in)
	p.mu.Unlock()
}

// measure adds size bytes written at now to the input rate; the caller
// holds mu.
func (p *pacer) measure(now time.Time, size int) {
	if p.inSince.IsZero() {
		p.inSince = now
	}
	p.inBytes += float64(size)
	if dt := now.Sub(p.inSince); dt >= 250*time.Millisecond {
		p.in = (p.in + p.inBytes/dt.Seconds()) / 2
		p.inBytes, p.inSince = 0, now
		p.rate = max(p.target, 2*p.in)
	}
}

// refill adds the tokens earned since the last refill; the caller holds mu.
func (p *pacer) refill(now time.Time) {
	p.tokens = min(p.tokens+now.Sub(p.last).Seconds()*p.rate, p.rate*pacerBurst.Seconds()+1500)
	p.last = now
}

// Write implements gcc.Pacer (interceptor.RTPWriter).
func (p *pacer) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	size := h.MarshalSize() + len(payload)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, fmt.Errorf("media: pacer closed")
	}
	now := time.Now()
	p.refill(now)
	p.measure(now, size)
	w, ok := p.writers[h.SSRC]
	if !ok {
		p.mu.Unlock()
		return 0, fmt.Errorf("%w: %d", gcc.ErrUnknownStream, h.SSRC)
	}
	// A queue of a second or more means the encoder is far above the
	// estimate: holding more would only add delay.
	if p.audio[h.SSRC] || len(p.queue) == 0 && p.tokens > 0 || len(p.queue) >= maxPaced {
		p.tokens -= float64(size)
		p.mu.Unlock()
		return w.Write(h, payload, a)
	}
	// Queued: the caller may reuse its buffers once Write returns.
	p.queue = append(p.queue, paced{h: h.Clone(), payload: append([]byte(nil), payload...), attr: a})
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return size, nil
}

// run drains the queue as tokens come.
func (p *pacer) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		p.refill(time.Now())
		var next *paced
		var w interceptor.RTPWriter
		wait := time.Duration(-1)
		if len(p.queue) > 0 {
			if p.tokens > 0 {
				q := p.queue[0]
				p.queue = p.queue[1:]
				p.tokens -= float64(q.h.MarshalSize() + len(q.payload))
				next, w = &q, p.writers[q.h.SSRC]
			} else {
				wait = time.Duration((-p.tokens + 1) / p.rate * float64(time.Second))
			}
		}
		p.mu.Unlock()
		if next != nil {
			if w != nil {
				_, _ = w.Write(&next.h, next.payload, next.attr)
			}
			continue
		}
		if wait >= 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-p.done:
				return
			}
			continue
		}
		select {
		case <-p.wake:
		case <-p.done:
			return
		}
	}
}

// Close implements gcc.Pacer.
func (p *pacer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.queue = nil
		close(p.done)
	}
	return nil
}
