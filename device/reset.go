package device

import "time"

// The factory reset is a gesture a child does not make by chance. It erases
// the family's pairing, and the parent, far away, then needs the unit's QR
// label to pair again; so no hold in normal use resets the unit, however
// long. Instead:
//
//  1. the button is held down while the unit powers up, and kept down for
//     ResetOpts.Arm: the unit shows the "reset armed" light and plays the
//     reset sound;
//  2. the holder lets go, and within ResetOpts.Window presses the button
//     exactly ResetOpts.Presses times (short presses);
//  3. then leaves it alone for ResetOpts.Quiet: the unit resets.
//
// Anything else cancels and the unit boots as usual: letting go before the
// light, no presses or too few in the window, a long press, one press too
// many (a child drumming on the button), or a hold that reaches StuckAfter
// (a jammed button needs repair, not a reset). The technician's other way is
// the service command, `terminald reset`.
//
// ResetGesture is the recogniser, pure: the caller feeds it the Button's
// events and clock ticks and acts on its verdicts (internal/terminal's
// BootReset shows the light and erases the pairing).

// ResetHowTo is the gesture in the words of the unit's label, Chinese then
// English: `terminald label` prints it under the QR code and the simulated
// board's panel shows it (its test checks the two agree).
const ResetHowTo = "恢复出厂设置：按住按钮再接通电源，红蓝灯交替闪烁时松开，然后连按三下。\n" +
	"Factory reset: hold the button while plugging in the power; when red and blue flash, let go and press 3 times."

// Default reset gesture: held 3 s at power-up, then 3 presses within 10 s,
// then 2 s of quiet.
const (
	DefaultResetArm     = 3 * time.Second
	DefaultResetPresses = 3
	DefaultResetWindow  = 10 * time.Second
	DefaultResetQuiet   = 2 * time.Second
)

// ResetOpts configures a ResetGesture; the zero value gives the defaults.
type ResetOpts struct {
	// Arm is how long the power-up hold must last before the gesture arms.
	Arm time.Duration
	// Presses is how many short presses confirm, no more, no fewer.
	Presses int
	// Window is the time from the release of the power-up hold in which
	// the presses must be made.
	Window time.Duration
	// Quiet is how long the button must stay untouched after the last
	// press: a further press means drumming, not a deliberate count.
	Quiet time.Duration
	// StuckAfter is when a power-up hold is a jammed button, not a person
	// (the Button's own StuckAfter; zero: DefaultStuckAfter).
	StuckAfter time.Duration
}

func (o ResetOpts) withDefaults() ResetOpts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Arm, DefaultResetArm)
	def(&o.Window, DefaultResetWindow)
	def(&o.Quiet, DefaultResetQuiet)
	def(&o.StuckAfter, DefaultStuckAfter)
	if o.Presses <= 0 {
		o.Presses = DefaultResetPresses
	}
	return o
}

// ResetVerdict is what a ResetGesture decided after one input.
type ResetVerdict int

const (
	// ResetPending: keep feeding it.
	ResetPending ResetVerdict = iota
	// ResetArm: the power-up hold lasted long enough. Show the "reset
	// armed" light and play the reset sound, so the holder knows to let
	// go and count the presses. Reported once.
	ResetArm
	// ResetConfirmed: the gesture is complete; reset the unit.
	ResetConfirmed
	// ResetCancelled: not a reset; boot as usual. Why says why.
	ResetCancelled
	// ResetStuck: the power-up hold reached StuckAfter: a jammed button,
	// not a reset. Boot as usual; the Button reports Stuck.
	ResetStuck
)

// String names the verdict, for logs.
func (v ResetVerdict) String() string {
	switch v {
	case ResetPending:
		return "pending"
	case ResetArm:
		return "armed"
	case ResetConfirmed:
		return "confirmed"
	case ResetCancelled:
		return "cancelled"
	case ResetStuck:
		return "stuck"
	}
	return "ResetVerdict(?)"
}

type resetPhase int

const (
	phaseHolding    resetPhase = iota // power-up hold, not yet armed
	phaseArmed                        // armed, still held
	phaseConfirming                   // released: counting presses
	phaseDone                         // decided
)

// ResetGesture recognises the power-up reset gesture. Make one with
// NewResetGesture only when the button is pressed at power-up; it is a
// value, and its methods return the next one (no I/O, no clock of its own).
type ResetGesture struct {
	opts      ResetOpts
	phase     resetPhase
	bootAt    time.Time // when the power-up hold was first seen
	deadline  time.Time // end of the window for the presses
	presses   int
	lastPress time.Time
	// Why is the reason of a cancel, for the log.
	Why string
}

// NewResetGesture starts the recogniser for a button seen pressed at
// power-up, at bootAt.
func NewResetGesture(bootAt time.Time, opts ResetOpts) ResetGesture {
	return ResetGesture{opts: opts.withDefaults(), bootAt: bootAt}
}

// Done reports whether the gesture has been decided either way.
func (g ResetGesture) Done() bool { return g.phase == phaseDone }

func (g ResetGesture) cancel(why string) (ResetGesture, ResetVerdict) {
	g.phase, g.Why = phaseDone, why
	return g, ResetCancelled
}

// Event feeds one of the Button's events.
func (g ResetGesture) Event(ev ButtonEvent) (ResetGesture, ResetVerdict) {
	switch g.phase {
	case phaseHolding:
		if ev.Kind == Press || ev.Kind == Release {
			return g.cancel("the power-up hold ended before the reset armed")
		}
		return g.Tick(ev.At, true)
	case phaseArmed:
		if ev.Kind == Release || ev.Kind == Press {
			g.phase = phaseConfirming
			g.deadline = ev.At.Add(g.opts.Window)
			return g, ResetPending
		}
		return g.Tick(ev.At, true)
	case phaseConfirming:
		switch ev.Kind {
		case Press:
			if ev.At.After(g.deadline) {
				return g.cancel("the confirming presses came too late")
			}
			g.presses++
			g.lastPress = ev.At
			if g.presses > g.opts.Presses {
				return g.cancel("too many presses")
			}
			return g, ResetPending
		case LongPress, Hold, Release:
			return g.cancel("a long press instead of short ones")
		}
	}
	return g, ResetPending
}

// Tick tells the recogniser the time now and whether the button is down;
// call it often (every 100 ms or so) whatever the button does.
func (g ResetGesture) Tick(now time.Time, pressed bool) (ResetGesture, ResetVerdict) {
	switch g.phase {
	case phaseHolding, phaseArmed:
		held := now.Sub(g.bootAt)
		if held >= g.opts.StuckAfter {
			g.phase, g.Why = phaseDone, "held at power-up for longer than a person would: the button is stuck"
			return g, ResetStuck
		}
		if g.phase == phaseHolding && held >= g.opts.Arm {
			g.phase = phaseArmed
			return g, ResetArm
		}
	case phaseConfirming:
		switch {
		case g.presses < g.opts.Presses && now.After(g.deadline):
			return g.cancel("no confirming presses in time")
		case g.presses == g.opts.Presses && !pressed && now.Sub(g.lastPress) >= g.opts.Quiet:
			g.phase = phaseDone
			return g, ResetConfirmed
		case g.presses == g.opts.Presses && pressed && now.Sub(g.lastPress) >= g.opts.Quiet:
			// A press still held at the end of the quiet: it is one too
			// many, or a hold; either way not the pattern.
			return g.cancel("the button was pressed again after the confirming presses")
		}
	}
	return g, ResetPending
}
