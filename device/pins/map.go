package pins

import (
	"errors"
	"fmt"
	"slices"

	"periph.io/x/conn/v3/gpio"

	"github.com/tuanju/tuanju/device"
)

// Map says which GPIO lines the button and LEDs are wired to. Each pin is
// a Spec: a line name from the device tree or gpio-sim ("CALL_BUTTON",
// "GPIO17") or a chip and offset ("gpiochip0:226", "300b000.pinctrl:226").
// Boards differ only in their Map (see device/board for the shipped
// ones); the image is the same.
type Map struct {
	Button          string `json:"button" toml:"button"`
	ButtonActiveLow bool   `json:"button_active_low" toml:"button_active_low"`
	// ButtonPull is the bias the terminal asks the SoC for on the button's
	// line: "up" (button to ground, active low, no resistor on the board),
	// "down", "off", or "" to keep what the device tree or an external
	// resistor set. Most SoCs reset header pins to a pull that does not
	// suit a button to ground (the Pi's GPIO17 resets pulled down), so
	// board profiles say "up".
	ButtonPull string `json:"button_pull,omitempty" toml:"button_pull"`
	// LEDs maps each fitted LED to its line. A colour that is not listed
	// is an absent LED.
	LEDs map[device.Color]string `json:"leds" toml:"leds"`
	// LEDActiveLow means LEDs light when their line is driven Low.
	LEDActiveLow bool `json:"led_active_low" toml:"led_active_low"`
}

// DefaultMap uses the line names of the reference board's device tree
// (and of the gpio-sim setup used in VM tests): the button pulls its line
// low when pressed.
func DefaultMap() Map {
	return Map{
		Button:          "CALL_BUTTON",
		ButtonActiveLow: true,
		LEDs: map[device.Color]string{
			device.Green: "LED_GREEN",
			device.Red:   "LED_RED",
			device.Blue:  "LED_BLUE",
		},
	}
}

// Validate reports every problem at once, so a technician fixing a board
// file does not go round the loop once per mistake.
func (pm Map) Validate() error {
	var errs []error
	used := map[string]string{} // pin name → what uses it
	claim := func(name, what string) {
		if name == "" {
			errs = append(errs, fmt.Errorf("pins: map: %s: empty pin name: %w", what, device.ErrInvalidConfig))
			return
		}
		spec, err := ParseSpec(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("pins: map: %s: %w", what, err))
			return
		}
		key := spec.String() // " GPIO17" and "GPIO17" are the same pin
		if other, dup := used[key]; dup {
			errs = append(errs, fmt.Errorf("pins: map: pin %q used by both %s and %s: %w", key, other, what, device.ErrInvalidConfig))
			return
		}
		used[key] = what
	}
	claim(pm.Button, "button")
	if _, err := pm.Pull(); err != nil {
		errs = append(errs, err)
	}
	colors := make([]device.Color, 0, len(pm.LEDs))
	for c := range pm.LEDs {
		colors = append(colors, c)
	}
	slices.Sort(colors) // deterministic messages
	for _, c := range colors {
		if !c.Valid() {
			errs = append(errs, fmt.Errorf("pins: map: unknown LED colour %q (want one of %v): %w", c, device.Colors(), device.ErrInvalidConfig))
			continue
		}
		claim(pm.LEDs[c], "LED "+string(c))
	}
	return errors.Join(errs...)
}

// Pull returns ButtonPull as periph's gpio.Pull.
func (pm Map) Pull() (gpio.Pull, error) {
	switch pm.ButtonPull {
	case "":
		return gpio.PullNoChange, nil
	case "up":
		return gpio.PullUp, nil
	case "down":
		return gpio.PullDown, nil
	case "off":
		return gpio.Float, nil
	}
	return gpio.PullNoChange, fmt.Errorf("pins: map: button_pull %q must be up, down, off or empty: %w", pm.ButtonPull, device.ErrInvalidConfig)
}
