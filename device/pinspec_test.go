package device_test

import (
	"errors"
	"testing"

	"github.com/tuanju/tuanju/device"
)

func TestParsePinSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    device.PinSpec
		wantErr bool
	}{
		{"CALL_BUTTON", device.PinSpec{Name: "CALL_BUTTON"}, false},
		{" GPIO17 ", device.PinSpec{Name: "GPIO17"}, false},
		{"gpiochip0:17", device.PinSpec{Chip: "gpiochip0", Offset: 17}, false},
		{"300b000.pinctrl:226", device.PinSpec{Chip: "300b000.pinctrl", Offset: 226}, false},
		{"tuanju-sim:0", device.PinSpec{Chip: "tuanju-sim", Offset: 0}, false},
		// A colon followed by something that is not a number is part of a name.
		{"P1:LED", device.PinSpec{Name: "P1:LED"}, false},
		{"gpiochip0-GPIO17", device.PinSpec{Name: "gpiochip0-GPIO17"}, false},
		{"", device.PinSpec{}, true},
		{":17", device.PinSpec{}, true},
		{"gpiochip0:-1", device.PinSpec{}, true},
		{"gpiochip0:+3", device.PinSpec{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := device.ParsePinSpec(tt.in)
			if tt.wantErr {
				if !errors.Is(err, device.ErrInvalidConfig) {
					t.Fatalf("ParsePinSpec(%q) = %+v, %v; want ErrInvalidConfig", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePinSpec(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			again, err := device.ParsePinSpec(got.String())
			if err != nil || again != got {
				t.Errorf("round trip through %q gave %+v, %v", got.String(), again, err)
			}
		})
	}
}
