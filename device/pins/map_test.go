package pins_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/pins"
)

func TestPinMapValidate(t *testing.T) {
	tests := []struct {
		name    string
		pm      pins.Map
		wantErr []string // substrings; nil means valid
	}{
		{"default", pins.DefaultMap(), nil},
		{"button only, no LEDs fitted", pins.Map{Button: "GPIO17"}, nil},
		{"no button", pins.Map{LEDs: map[device.Color]string{device.Green: "GPIO22"}}, []string{"button: empty pin name"}},
		{"unknown colour", pins.Map{Button: "GPIO17", LEDs: map[device.Color]string{"purple": "GPIO22"}}, []string{`unknown LED colour "purple"`}},
		{"pin used twice", pins.Map{Button: "GPIO17", LEDs: map[device.Color]string{device.Red: "GPIO17"}}, []string{`pin "GPIO17" used by both button and LED red`}},
		{"chip and offset", pins.Map{Button: "gpiochip0:226", LEDs: map[device.Color]string{device.Green: "300b000.pinctrl:227"}}, nil},
		{"same offset twice", pins.Map{Button: "gpiochip0:226", LEDs: map[device.Color]string{device.Green: " gpiochip0:226"}}, []string{`pin "gpiochip0:226" used by both button and LED green`}},
		{"bad offset", pins.Map{Button: "gpiochip0:-2"}, []string{"button", "line number from 0"}},
		{"pull up", pins.Map{Button: "GPIO17", ButtonPull: "up"}, nil},
		{"bad pull", pins.Map{Button: "GPIO17", ButtonPull: "high"}, []string{`button_pull "high"`}},
		{"every problem at once", pins.Map{LEDs: map[device.Color]string{device.Blue: "", "pink": "X"}},
			[]string{"button: empty pin name", "LED blue: empty pin name", `unknown LED colour "pink"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.pm.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, device.ErrInvalidConfig) {
				t.Fatalf("Validate: %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
