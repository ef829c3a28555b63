package pins

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
	"periph.io/x/host/v3/gpioioctl"
	"periph.io/x/host/v3/sysfs"

	"github.com/tuanju/tuanju/device"
)

// Chip is one GPIO chip: *gpioioctl.GPIOChip on a board, a fake in tests.
type Chip interface {
	Name() string  // device name: "gpiochip0"
	Label() string // "pinctrl-bcm2835", "300b000.pinctrl", "tuanju-sim"
	LineCount() int
	// LineName is the line's name from the device tree ("" if unnamed).
	LineName(offset int) string
	// Line is the line as a periph pin.
	Line(offset int) gpio.PinIO
}

// Resolver turns pin specs into pins.
type Resolver struct {
	Chips []Chip
	// ByName is periph's gpioreg.ByName, asked for names no chip line has.
	// Nil asks nothing.
	ByName func(string) gpio.PinIO
}

// Line is a resolved pin and where it is.
type Line struct {
	gpio.PinIO
	Spec Spec
	// Chip and Offset locate the line; Chip is "" when the pin came from a
	// periph SoC driver by name and its chip is not known.
	Chip   string
	Label  string
	Offset int
}

// Where describes the line for people: "GPIO17 = gpiochip0:17 (pinctrl-bcm2835)".
func (l *Line) Where() string {
	if l.Chip == "" {
		return l.Spec.String() + " (periph " + l.PinIO.String() + ")"
	}
	loc := l.Chip + ":" + strconv.Itoa(l.Offset)
	if l.Label != "" && l.Label != l.Chip {
		loc += " (" + l.Label + ")"
	}
	if l.Spec.String() == l.Chip+":"+strconv.Itoa(l.Offset) {
		return loc
	}
	return l.Spec.String() + " = " + loc
}

// Name is the line's name, or its chip:offset when the device tree gave it
// none, so logs and the self-test never show an empty pin name.
func (l *Line) Name() string {
	if n := l.PinIO.Name(); n != "" {
		return n
	}
	return l.Spec.String()
}

// Host initialises periph's host drivers (gpioioctl among them) and returns
// a Resolver over the kernel's GPIO chips. Drivers that fail are logged: on
// a board without /dev/gpiomem the bcm283x driver fails and the character
// device still works.
func Host(log *slog.Logger) (*Resolver, error) {
	state, err := host.Init()
	if err != nil {
		return nil, fmt.Errorf("pins: periph host init: %w", err)
	}
	if log != nil {
		for _, f := range state.Failed {
			log.Debug("periph driver failed", "driver", f.D.String(), "err", f.Err)
		}
	}
	r := &Resolver{ByName: gpioreg.ByName}
	for _, c := range gpioioctl.Chips {
		r.Chips = append(r.Chips, hostChip{c})
	}
	return r, nil
}

type hostChip struct{ c *gpioioctl.GPIOChip }

func (h hostChip) Name() string   { return h.c.Name() }
func (h hostChip) Label() string  { return h.c.Label() }
func (h hostChip) LineCount() int { return h.c.LineCount() }
func (h hostChip) LineName(o int) string {
	if o < 0 || o >= len(h.c.Lines()) {
		return ""
	}
	return h.c.Lines()[o].Name()
}
func (h hostChip) Line(o int) gpio.PinIO {
	if o < 0 || o >= len(h.c.Lines()) {
		return nil
	}
	return h.c.Lines()[o]
}

// Pin parses spec and resolves it.
func (r *Resolver) Pin(spec string) (*Line, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return r.Resolve(s)
}

// Resolve finds the line s names. A missing chip or line wraps
// device.ErrAbsent, with the chips there are, so a technician can see what
// the kernel offers.
func (r *Resolver) Resolve(s Spec) (*Line, error) {
	if s.ByOffset() {
		return r.byOffset(s)
	}
	return r.byName(s)
}

