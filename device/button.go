package device

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Default button timings. They are tuned for a child's hand, not an adult's:
// a deliberate "hold to hang up" takes two seconds, which a quick jab never
// reaches. Three seconds (Hold) opens pairing on an unpaired terminal: past
// the hang-up, so a child hanging up never opens it, short enough for an
// adult following the leaflet. No hold in normal use resets the unit, however
// long: a child leaning on the button after a call must not wipe the
// family's pairing. The factory reset is a power-up gesture (reset.go).
const (
	DefaultDebounce   = 30 * time.Millisecond
	DefaultLongPress  = 2 * time.Second
	DefaultHold       = 3 * time.Second
	DefaultStuckAfter = 60 * time.Second
)

// pollInterval bounds every WaitForEdge call. WaitForEdge(-1) can block
// forever, which would make Close hang; polling also catches a level change
// whose edge the kernel (or a fake) never delivered.
const pollInterval = 100 * time.Millisecond

// eventBuffer is generous: a consumer that stalls for a few seconds must not
// lose a hang-up.
const eventBuffer = 16

// ButtonKind says what gesture the child made.
type ButtonKind int

// The kinds keep their values across versions (they appear in logs): 3 and 5
// were the in-use factory reset (a 10 s hold), removed because a child could
// make it by accident.
const (
	// Press is a short press. It is emitted on release, when the button was
	// held for less than ButtonOpts.LongPress: only then is it known that the
	// press will not become a long one.
	Press ButtonKind = 1
	// LongPress is emitted as soon as the hold reaches ButtonOpts.LongPress,
	// without waiting for the release, so the child gets immediate feedback
	// ("a long press always hangs up").
	LongPress ButtonKind = 2
	// Hold is emitted, after LongPress, as soon as the hold reaches
	// ButtonOpts.Hold: it opens pairing on an unpaired terminal.
	Hold ButtonKind = 4
	// Release is emitted when a long press ends (a short one ends in Press).
	// The call machine ignores it; the power-up reset gesture (ResetGesture)
	// needs to know when the hold that armed it was let go.
	Release ButtonKind = 6
)

// String returns the kind's name, for logs.
func (k ButtonKind) String() string {
	switch k {
	case Press:
		return "press"
	case LongPress:
		return "long_press"
	case Hold:
		return "hold"
	case Release:
		return "release"
	default:
		return fmt.Sprintf("ButtonKind(%d)", int(k))
	}
}

// ButtonEvent is one recognised gesture.
type ButtonEvent struct {
	Kind ButtonKind
	// At is the moment the gesture became what it is: the (debounced) release
	// for Press and Release, the moment the threshold was reached for
	// LongPress and Hold.
	At time.Time
}

// ButtonOpts configures a Button. The zero value gives the defaults above.
type ButtonOpts struct {
	// ActiveLow means the pin reads Low while the button is pressed (button
	// to ground with a pull-up, the usual wiring).
	ActiveLow bool
	// Pull is passed to pin.In. The zero value, gpio.PullNoChange, keeps what
	// the device tree (or an external resistor) set up. Note that with the
	// kernel's gpio-sim, any other value overrides the pull the test set.
	Pull gpio.Pull
	// Debounce is how long a level must be stable before it counts.
	Debounce time.Duration
	// LongPress is the hold time that makes a LongPress.
	LongPress time.Duration
	// Hold is the hold time that makes a Hold; it lies between LongPress
	// and StuckAfter. Zero: DefaultHold, or halfway between the two when
	// they leave no room for the default.
	Hold time.Duration
	// StuckAfter is the hold time after which the button is considered stuck
	// (jammed, shorted, or a toy leaning on it): logged once, see Stuck.
	StuckAfter time.Duration
	// Logger receives warnings (stuck button, dropped events). Nil discards.
	Logger *slog.Logger
}

