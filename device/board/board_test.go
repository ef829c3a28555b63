package board_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/board"
	"github.com/tuanju/tuanju/device/devicetest"
	"github.com/tuanju/tuanju/device/pins"
)

// chip is a gpio-sim like chip: the button and three LEDs by name.
type chip struct{ lines []gpio.PinIO }

func (c chip) Name() string          { return "gpiochip1" }
func (c chip) Label() string         { return "tuanju-sim" }
func (c chip) LineCount() int        { return len(c.lines) }
func (c chip) LineName(o int) string { return c.lines[o].Name() }
func (c chip) Line(o int) gpio.PinIO { return c.lines[o] }

func gpioConfig(t *testing.T) board.Config {
	t.Helper()
	c := chip{lines: []gpio.PinIO{devicetest.NewButtonLine("CALL_BUTTON", true).Pin}}
	for _, n := range []string{"LED_GREEN", "LED_RED", "LED_BLUE"} {
		c.lines = append(c.lines, &gpiotest.Pin{N: n})
	}
	return board.Config{Kind: board.GPIO, Pins: pins.DefaultMap(), Resolver: &pins.Resolver{Chips: []pins.Chip{c}},
		Camera: "none", Microphone: "none"}
}

// partState is what a part opener says: absent, working or broken.
func partState(fitted bool, err error) string {
	switch {
	case err != nil && !fitted:
		return "absent with an error (a contradiction)"
	case err != nil && errors.Is(err, device.ErrAbsent):
		return "broken: not there"
	case err != nil:
		return "broken"
	case fitted:
		return "working"
	}
	return "absent"
}

// Each part of a GPIO board is absent when the configuration does not fit
// it, and broken (fitted, with the reason) when it does but cannot open.
func TestGPIOPartsAbsentOrBroken(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name                              string
		change                            func(*board.Config)
		wantErr                           string // "" : the button and every LED open
		speaker, screen, watchdog, camera string
	}{
		{"nothing optional fitted", func(*board.Config) {}, "", "absent", "absent", "absent", "absent"},
		{"a pin the kernel lacks", func(c *board.Config) { c.Pins.LEDs[device.Red] = "NOPE" }, "LED red", "absent", "absent", "absent", "absent"},
		{"named screen and watchdog missing", func(c *board.Config) { c.Screen, c.Watchdog = missing, missing }, "",
			"absent", "broken: not there", "broken: not there", "absent"},
		{"camera configured", func(c *board.Config) { c.Camera = "v4l2" }, "", "absent", "absent", "absent", "working"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := gpioConfig(t)
			tt.change(&cfg)
			b, err := board.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.Err(); (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Err() = %v, want one naming %q", err, tt.wantErr)
			}
			if btn, err := b.Button(); btn == nil || err != nil {
				t.Errorf("Button() = %v, %v; want the button open", btn, err)
			}
			for c, l := range b.LEDLines() {
				if broken := l.Err != nil; broken != (tt.wantErr == "LED "+string(c)) {
					t.Errorf("LED %s: err %v", c, l.Err)
				}
			}
			_, fitted, err := b.Speaker()
			if got := partState(fitted, err); got != tt.speaker {
				t.Errorf("speaker %s (%v), want %s", got, err, tt.speaker)
			}
			_, fitted, err = b.Screen()
			if got := partState(fitted, err); got != tt.screen {
				t.Errorf("screen %s (%v), want %s", got, err, tt.screen)
			}
			_, fitted, err = b.Watchdog()
			if got := partState(fitted, err); got != tt.watchdog {
				t.Errorf("watchdog %s (%v), want %s", got, err, tt.watchdog)
			}
			_, fitted = b.Camera()
			if got := partState(fitted, nil); got != tt.camera {
				t.Errorf("camera %s, want %s", got, tt.camera)
			}
		})
	}
}

// The LEDs the board drives are the lines the self-test drives: showing a
// pattern moves the line.
func TestGPIOLEDsOnTheirLines(t *testing.T) {
	b, err := board.Open(gpioConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.LEDs().Show(device.Fault); err != nil {
		t.Fatal(err)
	}
	if got := b.LEDLines()[device.Red].Pin.(*pins.Line).PinIO.(*gpiotest.Pin).Read(); got != gpio.High {
		t.Errorf("red line reads %v under Fault, want High", got)
	}
}

// The simulated board fits a button, LEDs that read back, the panel as the
// speaker and an in-memory screen, and no watchdog and no tone.
func TestSimParts(t *testing.T) {
	b, err := board.Open(board.Config{Kind: board.Sim, Camera: "synthetic", Microphone: "synthetic"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Err(); err != nil || b.Sim() == nil {
		t.Fatalf("Err() = %v, Sim() = %v", err, b.Sim())
	}
	if len(b.LEDLines()) != len(device.Colors()) {
		t.Errorf("%d LED lines, want %d", len(b.LEDLines()), len(device.Colors()))
	}
	b.LEDs().Show(device.InCall)
	if lvl, err := b.LEDLines()[device.Blue].ReadBack(); err != nil || lvl != gpio.High {
		t.Errorf("blue reads back %v, %v under InCall, want High", lvl, err)
	}
	if sp, fitted, err := b.Speaker(); !fitted || err != nil || sp == nil {
		t.Errorf("speaker = %v, %v, %v; want the panel", sp, fitted, err)
	}
	if _, fitted := b.Tone(); fitted {
		t.Error("the simulated board plays the self-test's tone nowhere, but says it fits one")
	}
	if d, fitted, err := b.Screen(); !fitted || err != nil || d == nil {
		t.Errorf("screen = %v, %v, %v; want the in-memory one", d, fitted, err)
	}
	if _, fitted, err := b.Watchdog(); fitted || err != nil {
		t.Errorf("watchdog fitted %v, %v; want absent", fitted, err)
	}
	if c, fitted := b.Camera(); !fitted || c.Socket == nil {
		t.Errorf("camera %+v fitted %v; want the synthetic one in its socket", c, fitted)
	}
	if _, fitted := b.Microphone(); !fitted {
		t.Error("synthetic microphone not fitted")
	}
}

func TestOpenUnknownKind(t *testing.T) {
	if _, err := board.Open(board.Config{Kind: "fpga"}); !errors.Is(err, device.ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
}

// The configured long press reaches the GPIO button, not only the simulated
// one: a long press is how a child hangs up.
func TestGPIOButtonLongPress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := gpioConfig(t)
		line := devicetest.NewButtonLine("CALL_BUTTON", true)
		cfg.Resolver.Chips[0].(chip).lines[0] = line.Pin
		cfg.LongPress = 700 * time.Millisecond
		b, err := board.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		btn, err := b.Button()
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		line.Press()
		time.Sleep(time.Second)
		line.Release()
		time.Sleep(time.Second)
		ev := <-btn.Events()
		if ev.Kind != device.LongPress || !ev.At.Equal(t0.Add(cfg.LongPress)) {
			t.Errorf("got %v at +%v, want long_press at +%v", ev.Kind, ev.At.Sub(t0), cfg.LongPress)
		}
	})
}
