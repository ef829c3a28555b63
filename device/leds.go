package device

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Color names an LED by its colour, which is how the child knows it.
type Color string

// The terminal's LEDs.
const (
	Green Color = "green"
	Red   Color = "red"
	Blue  Color = "blue"
)

// Colors lists every LED colour, in a fixed order.
func Colors() []Color { return []Color{Green, Red, Blue} }

// Valid reports whether c is one of Colors.
func (c Color) Valid() bool {
	switch c {
	case Green, Red, Blue:
		return true
	}
	return false
}

// Pattern is what the lights say. A child who cannot read has only these
// lights (and sounds) to know what the terminal is doing, so every pattern
// differs from every other by colour or by rhythm, and the rules are few:
// green is "you can call / we are calling", blue is "a call is live or being
// set up", red is "something is wrong"; steady is a state, slow blink is
// waiting, fast blink wants attention.
//
//	pattern     green        red          blue
//	off         off          off          off          powered down / quiet
//	ready       on           off          off          press to call
//	calling     slow blink   off          off          ringing your parent
//	ringing     fast blink   off          fast blink*  your parent is calling: press!
//	in_call     off          off          on           call is live
//	in_call_voice on         off          on           call is live, voice only: the month's data is used up
//	no_answer   off          slow blink   off          parent did not answer
//	unreachable off          on           off          your parent cannot be reached now
//	offline     off          breathe      off          no network (it comes back by itself)
//	fault       fast blink*  fast blink   off          needs repair
//	pairing     off          off          slow blink   a parent asks to pair: press to agree
//	pairable    off          off          breathe      open for pairing (after a reset or a 3 s hold)
//	reset_armed off          fast blink   fast blink*  held at power-up: let go, press 3 times to reset
//
// slow blink = 1 Hz, fast blink = 4 Hz, * = in antiphase with the other
// blinking LED, so the light seems to jump between the two. Offline and
// needs repair differ in colour, not only in rhythm: one red LED glowing
// ("wait, it comes back") against red and green flashing in turn ("tell an
// adult"), which a parent can tell apart on the phone with the programme,
// or from a picture. reset_armed is the one pattern that mixes red and
// blue: a technician's state, never shown in normal use (reset.go).
// breathe = a slow glow rising and
// falling (3 s), by software PWM: calm, "waiting, nothing to do", unlike
// the blinks. GPIO character devices have no PWM, and the cheap boards' LED
// pins rarely reach a PWM block, so it is done in software everywhere.
type Pattern string

// The patterns. Their string values are stable: they appear in logs, in the
// simulated panel and in the technician's tools.
const (
	Off     Pattern = "off"
	Ready   Pattern = "ready"
	Calling Pattern = "calling"
	Ringing Pattern = "ringing"
	InCall  Pattern = "in_call"
	// InCallVoice: a call is live, voice only, because the unit's monthly
	// data budget is spent (internal/terminal/databudget): the blue of a
	// call with the green of "you can call" beside it, steady, so the
	// child sees the call is on and unlike every other call.
	InCallVoice Pattern = "in_call_voice"
	NoAnswer    Pattern = "no_answer"
	// Unreachable: the child's call reached nobody (shown for a few
	// seconds after the press, with its own sound).
	Unreachable Pattern = "unreachable"
	Offline     Pattern = "offline"
	Fault       Pattern = "fault"
	Pairing     Pattern = "pairing"
	Pairable    Pattern = "pairable"
	// ResetArmed is shown only during the power-up reset gesture.
	ResetArmed Pattern = "reset_armed"
)

// ledMode is what one LED does within a pattern.
type ledMode int

const (
	modeOff      ledMode = iota
	modeOn               // steady
	modeSlow             // 1 Hz blink, on first
	modeFast             // 4 Hz blink, on first
	modeSlowAnti         // 1 Hz blink in antiphase with modeSlow
	modeFastAnti         // 4 Hz blink in antiphase with modeFast
	modeBreathe          // software-PWM glow; see breathe
)

// patterns is the table documented on Pattern. Colours not listed are off.
var patterns = map[Pattern]map[Color]ledMode{
	Off:         {},
	Ready:       {Green: modeOn},
	Calling:     {Green: modeSlow},
	Ringing:     {Green: modeFast, Blue: modeFastAnti},
	InCall:      {Blue: modeOn},
	InCallVoice: {Blue: modeOn, Green: modeOn},
	NoAnswer:    {Red: modeSlow},
	Unreachable: {Red: modeOn},
	Offline:     {Red: modeBreathe},
	// Red and green jump to and fro: unlike offline's single red glow.
	Fault:    {Red: modeFast, Green: modeFastAnti},
	Pairing:  {Blue: modeSlow},
	Pairable: {Blue: modeBreathe},
	// Red and blue jump to and fro: unlike anything a child sees.
	ResetArmed: {Red: modeFast, Blue: modeFastAnti},
}

// Patterns lists every pattern, in a fixed order.
func Patterns() []Pattern {
	return []Pattern{Off, Ready, Calling, Ringing, InCall, InCallVoice, NoAnswer, Unreachable, Offline, Fault, Pairing, Pairable, ResetArmed}
}

