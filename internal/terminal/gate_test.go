package terminal

import (
	"testing"

	"github.com/tuanju/tuanju/device"
)

// TestCallLight: the gate's light for a call is on only while the LEDs show
// "in call" for that very call. (That the terminal cannot open camera or
// microphone any other way than through media.Gate is the compiler's and
// media's TestOnlyMediaReachesDrivers' to keep; tests/e2e TestNeverSilent
// checks the order in real calls.)
func TestCallLight(t *testing.T) {
	tests := []struct {
		name    string
		pattern device.Pattern
		shownID string
		askID   string
		on      bool
	}{
		{"in call, this call", device.InCall, "c1", "c1", true},
		{"in call, another call", device.InCall, "c1", "c2", false},
		{"ready", device.Ready, "", "c1", false},
		{"connecting shown for an ended call", device.InCall, "", "c1", false},
		{"lights failed", "", "", "c1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := lights{pattern: tt.pattern, callID: tt.shownID}
			err := callLight{func() lights { return l }, tt.askID}.InCall()
			if (err == nil) != tt.on {
				t.Fatalf("InCall() = %v, want on=%v", err, tt.on)
			}
		})
	}
}
