//go:build vmtest

package vm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/pins"
	"github.com/tuanju/tuanju/internal/terminal/selftest"
)

// simOffset is the gpio-sim line's offset, from its sysfs directory name.
func simOffset(t *testing.T, name string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(simLine(t, name)), "sim_gpio"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func resolver(t *testing.T) *pins.Resolver {
	t.Helper()
	r, err := pins.Host(nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPinsByOffsetAndName resolves the call button by line name, by chip
// label and offset, and by gpiochip name and offset, through periph's real
// gpioioctl chips: all three must be the same kernel line, and a button
// opened by offset must see the edges gpio-sim makes. The kernel's global
// sysfs number for the same line must be refused.
func TestPinsByOffsetAndName(t *testing.T) {
	off := simOffset(t, "CALL_BUTTON")
	chip := filepath.Base(os.Getenv("TUANJU_GPIOSIM_SYSFS")) // gpiochip0 (amd64) / gpiochip1 (arm64)
	r := resolver(t)
	byName, err := r.Pin("CALL_BUTTON")
	if err != nil {
		t.Fatal(err)
	}
	specs := []string{"tuanju-sim:" + strconv.Itoa(off), chip + ":" + strconv.Itoa(off)}
	for _, s := range specs {
		l, err := r.Pin(s)
		if err != nil {
			t.Fatalf("Pin(%q): %v", s, err)
		}
		if l.PinIO != byName.PinIO || l.Chip != chip || l.Offset != off {
			t.Fatalf("Pin(%q) = %s, by name %s: not the same line", s, l.Where(), byName.Where())
		}
		t.Logf("%s → %s", s, l.Where())
	}
	if _, err := r.Pin("tuanju-sim:99"); !errors.Is(err, device.ErrAbsent) {
		t.Errorf("offset past the chip's lines: %v, want ErrAbsent", err)
	}

	// The sysfs global number of the same line is refused.
	labels, _ := filepath.Glob("/sys/class/gpio/gpiochip*/label")
	for _, lp := range labels {
		if readAttr(t, lp) != "tuanju-sim" {
			continue
		}
		base := readAttr(t, filepath.Join(filepath.Dir(lp), "base"))
		b, _ := strconv.Atoi(base)
		global := "GPIO" + strconv.Itoa(b+off)
		if _, err := r.Pin(global); !errors.Is(err, pins.ErrGlobalNumber) {
			t.Errorf("Pin(%q) (sysfs global number) = %v, want ErrGlobalNumber", global, err)
		} else {
			t.Logf("%s refused: %v", global, err)
		}
	}

	pull := filepath.Join(simLine(t, "CALL_BUTTON"), "pull")
	writeAttr(t, pull, "pull-down")
	l, _ := r.Pin(specs[0])
	b, err := device.NewButton(l, device.ButtonOpts{Pull: gpio.PullNoChange})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range 3 {
		writeAttr(t, pull, "pull-up")
		waitPressed(t, b, true)
		writeAttr(t, pull, "pull-down")
		waitEvent(t, b, device.Press)
		t.Logf("press %d through %s", i+1, l.Where())
	}
}

// TestSelftestGPIOChecks runs the self-test's LED checks on gpio-sim lines
// found by chip:offset, with the read-back from the kernel's debugfs GPIO
// listing, and its button check (non-interactive) on the idle line and on a
// line held "pressed".
func TestSelftestGPIOChecks(t *testing.T) {
	off := simOffset(t, "LED_GREEN")
	if err := os.MkdirAll("/sys/kernel/debug", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("none", "/sys/kernel/debug", "debugfs", 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("mount debugfs: %v", err)
	}
	r := resolver(t)
	l, err := r.Pin("tuanju-sim:" + strconv.Itoa(off))
	if err != nil {
		t.Fatal(err)
	}
	value := filepath.Join(simLine(t, "LED_GREEN"), "value")
	var simValues []string
	line := selftest.LEDLine{Pin: l, Where: l.Where(), ReadBack: func() (gpio.Level, error) {
		simValues = append(simValues, readAttr(t, value)) // gpio-sim's own view, to compare
		out, lvl, err := l.DrivenLevel(pins.DefaultDebugfs)
		if err == nil && !out {
			t.Errorf("debugfs lists %s as an input", l.Where())
		}
		return lvl, err
	}}
	rep := selftest.Run(context.Background(), []selftest.Check{selftest.LEDCheck(device.Green, line, 50*time.Millisecond)}, nil)
	res := rep.Results[0]
	if res.Status != selftest.Pass || !strings.Contains(res.Detail, "read back High/Low") {
		t.Fatalf("LED check: %s %q", res.Status, res.Detail)
	}
	if strings.Join(simValues, ",") != "1,0" {
		t.Errorf("gpio-sim saw %v, want 1,0", simValues)
	}
	t.Logf("led green: %s", res.Detail)

	pull := filepath.Join(simLine(t, "CALL_BUTTON"), "pull")
	btnLine, err := r.Pin("CALL_BUTTON")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pull string
		want selftest.Status
	}{{"pull-down", selftest.Skipped}, {"pull-up", selftest.Fail}} {
		writeAttr(t, pull, tc.pull)
		chk := selftest.ButtonCheck(selftest.ButtonOptions{Where: btnLine.Where(), Open: func() (selftest.Button, func() error, error) {
			b, err := device.NewButton(btnLine, device.ButtonOpts{Pull: gpio.PullNoChange})
			if err != nil {
				return nil, nil, err
			}
			return b, b.Close, nil
		}})
		res := selftest.Run(context.Background(), []selftest.Check{chk}, nil).Results[0]
		if res.Status != tc.want {
			t.Errorf("button with %s: %s %q, want %s", tc.pull, res.Status, res.Detail, tc.want)
		}
		t.Logf("button with %s: %s: %s", tc.pull, res.Status, res.Detail)
	}
	writeAttr(t, pull, "pull-down")
}
