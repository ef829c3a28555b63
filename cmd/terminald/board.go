package main

import (
	"errors"
	"fmt"
	"log/slog"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"

	"github.com/tuanju/tuanju/device"
)

// openGPIOBoard opens the real button and LEDs named by pm. It is the only
// place in the terminal that initialises periph's host drivers and looks
// pins up by name; everything below it takes plain gpio pins.
//
// Every pin named in pm must exist: a pin map that names a missing line is
// a wrong board file, and the error lists all missing pins (each wrapping
// device.ErrAbsent) so the technician fixes them in one go. An LED left out
// of pm is simply not fitted.
func openGPIOBoard(pm device.PinMap, log *slog.Logger) (*device.Button, *device.LEDs, error) {
	if err := pm.Validate(); err != nil {
		return nil, nil, fmt.Errorf("terminald: gpio board: %w", err)
	}
	state, err := host.Init()
	if err != nil {
		return nil, nil, fmt.Errorf("terminald: gpio board: periph host init: %w", err)
	}
	for _, f := range state.Failed {
		log.Warn("periph driver failed", "driver", f.D.String(), "err", f.Err)
	}

	var missing []error
	btnPin := gpioreg.ByName(pm.Button)
	if btnPin == nil {
		missing = append(missing, fmt.Errorf("terminald: button pin %q: %w", pm.Button, device.ErrAbsent))
	}
	ledPins := make(map[device.Color]gpio.PinOut, len(pm.LEDs))
	for _, c := range device.Colors() {
		name, fitted := pm.LEDs[c]
		if !fitted {
			log.Info("LED not in pin map, treated as not fitted", "color", c)
			continue
		}
		p := gpioreg.ByName(name)
		if p == nil {
			missing = append(missing, fmt.Errorf("terminald: LED %s pin %q: %w", c, name, device.ErrAbsent))
			continue
		}
		ledPins[c] = p
	}
	if len(missing) > 0 {
		return nil, nil, errors.Join(missing...)
	}

	btn, err := device.NewButton(btnPin, device.ButtonOpts{ActiveLow: pm.ButtonActiveLow, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("terminald: gpio board: %w", err)
	}
	leds, err := device.NewLEDs(ledPins, device.LEDOpts{ActiveLow: pm.LEDActiveLow, Logger: log})
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("terminald: gpio board: %w", err), btn.Close())
	}
	log.Info("gpio board open", "button", pm.Button, "leds", pm.LEDs)
	return btn, leds, nil
}
