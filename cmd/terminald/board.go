package main

import (
	"errors"
	"fmt"
	"log/slog"

	"periph.io/x/conn/v3/gpio"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/gpiolines"
)

// openGPIOBoard opens the real button and LEDs named by pm. Pins are found by
// internal/gpiolines (line names or chip:offset, see device.PinSpec), the
// only code besides this file that initialises periph's host drivers;
// everything below it takes plain gpio pins.
//
// Every pin named in pm must exist: a pin map that names a missing line is
// a wrong board file, and the error lists all missing pins (each wrapping
// device.ErrAbsent) so the technician fixes them in one go. An LED left out
// of pm is simply not fitted.
func openGPIOBoard(pm device.PinMap, log *slog.Logger) (*device.Button, *device.LEDs, error) {
	pins, err := openPins(pm, log)
	if err != nil {
		return nil, nil, err
	}
	pull, _ := pm.Pull() // validated by openPins
	btn, err := device.NewButton(pins.Button, device.ButtonOpts{ActiveLow: pm.ButtonActiveLow, Pull: pull, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("terminald: gpio board: %w", err)
	}
	leds, err := device.NewLEDs(ledPins(pins), device.LEDOpts{ActiveLow: pm.LEDActiveLow, Logger: log})
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("terminald: gpio board: %w", err), btn.Close())
	}
	log.Info("gpio board open", "button", pins.Button.Where(), "leds", pm.LEDs)
	return btn, leds, nil
}

// openPins resolves pm's pins on the running kernel.
func openPins(pm device.PinMap, log *slog.Logger) (gpiolines.Pins, error) {
	r, err := gpiolines.Host(log)
	if err != nil {
		return gpiolines.Pins{}, fmt.Errorf("terminald: gpio board: %w", err)
	}
	pins, err := r.Open(pm)
	if err != nil {
		return gpiolines.Pins{}, fmt.Errorf("terminald: gpio board: %w", err)
	}
	for _, c := range device.Colors() {
		if _, fitted := pm.LEDs[c]; !fitted {
			log.Info("LED not in pin map, treated as not fitted", "color", c)
		}
	}
	return pins, nil
}

func ledPins(p gpiolines.Pins) map[device.Color]gpio.PinOut {
	out := make(map[device.Color]gpio.PinOut, len(p.LEDs))
	for c, l := range p.LEDs {
		out[c] = l
	}
	return out
}