func (o ButtonOpts) withDefaults() (ButtonOpts, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.Debounce, DefaultDebounce)
	def(&o.LongPress, DefaultLongPress)
	def(&o.StuckAfter, DefaultStuckAfter)
	if o.Hold == 0 {
		o.Hold = DefaultHold
		if o.Hold <= o.LongPress || o.Hold >= o.StuckAfter {
			o.Hold = o.LongPress + (o.StuckAfter-o.LongPress)/2
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.Debounce < 0 || o.LongPress < 0 || o.Hold < 0 || o.StuckAfter < 0:
		return o, fmt.Errorf("device: button options: negative duration: %w", ErrInvalidConfig)
	case o.Debounce >= o.LongPress:
		return o, fmt.Errorf("device: button options: debounce %v must be shorter than long press %v: %w",
			o.Debounce, o.LongPress, ErrInvalidConfig)
	case o.LongPress >= o.StuckAfter:
		return o, fmt.Errorf("device: button options: long press %v must be shorter than stuck-after %v: %w",
			o.LongPress, o.StuckAfter, ErrInvalidConfig)
	case o.Hold <= o.LongPress || o.Hold >= o.StuckAfter:
		return o, fmt.Errorf("device: button options: hold %v must lie between long press %v and stuck-after %v: %w",
			o.Hold, o.LongPress, o.StuckAfter, ErrInvalidConfig)
	}
	return o, nil
}

// Button turns edges on one GPIO input into debounced gestures.
//
// One goroutine owns the pin and all timing state; the rest of the terminal
// only sees ButtonEvents, so the call state machine never deals with bounce
// or thresholds.
type Button struct {
	pin    gpio.PinIn
	opts   ButtonOpts
	log    *slog.Logger
	events chan ButtonEvent

	done      chan struct{}
	exited    chan struct{}
	closeOnce sync.Once
	closeErr  error

	pressed atomic.Bool
	stuck   atomic.Bool
}

