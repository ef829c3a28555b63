//go:build vmtest

package vm_test

import (
	"path/filepath"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/terminal/call"
)

// waitLine polls a gpio-sim line's value until it reads want.
func waitLine(b *testing.B, path, want string) {
	deadline := time.Now().Add(5 * time.Second)
	for readAttr(b, path) != want {
		if time.Now().After(deadline) {
			b.Fatalf("%s never read %s", path, want)
		}
	}
}

// BenchmarkButtonToCallingLED: the child's press (the release of a short
// press, as device.Button reports it) → the call machine → the "calling"
// light, as the kernel sees the LED line, on real periph code over gpio-sim.
// The reference in the same run is the raw kernel path: a pull change
// reaching periph's WaitForEdge on the same line. ms/press-to-light includes
// the button's 30 ms debounce, which is there on purpose.
func BenchmarkButtonToCallingLED(b *testing.B) {
	if testing.Short() {
		b.Skip("short")
	}
	vmOnly(b)
	pull := filepath.Join(simLine(b, "CALL_BUTTON"), "pull")
	green := filepath.Join(simLine(b, "LED_GREEN"), "value")
	writeAttr(b, pull, "pull-down")
	btnPin := pin(b, "CALL_BUTTON")

	// Reference: raw edges.
	if err := btnPin.In(gpio.PullNoChange, gpio.BothEdges); err != nil {
		b.Fatal(err)
	}
	var raw time.Duration
	const rawN = 20
	for i := range rawN {
		level := "pull-up"
		if i%2 == 1 {
			level = "pull-down"
		}
		t0 := time.Now()
		writeAttr(b, pull, level)
		if !btnPin.WaitForEdge(5 * time.Second) {
			b.Fatal("no edge")
		}
		raw += time.Since(t0)
	}
	writeAttr(b, pull, "pull-down")
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < 10 && btnPin.WaitForEdge(10*time.Millisecond); i++ { // drain stale edges
	}

	btn, err := device.NewButton(btnPin, device.ButtonOpts{Pull: gpio.PullNoChange})
	if err != nil {
		b.Fatal(err)
	}
	defer btn.Close()
	leds, err := device.NewLEDs(map[device.Color]gpio.PinOut{
		device.Green: pin(b, "LED_GREEN"), device.Red: pin(b, "LED_RED"), device.Blue: pin(b, "LED_BLUE"),
	}, device.LEDOpts{})
	if err != nil {
		b.Fatal(err)
	}
	defer leds.Close()
	idle := call.Machine{State: call.Idle, Online: true, Paired: true}
	// The terminal's loop, reduced to the press: event → machine → lights.
	go func() {
		for ev := range btn.Events() {
			if ev.Kind == device.Press {
				m, _ := call.Next(idle, call.Press{NewCallID: "bench"})
				leds.Show(m.State.Pattern())
			}
		}
	}()

	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		leds.Show(idle.State.Pattern())
		waitLine(b, green, "1")
		writeAttr(b, pull, "pull-up")
		deadline := time.Now().Add(5 * time.Second)
		for !btn.Pressed() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
		t0 := time.Now()
		writeAttr(b, pull, "pull-down")
		waitLine(b, green, "0") // calling's blink starts dark after ready's green
		total += time.Since(t0)
	}
	b.StopTimer()
	perPress := total / time.Duration(b.N)
	perEdge := raw / rawN
	b.ReportMetric(float64(perPress.Microseconds())/1000, "ms/press-to-light")
	b.ReportMetric(float64(perEdge.Microseconds())/1000, "ms/raw-edge")
	b.ReportMetric(float64(perPress)/float64(perEdge), "x-raw-edge")
}
