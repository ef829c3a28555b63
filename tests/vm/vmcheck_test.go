//go:build vmtest

// Package vm_test holds kernel-in-the-loop tests: they run inside the qemu VM
// that tests/vm/run boots, against the real kernel's gpio-sim driver through
// periph's real GPIO character-device code path. Outside the VM they skip.
package vm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"

	"github.com/tuanju/tuanju/device"
)

// eventTimeout is generous on purpose: under TCG on a busy host an edge can
// take tens of milliseconds; these tests assert that things happen, not how
// fast (benchmarks measure that).
const eventTimeout = 5 * time.Second

// simLine returns the sysfs directory of gpio-sim line name, as set up by the
// VM's /init (TUANJU_GPIOSIM_SYSFS and TUANJU_GPIOSIM_LINES). It skips the
// test outside the VM.
func simLine(t testing.TB, name string) string {
	t.Helper()
	if os.Getenv("TUANJU_VM") != "1" {
		t.Skip("kernel-in-the-loop test: runs only inside the VM (tests/vm/run -g)")
	}
	dir := os.Getenv("TUANJU_GPIOSIM_SYSFS")
	if dir == "" {
		t.Fatal("TUANJU_GPIOSIM_SYSFS not set: was the VM started with -g (gpio-sim)?")
	}
	for _, kv := range strings.Fields(os.Getenv("TUANJU_GPIOSIM_LINES")) {
		if n, off, ok := strings.Cut(kv, "="); ok && n == name {
			return filepath.Join(dir, "sim_gpio"+off)
		}
	}
	t.Fatalf("gpio-sim has no line %q (lines: %q)", name, os.Getenv("TUANJU_GPIOSIM_LINES"))
	return ""
}