// NewButton configures pin as an edge-triggered input and starts watching it.
//
// A button already held when NewButton is called counts as pressed from that
// moment (Pressed is true at once), so holding the button through power-up
// reaches the thresholds and can start the reset gesture (ResetGesture).
func NewButton(pin gpio.PinIn, opts ButtonOpts) (*Button, error) {
	if pin == nil {
		return nil, fmt.Errorf("device: open button: no pin: %w", ErrAbsent)
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := pin.In(opts.Pull, gpio.BothEdges); err != nil {
		return nil, fmt.Errorf("device: open button %q: %w", pin.Name(), err)
	}
	b := &Button{
		pin:    pin,
		opts:   opts,
		log:    opts.Logger.With("component", "button", "pin", pin.Name()),
		events: make(chan ButtonEvent, eventBuffer),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	// Read the initial level here, not in the goroutine, so that a press
	// made right after NewButton returns is a press and not "held at start",
	// and so that Pressed is true on return for a button held at power-up.
	held := b.isPressed()
	b.pressed.Store(held)
	go b.run(time.Now(), held)
	return b, nil
}

// Events delivers recognised gestures. It is closed by Close.
func (b *Button) Events() <-chan ButtonEvent { return b.events }

// Pressed reports the debounced state of the button.
func (b *Button) Pressed() bool { return b.pressed.Load() }

// Stuck reports whether the button has been held for longer than
// ButtonOpts.StuckAfter and not released since. The technician's self-test
// shows it; the terminal keeps running (it can still be rung).
func (b *Button) Stuck() bool { return b.stuck.Load() }

// Close stops watching the pin, halts it and closes Events. It waits for the
// watcher goroutine, which takes at most one poll interval. It is safe to
// call more than once.
func (b *Button) Close() error {
	b.closeOnce.Do(func() {
		close(b.done)
		<-b.exited
		if err := b.pin.Halt(); err != nil {
			b.closeErr = fmt.Errorf("device: close button %q: %w", b.pin.Name(), err)
		}
	})
	return b.closeErr
}

// isPressed reads the pin and applies the polarity.
func (b *Button) isPressed() bool {
	return (b.pin.Read() == gpio.High) != b.opts.ActiveLow
}

// run is the single owner of the debouncer and the hold timers.
//
// Debouncing: raw is the last level read and rawSince when it (or any edge
// while a change was pending) was last seen. A change becomes the stable
// level only once raw has stayed put for Debounce, so a burst of bounce
// edges restarts the wait and yields at most one transition. Hold times are
// measured from the start of the stable run (rawSince), not from when the
// debouncer accepted it.
func (b *Button) run(start time.Time, raw bool) {
	defer close(b.exited)
	defer close(b.events)

	o := b.opts
	rawSince := start
	stable := raw
	var pressStart time.Time
	var sentLong, sentHold, pollWarned bool
	if stable {
		pressStart = start
		b.pressed.Store(true)
	}

	for {
		select {
		case <-b.done:
			return
		default:
		}

		now := time.Now()
		wait := pollInterval
		if raw != stable {
			wait = min(wait, rawSince.Add(o.Debounce).Sub(now))
		} else if stable {
			if d, ok := b.nextDeadline(pressStart, sentLong, sentHold); ok {
				wait = min(wait, d.Sub(now))
			}
		}
		// Never ask for a zero or negative timeout: its meaning differs between
		// drivers (-1 blocks forever).
		wait = max(wait, time.Millisecond)

		waitStart := time.Now()
		edge := b.pin.WaitForEdge(wait)
		now = time.Now()
		if !edge && now.Sub(waitStart) < wait/2 {
			// The driver gave up early (edge detection broken or not
			// supported): fall back to polling rather than spinning.
			if !pollWarned {
				pollWarned = true
				b.log.Warn("button edge wait returns early; polling instead")
			}
			select {
			case <-b.done:
				return
			case <-time.After(wait - now.Sub(waitStart)):
			}
			now = time.Now()
		}
		if level := b.isPressed(); level != raw {
			raw, rawSince = level, now
		} else if edge && raw != stable {
			// Bounce that came back to the pending level within one wake-up:
			// the contact is still unsettled, start the wait again.
			rawSince = now
		}

		if raw != stable && now.Sub(rawSince) >= o.Debounce {
			stable = raw
			b.pressed.Store(stable)
			if stable {
				pressStart = rawSince
				sentLong, sentHold = false, false
			} else {
				if sentLong {
					b.emit(ButtonEvent{Kind: Release, At: rawSince})
				} else {
					b.emit(ButtonEvent{Kind: Press, At: rawSince})
				}
				if b.stuck.Swap(false) {
					b.log.Info("button released after being stuck", "held", rawSince.Sub(pressStart).Round(time.Second))
				}
			}
		}

		// Thresholds only count while the contact is settled in the pressed
		// position: a release that is still being debounced wins.
		if stable && raw == stable {
			held := now.Sub(pressStart)
			if !sentLong && held >= o.LongPress {
				sentLong = true
				b.emit(ButtonEvent{Kind: LongPress, At: pressStart.Add(o.LongPress)})
			}
			if !sentHold && held >= o.Hold {
				sentHold = true
				b.emit(ButtonEvent{Kind: Hold, At: pressStart.Add(o.Hold)})
			}
			if held >= o.StuckAfter && !b.stuck.Swap(true) {
				b.log.Warn("button stuck: held without release", "held", held.Round(time.Second))
			}
		}
	}
}

// nextDeadline is the next hold threshold still to be reached.
func (b *Button) nextDeadline(pressStart time.Time, sentLong, sentHold bool) (time.Time, bool) {
	switch {
	case !sentLong:
		return pressStart.Add(b.opts.LongPress), true
	case !sentHold:
		return pressStart.Add(b.opts.Hold), true
	case !b.stuck.Load():
		return pressStart.Add(b.opts.StuckAfter), true
	}
	return time.Time{}, false
}

// emit never blocks the watcher: a stalled consumer loses events (logged)
// rather than freezing the debouncer.
func (b *Button) emit(ev ButtonEvent) {
	select {
	case b.events <- ev:
		b.log.Debug("button event", "kind", ev.Kind)
	default:
		b.log.Warn("button event dropped: consumer not reading", "kind", ev.Kind)
	}
}