// Valid reports whether p is in the table.
func (p Pattern) Valid() bool {
	_, ok := patterns[p]
	return ok
}

// tick is the blink clock: half a period of the 4 Hz blink. The 1 Hz blink
// changes every fourth tick.
const tick = 125 * time.Millisecond

// lit says whether an LED in mode m is on at tick n of the pattern.
func (m ledMode) lit(n int) bool {
	switch m {
	case modeOn:
		return true
	case modeSlow:
		return (n/4)%2 == 0
	case modeSlowAnti:
		return (n/4)%2 == 1
	case modeFast:
		return n%2 == 0
	case modeFastAnti:
		return n%2 == 1
	case modeBreathe:
		return true // the blink clock leaves it alone; breathe drives it
	}
	return false
}

// Software PWM for modeBreathe: 100 frames a second (no visible flicker),
// each lit for the glow's current duty.
const (
	pwmFrame     = 10 * time.Millisecond
	breathPeriod = 3 * time.Second
)

// breathDuty is the glow's duty at t into the pattern: it starts at full
// (the change is visible at once), falls and rises along a raised cosine,
// squared because the eye's response to light is far from linear.
func breathDuty(t time.Duration) float64 {
	x := (1 + math.Cos(2*math.Pi*float64(t%breathPeriod)/float64(breathPeriod))) / 2
	return x * x
}

// LEDOpts configures LEDs.
type LEDOpts struct {
	// ActiveLow means an LED lights when its pin is driven Low (LED sunk by
	// the GPIO). It applies to all LEDs.
	ActiveLow bool
	// Logger receives pin write failures and unknown patterns. Nil discards.
	Logger *slog.Logger
}

// LEDs drives the status LEDs from a named Pattern.
//
// Show is cheap and safe from any goroutine: it sets the steady levels at
// once and leaves blinking to one goroutine with a ticker. Every pin write
// happens under one mutex, so a blink can never overwrite a newer pattern.
type LEDs struct {
	log       *slog.Logger
	activeLow bool
	pins      map[Color]gpio.PinOut

	mu      sync.Mutex
	pattern Pattern
	n       int                // ticks since the pattern was shown
	written map[Color]bool     // last level written, as "lit"
	failing map[Color]struct{} // pins whose last write failed (logged once)
	closed  bool

	restart  chan struct{} // Show → blinker: restart the blink clock
	wake     chan struct{} // Show → breather: a pattern may breathe
	gen      int           // Show count: the breather's writes are for one pattern
	shownAt  time.Time
	done     chan struct{}
	exited   chan struct{}
	breathed chan struct{}
	once     sync.Once
}

// NewLEDs takes one output pin per colour and turns them all off. A colour
// that is missing from pins (or maps to nil) is an absent LED: patterns that
// use it simply show less.
func NewLEDs(pins map[Color]gpio.PinOut, opts LEDOpts) (*LEDs, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &LEDs{
		log:       log.With("component", "leds"),
		activeLow: opts.ActiveLow,
		pins:      make(map[Color]gpio.PinOut, len(pins)),
		pattern:   Off,
		written:   make(map[Color]bool, len(pins)),
		failing:   make(map[Color]struct{}),
		restart:   make(chan struct{}, 1),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		exited:    make(chan struct{}),
		breathed:  make(chan struct{}),
	}
	for c, p := range pins {
		if !c.Valid() {
			return nil, fmt.Errorf("device: open LEDs: colour %q: %w", c, ErrInvalidConfig)
		}
		if p == nil {
			continue
		}
		l.pins[c] = p
	}
	for _, c := range Colors() {
		p, ok := l.pins[c]
		if !ok {
			l.log.Info("LED absent", "color", c)
			continue
		}
		if err := p.Out(l.level(false)); err != nil {
			return nil, fmt.Errorf("device: open LED %s (%s): %w", c, p.Name(), err)
		}
		l.written[c] = false
	}
	go l.run()
	go l.breathe()
	return l, nil
}

