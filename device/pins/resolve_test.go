package pins_test

import (
	"errors"
	"strings"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/pins"
)

type fakeChip struct {
	name, label string
	lines       []*gpiotest.Pin
}

func newChip(name, label string, names ...string) *fakeChip {
	c := &fakeChip{name: name, label: label}
	for _, n := range names {
		c.lines = append(c.lines, &gpiotest.Pin{N: n})
	}
	return c
}

func (c *fakeChip) Name() string          { return c.name }
func (c *fakeChip) Label() string         { return c.label }
func (c *fakeChip) LineCount() int        { return len(c.lines) }
func (c *fakeChip) LineName(o int) string { return c.lines[o].N }
func (c *fakeChip) Line(o int) gpio.PinIO { return c.lines[o] }

// A board like the VM's: gpio-sim with named lines after an unnamed
// controller, plus a second chip that repeats one name.
func resolver() (*pins.Resolver, *fakeChip, *fakeChip) {
	pl061 := newChip("gpiochip0", "gpiochip0", "", "", "", "")
	sim := newChip("gpiochip1", "tuanju-sim", "CALL_BUTTON", "LED_GREEN", "LED_RED", "LED_BLUE")
	other := newChip("gpiochip2", "tuanju-sim", "LED_BLUE")
	soc := &gpiotest.Pin{N: "PC7"}
	return &pins.Resolver{
		Chips: []pins.Chip{pl061, sim, other},
		ByName: func(n string) gpio.PinIO {
			if n == "PC7" {
				return soc
			}
			return nil
		},
	}, pl061, sim
}

func TestResolve(t *testing.T) {
	r, pl061, sim := resolver()
	tests := []struct {
		spec      string
		want      gpio.PinIO
		wantWhere string
		wantName  string
		wantErr   error
		errText   string
	}{
		{"CALL_BUTTON", sim.lines[0], "CALL_BUTTON = gpiochip1:0 (tuanju-sim)", "CALL_BUTTON", nil, ""},
		{"gpiochip1:0", sim.lines[0], "gpiochip1:0 (tuanju-sim)", "CALL_BUTTON", nil, ""},
		{"gpiochip0:3", pl061.lines[3], "gpiochip0:3", "gpiochip0:3", nil, ""},
		{"PC7", nil, "PC7 (periph PC7(0))", "PC7", nil, ""},
		{"tuanju-sim:1", nil, "", "", pins.ErrAmbiguous, "gpiochip1, gpiochip2"},
		{"LED_BLUE", nil, "", "", pins.ErrAmbiguous, "gpiochip1:3 and gpiochip2:0"},
		{"gpiochip1:4", nil, "", "", device.ErrAbsent, "has lines 0-3"},
		{"pinctrl-bcm2835:17", nil, "", "", device.ErrAbsent, `gpiochip1 "tuanju-sim" 4 lines`},
		{"GPIO17", nil, "", "", device.ErrAbsent, "no line has that name"},
		{"gpiochip0:-1", nil, "", "", device.ErrInvalidConfig, "line number"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			l, err := r.Pin(tt.spec)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Pin(%q) = %v, %v; want %v mentioning %q", tt.spec, l, err, tt.wantErr, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Pin(%q): %v", tt.spec, err)
			}
			if tt.want != nil && l.PinIO != tt.want {
				t.Errorf("Pin(%q) = %v, want %v", tt.spec, l.PinIO, tt.want)
			}
			if got := l.Where(); got != tt.wantWhere {
				t.Errorf("Where() = %q, want %q", got, tt.wantWhere)
			}
			if got := l.Name(); got != tt.wantName {
				t.Errorf("Name() = %q, want %q", got, tt.wantName)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	r, _, sim := resolver()
	lines, err := r.Open(pins.Map{Button: "gpiochip1:0", LEDs: map[device.Color]string{device.Green: "LED_GREEN", device.Red: "tuanju-sim:2"}})
	if err == nil {
		t.Fatalf("label tuanju-sim is on two chips: want ErrAmbiguous, got %+v", lines)
	}
	lines, err = r.Open(pins.Map{Button: "gpiochip1:0", LEDs: map[device.Color]string{device.Green: "LED_GREEN", device.Red: "gpiochip1:2"}})
	if err != nil {
		t.Fatal(err)
	}
	if lines.Button.PinIO != sim.lines[0] || lines.LEDs[device.Green].PinIO != sim.lines[1] || lines.LEDs[device.Red].PinIO != sim.lines[2] {
		t.Errorf("Open resolved %+v", lines)
	}
	// Every problem at once, including one line reached by two specs.
	_, err = r.Open(pins.Map{Button: "CALL_BUTTON", LEDs: map[device.Color]string{device.Green: "gpiochip1:0", device.Red: "NOPE", device.Blue: "gpiochip9:0"}})
	for _, want := range []string{"button and LED green are both gpiochip1:0", "LED red", "NOPE", "gpiochip9"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open error %v does not mention %q", err, want)
		}
	}
	if !errors.Is(err, device.ErrAbsent) {
		t.Errorf("missing pins should wrap device.ErrAbsent: %v", err)
	}
}