func writeAttr(t testing.TB, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func readAttr(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return strings.TrimSpace(string(b))
}

// pin initialises periph's host drivers and finds a line by its name, the way
// cmd/terminald's board code does.
func pin(t testing.TB, name string) gpio.PinIO {
	t.Helper()
	state, err := host.Init()
	if err != nil {
		t.Fatalf("host.Init: %v", err)
	}
	for _, f := range state.Failed {
		t.Logf("periph driver %s failed: %v", f.D, f.Err)
	}
	p := gpioreg.ByName(name)
	if p == nil {
		t.Fatalf("gpioreg.ByName(%q) = nil: periph did not register the gpio-sim line", name)
	}
	return p
}

func waitEvent(t *testing.T, b *device.Button, want device.ButtonKind) {
	t.Helper()
	select {
	case ev, ok := <-b.Events():
		if !ok {
			t.Fatal("button events closed")
		}
		if ev.Kind != want {
			t.Fatalf("button event = %v, want %v", ev.Kind, want)
		}
	case <-time.After(eventTimeout):
		t.Fatalf("no %v event within %v", want, eventTimeout)
	}
}

func waitPressed(t *testing.T, b *device.Button, want bool) {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for b.Pressed() != want {
		if time.Now().After(deadline) {
			t.Fatalf("button Pressed() did not become %v within %v", want, eventTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestButtonThroughKernel drives the simulated call button by changing the
// gpio-sim line's pull, as a real contact would change the level, and checks
// that device.Button turns the kernel's edges into gestures.
func TestButtonThroughKernel(t *testing.T) {
	pull := filepath.Join(simLine(t, "CALL_BUTTON"), "pull")
	writeAttr(t, pull, "pull-down") // released (active-high wiring)
	p := pin(t, "CALL_BUTTON")

	// PullNoChange: any other pull would make gpio-sim override ours.
	b, err := device.NewButton(p, device.ButtonOpts{Pull: gpio.PullNoChange})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Pressed() {
		t.Fatal("button pressed at start with the line pulled down")
	}

	const presses = 5
	for i := range presses {
		writeAttr(t, pull, "pull-up")
		waitPressed(t, b, true)
		writeAttr(t, pull, "pull-down")
		waitEvent(t, b, device.Press)
		t.Logf("press %d/%d delivered", i+1, presses)
	}

	// A hold reaches LongPress without a release, and the release after it
	// is a Release, not a Press.
	writeAttr(t, pull, "pull-up")
	waitEvent(t, b, device.LongPress)
	writeAttr(t, pull, "pull-down")
	waitPressed(t, b, false)
	waitEvent(t, b, device.Release)
	select {
	case ev := <-b.Events():
		t.Fatalf("unexpected %v after a long press was released", ev.Kind)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestLEDsThroughKernel shows patterns and reads back, through gpio-sim's
// value attribute, what the kernel's GPIO lines were driven to.
func TestLEDsThroughKernel(t *testing.T) {
	lines := map[device.Color]string{
		device.Green: simLine(t, "LED_GREEN"),
		device.Red:   simLine(t, "LED_RED"),
		device.Blue:  simLine(t, "LED_BLUE"),
	}
	pins := map[device.Color]gpio.PinOut{
		device.Green: pin(t, "LED_GREEN"),
		device.Red:   pin(t, "LED_RED"),
		device.Blue:  pin(t, "LED_BLUE"),
	}
	leds, err := device.NewLEDs(pins, device.LEDOpts{})
	if err != nil {
		t.Fatal(err)
	}
	defer leds.Close()

	check := func(when string, want map[device.Color]string) {
		t.Helper()
		for _, c := range device.Colors() {
			if got := readAttr(t, filepath.Join(lines[c], "value")); got != want[c] {
				t.Errorf("%s: LED %s line value = %s, want %s", when, c, got, want[c])
			}
		}
	}
	check("after NewLEDs", map[device.Color]string{device.Green: "0", device.Red: "0", device.Blue: "0"})

	if err := leds.Show(device.Ready); err != nil {
		t.Fatal(err)
	}
	check("ready", map[device.Color]string{device.Green: "1", device.Red: "0", device.Blue: "0"})

	if err := leds.Show(device.Offline); err != nil {
		t.Fatal(err)
	}
	// Offline breathes red by software PWM: over 3 s (one breath) the line
	// is driven both ways many times, far more than any blink would.
	{
		red := filepath.Join(lines[device.Red], "value")
		changes, last, ons, n := 0, "", 0, 0
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(3 * time.Millisecond) {
			v := readAttr(t, red)
			if last != "" && v != last {
				changes++
			}
			if v == "1" {
				ons++
			}
			last, n = v, n+1
			for _, c := range []device.Color{device.Green, device.Blue} {
				if readAttr(t, filepath.Join(lines[c], "value")) != "0" {
					t.Fatalf("offline: LED %s lit", c)
				}
			}
		}
		t.Logf("offline: red changed %d times in 3 s, lit in %d of %d samples", changes, ons, n)
		if changes < 30 || ons == 0 || ons == n {
			t.Errorf("offline red: %d changes, lit %d/%d samples: not breathing", changes, ons, n)
		}
	}

	// Calling blinks green at 1 Hz: over 2.5 s the line must be seen both lit
	// and dark, and red and blue never lit.
	if err := leds.Show(device.Calling); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		seen[readAttr(t, filepath.Join(lines[device.Green], "value"))] = true
		for _, c := range []device.Color{device.Red, device.Blue} {
			if v := readAttr(t, filepath.Join(lines[c], "value")); v != "0" {
				t.Fatalf("calling: LED %s lit", c)
			}
		}
	}
	if !seen["0"] || !seen["1"] {
		t.Errorf("calling: green line values seen %v, want both 0 and 1 (blinking)", seen)
	}

	if err := leds.Close(); err != nil {
		t.Fatal(err)
	}
	check("after Close", map[device.Color]string{device.Green: "0", device.Red: "0", device.Blue: "0"})
}
