package board

import (
	"errors"
	"fmt"
	"os"

	"periph.io/x/conn/v3/gpio"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/pins"
	"github.com/tuanju/tuanju/device/screen/fb"
	"github.com/tuanju/tuanju/device/speaker"
	"github.com/tuanju/tuanju/media/synth"
)

// gpioBoard is a real board: lines by device/pins, sound by ALSA.
type gpioBoard struct {
	cfg    Config
	button *pins.Line // nil when it did not resolve
	btn    *device.Button
	leds   *device.LEDs
}

// openGPIO finds the pin map's lines and opens the button and the LEDs
// that resolved. Every pin the map names must exist (a pin that does not is
// a wrong board file, reported by Err and by its own self-test check); an
// LED the map leaves out is not fitted.
func openGPIO(cfg Config) *Board {
	log, pm := cfg.Log, cfg.Pins
	hw := &gpioBoard{cfg: cfg}
	b := &Board{cfg: cfg, hw: hw, lines: map[device.Color]LEDLine{}}
	lines, err := resolve(cfg)
	if lines.LEDErrs == nil { // the resolver or the pin map failed as a whole
		lines.ButtonErr = err
		lines.LEDErrs = map[device.Color]error{}
		for c := range pm.LEDs {
			lines.LEDErrs[c] = err
		}
	}
	hw.button = lines.Button
	b.buttonErr = lines.ButtonErr
	if lines.Button != nil {
		b.button, b.buttonErr = openButton(lines.Button, cfg)
	}

	_, debugfsErr := os.Stat(pins.DefaultDebugfs)
	out := map[device.Color]gpio.PinOut{}
	for c, spec := range pm.LEDs {
		l, ok := lines.LEDs[c]
		if !ok {
			b.lines[c] = LEDLine{Where: spec, Err: lines.LEDErrs[c]}
			continue
		}
		out[c] = l
		ll := LEDLine{Pin: l, Where: l.Where(), ActiveLow: pm.LEDActiveLow}
		if l.Chip != "" && debugfsErr == nil {
			ll.ReadBack = func() (gpio.Level, error) {
				isOut, lvl, err := l.DrivenLevel(pins.DefaultDebugfs)
				if err == nil && !isOut {
					err = fmt.Errorf("%s is not an output", l.Where())
				}
				return lvl, err
			}
		}
		b.lines[c] = ll
	}
	for _, c := range device.Colors() {
		if _, fitted := pm.LEDs[c]; !fitted {
			log.Info("LED not in pin map, treated as not fitted", "color", c)
		}
	}
	b.leds, err = device.NewLEDs(out, device.LEDOpts{ActiveLow: pm.LEDActiveLow, Logger: log})
	if err != nil {
		// Every LED is broken with it; the board still has a driver that
		// shows nothing, so the self-test goes on.
		err = fmt.Errorf("board: gpio: %w", err)
		for c := range out {
			l := b.lines[c]
			l.Err = err
			b.lines[c] = l
		}
		b.leds, _ = device.NewLEDs(nil, device.LEDOpts{Logger: log})
	}
	hw.btn, hw.leds = b.button, b.leds
	if b.Err() == nil {
		log.Info("gpio board open", "button", lines.Button.Where(), "leds", pm.LEDs)
	}
	return b
}

// resolve finds cfg's pins on the resolver it names or on the kernel's.
func resolve(cfg Config) (pins.Lines, error) {
	r := cfg.Resolver
	if r == nil {
		var err error
		if r, err = pins.Host(cfg.Log); err != nil {
			return pins.Lines{}, fmt.Errorf("board: gpio: %w", err)
		}
	}
	lines, err := r.Open(cfg.Pins)
	if err != nil {
		err = fmt.Errorf("board: gpio: %w", err)
	}
	return lines, err
}

func openButton(l *pins.Line, cfg Config) (*device.Button, error) {
	pull, err := cfg.Pins.Pull()
	if err != nil {
		return nil, err
	}
	btn, err := device.NewButton(l, device.ButtonOpts{ActiveLow: cfg.Pins.ButtonActiveLow, Pull: pull, LongPress: cfg.LongPress, Logger: cfg.Log})
	if err != nil {
		return nil, fmt.Errorf("board: gpio: %w", err)
	}
	return btn, nil
}

func (g *gpioBoard) buttonWhere() string {
	if g.button != nil {
		return g.button.Where()
	}
	return g.cfg.Pins.Button
}

// speaker opens the ALSA speaker. Without one the child hears neither the
// cues nor the parent.
func (g *gpioBoard) speaker() (Speaker, func() error, bool, error) {
	if g.cfg.Speaker == "" {
		return nil, nil, false, nil
	}
	sp, err := speaker.Open(speaker.Options{Device: g.cfg.Speaker, Log: g.cfg.Log.With("component", "speaker")})
	if err != nil {
		return nil, nil, true, fmt.Errorf("board: speaker %s: %w", g.cfg.Speaker, err)
	}
	return sp, sp.Close, true, nil
}

func (g *gpioBoard) tone() (Tone, bool) {
	if g.cfg.Speaker == "" {
		return nil, false
	}
	return alsaTone{g.cfg.Speaker}, true
}

func (g *gpioBoard) screen() (fb.Display, func() error, bool, error) {
	if g.cfg.Screen == "" {
		return nil, nil, false, nil
	}
	path := g.screenWhere()
	d, err := fb.OpenWith(path, fb.Options{Console: g.cfg.Console, Log: g.cfg.Log})
	switch {
	case err == nil:
		g.cfg.Log.Info("screen open", "info", fmt.Sprintf("%+v", d.Info()))
		return d, d.Close, true, nil
	case errors.Is(err, device.ErrAbsent) && g.cfg.Screen == ScreenAuto:
		return nil, nil, false, nil
	}
	return nil, nil, true, fmt.Errorf("board: screen %s: %w", path, err)
}

func (g *gpioBoard) screenWhere() string {
	if g.cfg.Screen == ScreenAuto {
		return fb.DefaultPath
	}
	return g.cfg.Screen
}

func (g *gpioBoard) watchdog() (*device.Watchdog, bool, error) {
	if g.cfg.Watchdog == "" {
		return nil, false, nil
	}
	w, err := device.OpenWatchdog(g.cfg.Watchdog, g.cfg.WatchdogTimeout, g.cfg.Log)
	if err != nil {
		return nil, true, fmt.Errorf("board: watchdog: %w", err)
	}
	return w, true, nil
}

func (g *gpioBoard) microphoneFitted() bool      { return g.cfg.Microphone == sourceALSA }
func (g *gpioBoard) cameraSocket() *synth.Socket { return nil }

func (g *gpioBoard) close() error {
	var errs []error
	if g.btn != nil {
		errs = append(errs, g.btn.Close())
	}
	return errors.Join(append(errs, g.leds.Close())...)
}
