package device

import (
	"errors"
	"fmt"
	"slices"
)

// PinMap says which GPIO lines the button and LEDs are wired to, by the
// names periph's gpioreg knows: gpiochip line names from the device tree or
// gpio-sim ("CALL_BUTTON", "LED_GREEN") or SoC names ("GPIO17"). Boards
// differ only in their PinMap; the image is the same.
type PinMap struct {
	Button          string `json:"button" toml:"button"`
	ButtonActiveLow bool   `json:"button_active_low" toml:"button_active_low"`
	// LEDs maps each fitted LED to its line. A colour that is not listed
	// is an absent LED.
	LEDs map[Color]string `json:"leds" toml:"leds"`
	// LEDActiveLow means LEDs light when their line is driven Low.
	LEDActiveLow bool `json:"led_active_low" toml:"led_active_low"`
}

// DefaultPinMap uses the line names of the reference board's device tree
// (and of the gpio-sim setup used in VM tests): the button pulls its line
// low when pressed.
func DefaultPinMap() PinMap {
	return PinMap{
		Button:          "CALL_BUTTON",
		ButtonActiveLow: true,
		LEDs: map[Color]string{
			Green: "LED_GREEN",
			Red:   "LED_RED",
			Blue:  "LED_BLUE",
		},
	}
}

// Validate reports every problem at once, so a technician fixing a board
// file does not go round the loop once per mistake.
func (pm PinMap) Validate() error {
	var errs []error
	used := map[string]string{} // pin name → what uses it
	claim := func(name, what string) {
		if name == "" {
			errs = append(errs, fmt.Errorf("device: pin map: %s: empty pin name: %w", what, ErrInvalidConfig))
			return
		}
		if other, dup := used[name]; dup {
			errs = append(errs, fmt.Errorf("device: pin map: pin %q used by both %s and %s: %w", name, other, what, ErrInvalidConfig))
			return
		}
		used[name] = what
	}
	claim(pm.Button, "button")
	colors := make([]Color, 0, len(pm.LEDs))
	for c := range pm.LEDs {
		colors = append(colors, c)
	}
	slices.Sort(colors) // deterministic messages
	for _, c := range colors {
		if !c.Valid() {
			errs = append(errs, fmt.Errorf("device: pin map: unknown LED colour %q (want one of %v): %w", c, Colors(), ErrInvalidConfig))
			continue
		}
		claim(pm.LEDs[c], "LED "+string(c))
	}
	return errors.Join(errs...)
}
