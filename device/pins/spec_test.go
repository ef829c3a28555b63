package pins_test

import (
	"errors"
	"testing"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/pins"
)

func TestParsePinSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    pins.Spec
		wantErr bool
	}{
		{"CALL_BUTTON", pins.Spec{Name: "CALL_BUTTON"}, false},
		{" GPIO17 ", pins.Spec{Name: "GPIO17"}, false},
		{"gpiochip0:17", pins.Spec{Chip: "gpiochip0", Offset: 17}, false},
		{"300b000.pinctrl:226", pins.Spec{Chip: "300b000.pinctrl", Offset: 226}, false},
		{"tuanju-sim:0", pins.Spec{Chip: "tuanju-sim", Offset: 0}, false},
		// A colon followed by something that is not a number is part of a name.
		{"P1:LED", pins.Spec{Name: "P1:LED"}, false},
		{"gpiochip0-GPIO17", pins.Spec{Name: "gpiochip0-GPIO17"}, false},
		{"", pins.Spec{}, true},
		{":17", pins.Spec{}, true},
		{"gpiochip0:-1", pins.Spec{}, true},
		{"gpiochip0:+3", pins.Spec{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := pins.ParseSpec(tt.in)
			if tt.wantErr {
				if !errors.Is(err, device.ErrInvalidConfig) {
					t.Fatalf("ParsePinSpec(%q) = %+v, %v; want ErrInvalidConfig", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePinSpec(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			again, err := pins.ParseSpec(got.String())
			if err != nil || again != got {
				t.Errorf("round trip through %q gave %+v, %v", got.String(), again, err)
			}
		})
	}
}
