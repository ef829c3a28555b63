package main

import (
	"errors"
	"fmt"
	"log/slog"

	"periph.io/x/conn/v3/gpio"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/pins"
)

// openGPIOBoard opens the real button and LEDs named by pm. Pins are found by
// device/pins (line names or chip:offset, see pins.Spec), the
// only code besides this file that initialises periph's host drivers;
// everything below it takes plain gpio pins.
//
// Every pin named in pm must exist: a pin map that names a missing line is
// a wrong board file, and the error lists all missing pins (each wrapping
// device.ErrAbsent) so the technician fixes them in one go. An LED left out
// of pm is simply not fitted.
func openGPIOBoard(pm pins.Map, log *slog.Logger) (*device.Button, *device.LEDs, error) {
	lines, err := openPins(pm, log)
	if err != nil {
		return nil, nil, err
	}
	pull, _ := pm.Pull() // validated by openPins
	btn, err := device.NewButton(lines.Button, device.ButtonOpts{ActiveLow: pm.ButtonActiveLow, Pull: pull, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("terminald: gpio board: %w", err)
	}
	leds, err := device.NewLEDs(ledPins(lines), device.LEDOpts{ActiveLow: pm.LEDActiveLow, Logger: log})
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("terminald: gpio board: %w", err), btn.Close())
	}
	log.Info("gpio board open", "button", lines.Button.Where(), "leds", pm.LEDs)
	return btn, leds, nil
}

// openPins resolves pm's pins on the running kernel.
func openPins(pm pins.Map, log *slog.Logger) (pins.Lines, error) {
	r, err := pins.Host(log)
	if err != nil {
		return pins.Lines{}, fmt.Errorf("terminald: gpio board: %w", err)
	}
	lines, err := r.Open(pm)
	if err != nil {
		return pins.Lines{}, fmt.Errorf("terminald: gpio board: %w", err)
	}
	for _, c := range device.Colors() {
		if _, fitted := pm.LEDs[c]; !fitted {
			log.Info("LED not in pin map, treated as not fitted", "color", c)
		}
	}
	return lines, nil
}

func ledPins(p pins.Lines) map[device.Color]gpio.PinOut {
	out := make(map[device.Color]gpio.PinOut, len(p.LEDs))
	for c, l := range p.LEDs {
		out[c] = l
	}
	return out
}