// Show switches to pattern p, starting its blink cycle from the beginning:
// blinking LEDs start lit — unless that first frame is what the LEDs show
// already (ready's steady green → calling's green blink), in which case the
// cycle starts in its dark half. Either way the child sees the press land
// at once. An unknown
// pattern shows Fault, because a bug must be visible, and returns
// ErrUnknownPattern.
func (l *LEDs) Show(p Pattern) error {
	var err error
	if !p.Valid() {
		err = fmt.Errorf("device: show %q: %w", p, ErrUnknownPattern)
		l.log.Error("unknown LED pattern, showing fault", "pattern", p)
		p = Fault
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("device: show %q: %w", p, ErrClosed)
	}
	if l.pattern != p {
		l.log.Debug("LED pattern", "pattern", p, "was", l.pattern)
	}
	changed := l.pattern != p
	l.pattern = p
	l.n = 0
	l.gen++
	l.shownAt = time.Now()
	if changed && l.sameFrameLocked(p, 0) {
		l.n = halfCycle(p)
	}
	l.applyLocked()
	l.mu.Unlock()

	select {
	case l.restart <- struct{}{}:
	default: // a restart is already pending
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return err
}

// Pattern returns the pattern being shown.
func (l *LEDs) Pattern() Pattern {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pattern
}

// Close stops blinking and turns every LED off. It is safe to call more than
// once; Show after Close returns ErrClosed.
func (l *LEDs) Close() error {
	var errs []error
	l.once.Do(func() {
		close(l.done)
		<-l.exited
		<-l.breathed
		l.mu.Lock()
		defer l.mu.Unlock()
		l.closed = true
		l.pattern = Off
		for _, c := range Colors() {
			p, ok := l.pins[c]
			if !ok {
				continue
			}
			if err := p.Out(l.level(false)); err != nil {
				errs = append(errs, fmt.Errorf("device: close LED %s (%s): %w", c, p.Name(), err))
			}
		}
	})
	return errors.Join(errs...)
}

// run is the blink clock.
func (l *LEDs) run() {
	defer close(l.exited)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-l.restart:
			t.Reset(tick)
		case <-t.C:
			// A Show that raced with this tick wins: restart instead of
			// advancing the old cycle.
			select {
			case <-l.restart:
				t.Reset(tick)
				continue
			default:
			}
			l.mu.Lock()
			l.n++
			l.applyLocked()
			l.mu.Unlock()
		}
	}
}

// sameFrameLocked reports whether p at tick n lights exactly the LEDs that
// are lit now. l.mu must be held.
func (l *LEDs) sameFrameLocked(p Pattern, n int) bool {
	for c := range l.pins {
		was, known := l.written[c]
		if !known || was != patterns[p][c].lit(n) {
			return false
		}
	}
	return true
}

// halfCycle is the tick at which p's slowest blink is in its other half.
func halfCycle(p Pattern) int {
	h := 0
	for _, m := range patterns[p] {
		switch m {
		case modeSlow, modeSlowAnti:
			h = max(h, 4)
		case modeFast, modeFastAnti:
			h = max(h, 1)
		}
	}
	return h
}

// breathe is the software PWM: while the pattern has breathing LEDs it
// lights them for breathDuty of every pwmFrame; otherwise it sleeps until
// Show wakes it. Its writes are for the pattern it started the frame with:
// a Show in between wins.
func (l *LEDs) breathe() {
	defer close(l.breathed)
	for {
		l.mu.Lock()
		gen, since := l.gen, time.Since(l.shownAt)
		var colors []Color
		for c, m := range patterns[l.pattern] {
			if m == modeBreathe && l.pins[c] != nil {
				colors = append(colors, c)
			}
		}
		l.mu.Unlock()
		if len(colors) == 0 {
			select {
			case <-l.done:
				return
			case <-l.wake:
				continue
			}
		}
		on := time.Duration(breathDuty(since) * float64(pwmFrame))
		if on < pwmFrame/50 {
			on = 0 // too short to see; spare the writes
		}
		if on > 0 && !l.writeFor(gen, colors, true) {
			continue
		}
		if !l.sleep(on) {
			return
		}
		if on < pwmFrame && !l.writeFor(gen, colors, false) {
			continue
		}
		if !l.sleep(pwmFrame - on) {
			return
		}
	}
}

// writeFor lights or darkens colors if pattern generation gen is still
// shown; false means it is not.
func (l *LEDs) writeFor(gen int, colors []Color, lit bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen || l.closed {
		return false
	}
	for _, c := range colors {
		if was, known := l.written[c]; known && was == lit {
			continue
		}
		if err := l.pins[c].Out(l.level(lit)); err != nil {
			delete(l.written, c)
			continue // applyLocked logs pin failures; PWM would flood the log
		}
		l.written[c] = lit
	}
	return true
}

// sleep waits d unless the LEDs close first.
func (l *LEDs) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.done:
		return false
	case <-t.C:
		return true
	}
}

// applyLocked writes the levels of the current pattern at tick l.n, touching
// only pins whose level changes. l.mu must be held.
func (l *LEDs) applyLocked() {
	modes := patterns[l.pattern]
	for _, c := range Colors() {
		p, ok := l.pins[c]
		if !ok {
			continue
		}
		if modes[c] == modeBreathe && l.n > 0 {
			continue // lit by Show; the breather's after that
		}
		on := modes[c].lit(l.n)
		if was, known := l.written[c]; known && was == on {
			continue
		}
		if err := p.Out(l.level(on)); err != nil {
			delete(l.written, c) // unknown: retry on the next tick
			if _, logged := l.failing[c]; !logged {
				l.failing[c] = struct{}{}
				l.log.Error("LED write failed", "color", c, "pin", p.Name(), "err", err)
			}
			continue
		}
		l.written[c] = on
		if _, was := l.failing[c]; was {
			delete(l.failing, c)
			l.log.Info("LED write recovered", "color", c, "pin", p.Name())
		}
	}
}

// level is the pin level that makes an LED lit or dark.
func (l *LEDs) level(on bool) gpio.Level {
	return gpio.Level(on != l.activeLow)
}