// TestOpenKeepsWhatResolved: with some pins missing, Open still returns the
// lines that resolved and says, per pin, why each other did not: the
// self-test reports every pin on its own.
func TestOpenKeepsWhatResolved(t *testing.T) {
	r, _, sim := resolver()
	lines, err := r.Open(pins.Map{Button: "CALL_BUTTON", LEDs: map[device.Color]string{device.Green: "LED_GREEN", device.Red: "NOPE", device.Blue: "gpiochip1:0"}})
	if !errors.Is(err, device.ErrAbsent) {
		t.Fatalf("err = %v, want device.ErrAbsent for NOPE", err)
	}
	if lines.Button == nil || lines.Button.PinIO != sim.lines[0] || lines.ButtonErr != nil {
		t.Errorf("button = %+v, %v; want gpiochip1:0 resolved", lines.Button, lines.ButtonErr)
	}
	if l := lines.LEDs[device.Green]; l == nil || l.PinIO != sim.lines[1] {
		t.Errorf("green = %+v, want LED_GREEN resolved", l)
	}
	if _, ok := lines.LEDs[device.Red]; ok || !errors.Is(lines.LEDErrs[device.Red], device.ErrAbsent) {
		t.Errorf("red = %v, want no line and ErrAbsent", lines.LEDErrs[device.Red])
	}
	if _, ok := lines.LEDs[device.Blue]; ok || !errors.Is(lines.LEDErrs[device.Blue], device.ErrInvalidConfig) {
		t.Errorf("blue (the button's line again) = %v, want no line and ErrInvalidConfig", lines.LEDErrs[device.Blue])
	}
}

func TestDrivenLevel(t *testing.T) {
	tests := []struct {
		file      string
		chip      string
		off       int
		wantOut   bool
		wantLevel gpio.Level
		wantErr   string
	}{
		{"testdata/debugfs-gpio-6.1", "gpiochip0", 27, true, gpio.High, ""},
		{"testdata/debugfs-gpio-6.1", "gpiochip0", 22, true, gpio.Low, ""},
		{"testdata/debugfs-gpio-6.1", "gpiochip0", 17, false, gpio.High, ""},
		{"testdata/debugfs-gpio-6.1", "gpiochip1", 0, true, gpio.Low, ""},
		{"testdata/debugfs-gpio-6.1", "gpiochip1", 1, false, gpio.Low, "not listed"}, // not requested
		{"testdata/debugfs-gpio-relative", "gpiochip1", 2, true, gpio.High, ""},
		{"testdata/debugfs-gpio-relative", "gpiochip1", 1, true, gpio.Low, ""},
		{"testdata/missing", "gpiochip1", 1, false, gpio.Low, "no such file"},
	}
	for _, tt := range tests {
		l := &pins.Line{Spec: pins.Spec{Chip: tt.chip, Offset: tt.off}, Chip: tt.chip, Offset: tt.off}
		out, lvl, err := l.DrivenLevel(tt.file)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %s:%d: err %v, want %q", tt.file, tt.chip, tt.off, err, tt.wantErr)
			}
			continue
		}
		if err != nil || out != tt.wantOut || lvl != tt.wantLevel {
			t.Errorf("%s %s:%d = %v %v %v, want %v %v", tt.file, tt.chip, tt.off, out, lvl, err, tt.wantOut, tt.wantLevel)
		}
	}
}