func (r *Resolver) byOffset(s Spec) (*Line, error) {
	var found []Chip
	for _, c := range r.Chips {
		if c.Name() == s.Chip || c.Label() == s.Chip {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("pins: pin %s: no GPIO chip named or labelled %q (chips: %s): %w", s, s.Chip, r.chipList(), device.ErrAbsent)
	case 1:
	default:
		names := make([]string, len(found))
		for i, c := range found {
			names[i] = c.Name()
		}
		return nil, fmt.Errorf("pins: pin %s: label %q is on %s: use the gpiochip name: %w", s, s.Chip, strings.Join(names, ", "), ErrAmbiguous)
	}
	c := found[0]
	if s.Offset >= c.LineCount() {
		return nil, fmt.Errorf("pins: pin %s: %s (%s) has lines 0-%d: %w", s, c.Name(), c.Label(), c.LineCount()-1, device.ErrAbsent)
	}
	return r.line(s, c, s.Offset), nil
}

func (r *Resolver) byName(s Spec) (*Line, error) {
	type hit struct {
		c   Chip
		off int
	}
	var hits []hit
	for _, c := range r.Chips {
		for o := range c.LineCount() {
			if c.LineName(o) == s.Name {
				hits = append(hits, hit{c, o})
			}
		}
	}
	switch len(hits) {
	case 1:
		return r.line(s, hits[0].c, hits[0].off), nil
	case 0:
	default:
		where := make([]string, len(hits))
		for i, h := range hits {
			where[i] = h.c.Name() + ":" + strconv.Itoa(h.off)
		}
		return nil, fmt.Errorf("pins: pin %s: line name on %s: give chip:offset instead: %w", s, strings.Join(where, " and "), ErrAmbiguous)
	}
	if r.ByName != nil {
		if p := r.ByName(s.Name); p != nil {
			if sp, ok := p.(*sysfs.Pin); ok {
				return nil, fmt.Errorf("pins: pin %s: no line has that name; periph knows it only as the kernel's global GPIO number %d, which changes between kernels: give chip:offset (chips: %s): %w",
					s, sp.Number(), r.chipList(), ErrGlobalNumber)
			}
			return &Line{PinIO: p, Spec: s, Offset: -1}, nil
		}
	}
	return nil, fmt.Errorf("pins: pin %s: no line has that name (chips: %s): %w", s, r.chipList(), device.ErrAbsent)
}

func (r *Resolver) line(s Spec, c Chip, off int) *Line {
	return &Line{PinIO: c.Line(off), Spec: s, Chip: c.Name(), Label: c.Label(), Offset: off}
}

func (r *Resolver) chipList() string {
	if len(r.Chips) == 0 {
		return "none"
	}
	out := make([]string, len(r.Chips))
	for i, c := range r.Chips {
		out[i] = fmt.Sprintf("%s %q %d lines", c.Name(), c.Label(), c.LineCount())
	}
	return strings.Join(out, "; ")
}

// Lines are the lines of a Map: those that resolved, and why each other
// did not, so the self-test can report every pin on its own.
type Lines struct {
	Button *Line
	LEDs   map[device.Color]*Line
	// ButtonErr and LEDErrs say why a pin the map names has no line.
	ButtonErr error
	LEDErrs   map[device.Color]error
}

// Open resolves every pin of pm. It reports every missing or ambiguous pin
// at once (a technician fixes a board file in one go), and refuses two specs
// that reach the same line ("GPIO17" and "gpiochip0:17"). The Lines it
// returns hold what did resolve even when err is not nil.
func (r *Resolver) Open(pm Map) (Lines, error) {
	if err := pm.Validate(); err != nil {
		return Lines{}, err
	}
	out := Lines{LEDs: map[device.Color]*Line{}, LEDErrs: map[device.Color]error{}}
	used := map[string]string{}
	take := func(spec, what string) (*Line, error) {
		l, err := r.Pin(spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if l.Chip != "" {
			key := l.Chip + ":" + strconv.Itoa(l.Offset)
			if other, dup := used[key]; dup {
				return nil, fmt.Errorf("pins: %s and %s are both %s: %w", other, what, l.Where(), device.ErrInvalidConfig)
			}
			used[key] = what
		}
		return l, nil
	}
	var errs []error
	out.Button, out.ButtonErr = take(pm.Button, "button")
	errs = append(errs, out.ButtonErr)
	colors := make([]device.Color, 0, len(pm.LEDs))
	for c := range pm.LEDs {
		colors = append(colors, c)
	}
	slices.Sort(colors)
	for _, c := range colors {
		l, err := take(pm.LEDs[c], "LED "+string(c))
		if err != nil {
			out.LEDErrs[c] = err
			errs = append(errs, err)
			continue
		}
		out.LEDs[c] = l
	}
	return out, errors.Join(errs...)
}
