package selftest

import (
	"context"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/tuanju/tuanju/device"
)

// Button is the call button as the check needs it: *device.Button.
type Button interface {
	Pressed() bool
	Events() <-chan device.ButtonEvent
}

// ButtonOptions configures ButtonCheck.
type ButtonOptions struct {
	// Open opens the button (so the check owns when the line is
	// requested). An error wrapping device.ErrAbsent reports the button
	// absent; the close function is called when the check ends.
	Open func() (Button, func() error, error)
	// Where describes the line for the detail ("GPIO17 = gpiochip0:17").
	Where string
	// Interactive asks the technician to press and release the button
	// within Wait; otherwise only the idle level is read.
	Interactive bool
	// WhyNot says why the check is not interactive, for the detail: the
	// technician must learn the real reason ("-no-interactive", or a
	// simulated button nobody can press). Empty: "-no-interactive".
	WhyNot string
	Wait   time.Duration
}

// ButtonCheck reads the button's idle level (a button that reads pressed
// with nobody on it is stuck, shorted, or has the wrong active_low/pull)
// and, when interactive, waits for a press and release.
func ButtonCheck(o ButtonOptions) Check {
	if o.Wait <= 0 {
		o.Wait = 15 * time.Second
	}
	timeout := DefaultTimeout
	if o.Interactive {
		timeout = o.Wait + 5*time.Second
	}
	return Check{Name: "button", Timeout: timeout, Run: func(ctx context.Context, t *T) (Status, string) {
		b, closeFn, err := o.Open()
		if err != nil {
			return statusOf(err), err.Error()
		}
		defer closeFn()
		// Let the debouncer settle on the idle level before judging it.
		select {
		case <-ctx.Done():
			return Fail, ctx.Err().Error()
		case <-time.After(2 * device.DefaultDebounce):
		}
		if b.Pressed() {
			return Fail, fmt.Sprintf("%s reads pressed with nobody pressing: stuck or shorted button, or wrong button_active_low/button_pull", o.Where)
		}
		if !o.Interactive {
			why := o.WhyNot
			if why == "" {
				why = "-no-interactive"
			}
			return Skipped, fmt.Sprintf("%s reads released; press test skipped (%s)", o.Where, why)
		}
		t.Say("press and release the call button now (within %s)", o.Wait.Round(time.Second))
		deadline := time.NewTimer(o.Wait)
		defer deadline.Stop()
		sawDown := false
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case ev, ok := <-b.Events():
				if !ok {
					return Fail, "button closed during the check"
				}
				return Pass, fmt.Sprintf("%s: %s seen", o.Where, ev.Kind)
			case <-tick.C:
				if b.Pressed() && !sawDown {
					sawDown = true
					t.Say("pressed; now release it")
				}
			case <-deadline.C:
				if sawDown {
					return Fail, fmt.Sprintf("%s: pressed but never released within %s", o.Where, o.Wait)
				}
				return Fail, fmt.Sprintf("%s: no press within %s: check the wiring to header pin and ground", o.Where, o.Wait)
			case <-ctx.Done():
				return Fail, ctx.Err().Error()
			}
		}
	}}
}

// LEDLine is one LED as the check drives it.
type LEDLine struct {
	Pin       gpio.PinOut
	Where     string
	ActiveLow bool
	// ReadBack returns the level the kernel has on the line, or an error
	// when it cannot tell; nil when there is no way to read back.
	ReadBack func() (gpio.Level, error)
	// Err, when set, is why the LED could not be opened (absent or broken).
	Err error
}

// LEDCheck drives the LED on for hold (so the technician sees it), reads the
// level back where it can, and drives it off again. Without a read-back it
// passes and asks the technician to look.
func LEDCheck(c device.Color, l LEDLine, hold time.Duration) Check {
	return Check{Name: "led " + string(c), Run: func(ctx context.Context, t *T) (Status, string) {
		if l.Err != nil {
			return statusOf(l.Err), l.Err.Error()
		}
		if l.Pin == nil {
			return Absent, "not in the pin map"
		}
		level := func(on bool) gpio.Level { return gpio.Level(on != l.ActiveLow) }
		t.Say("the %s LED should light for %s", c, hold)
		var read []gpio.Level
		var readErr error
		for _, on := range []bool{true, false} {
			if err := l.Pin.Out(level(on)); err != nil {
				return Fail, fmt.Sprintf("%s: drive %v: %v", l.Where, level(on), err)
			}
			if l.ReadBack != nil && readErr == nil {
				got, err := l.ReadBack()
				switch {
				case err != nil:
					readErr = err
				case got != level(on):
					l.Pin.Out(level(false))
					return Fail, fmt.Sprintf("%s: drove %v, the line reads %v", l.Where, level(on), got)
				default:
					read = append(read, got)
				}
			}
			if on {
				select {
				case <-ctx.Done():
					l.Pin.Out(level(false))
					return Fail, ctx.Err().Error()
				case <-time.After(hold):
				}
			}
		}
		if len(read) == 2 {
			return Pass, fmt.Sprintf("%s on/off read back %v/%v; look: was it lit?", l.Where, read[0], read[1])
		}
		why := "no read-back"
		if readErr != nil {
			why += ": " + readErr.Error()
		}
		return Pass, fmt.Sprintf("%s driven on and off (%s); look: was it lit?", l.Where, why)
	}}
}
