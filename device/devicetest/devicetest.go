// Package devicetest drives device's GPIO code with periph's gpiotest pins:
// a button line that a test (or the simulated board) presses like a finger
// would, and an output pin that records what an LED was told to do.
package devicetest

import (
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// edgeBuffer is large enough for any realistic burst of bounce edges.
const edgeBuffer = 64

// ButtonLine is a gpiotest.Pin wired like a push button.
//
// gpiotest.Pin.WaitForEdge takes the next level from EdgesChan and stores it
// in L, so a level change must both set L (for Read) and queue the edge (to
// wake WaitForEdge). ButtonLine does both, in order, under one lock, so
// concurrent callers cannot interleave and leave L stale.
type ButtonLine struct {
	// Pin is what device.NewButton gets.
	Pin       *gpiotest.Pin
	activeLow bool

	mu sync.Mutex
}

// NewButtonLine returns a released button line named name.
func NewButtonLine(name string, activeLow bool) *ButtonLine {
	l := &ButtonLine{
		Pin:       &gpiotest.Pin{N: name, EdgesChan: make(chan gpio.Level, edgeBuffer)},
		activeLow: activeLow,
	}
	l.Pin.L = l.levelFor(false)
	return l
}

// Press puts the line in the pressed level.
func (l *ButtonLine) Press() { l.Set(l.levelFor(true)) }

// Release puts the line in the released level.
func (l *ButtonLine) Release() { l.Set(l.levelFor(false)) }

// Set drives the line to level and queues the edge. It never blocks: when
// the edge queue is full (nobody is reading, e.g. after Close) the oldest
// edge is dropped; the newest is always queued, so the level a reader ends
// up with is the last one set.
func (l *ButtonLine) Set(level gpio.Level) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.Pin.Lock()
	l.Pin.L = level
	l.Pin.Unlock()
	for {
		select {
		case l.Pin.EdgesChan <- level:
			return
		default:
			select {
			case <-l.Pin.EdgesChan:
			default:
			}
		}
	}
}

func (l *ButtonLine) levelFor(pressed bool) gpio.Level {
	return gpio.Level(pressed != l.activeLow)
}

// RecordingPin is a gpio.PinOut that remembers every level written to it.
type RecordingPin struct {
	*gpiotest.Pin

	mu     sync.Mutex
	writes []gpio.Level
	err    error
}

// NewRecordingPin returns a Low output pin named name.
func NewRecordingPin(name string) *RecordingPin {
	return &RecordingPin{Pin: &gpiotest.Pin{N: name}}
}

// Out implements gpio.PinOut, recording l, or failing with the error set by
// FailWith.
func (p *RecordingPin) Out(l gpio.Level) error {
	p.mu.Lock()
	err := p.err
	if err == nil {
		p.writes = append(p.writes, l)
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.Pin.Out(l)
}

// FailWith makes later writes fail with err (nil to heal).
func (p *RecordingPin) FailWith(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// Level is the level last written.
func (p *RecordingPin) Level() gpio.Level { return p.Pin.Read() }

// Writes returns a copy of every level written, in order.
func (p *RecordingPin) Writes() []gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]gpio.Level(nil), p.writes...)
}

// Transitions counts level changes among the writes.
func (p *RecordingPin) Transitions() int {
	w := p.Writes()
	n := 0
	for i := 1; i < len(w); i++ {
		if w[i] != w[i-1] {
			n++
		}
	}
	return n
}

// Reset forgets the writes recorded so far.
func (p *RecordingPin) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writes = nil
}

var _ gpio.PinOut = (*RecordingPin)(nil)
