package device_test

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/devicetest"
)

type ledRig struct {
	leds *device.LEDs
	pins map[device.Color]*devicetest.RecordingPin
}

func newLEDRig(t *testing.T, opts device.LEDOpts, colors ...device.Color) ledRig {
	t.Helper()
	if len(colors) == 0 {
		colors = device.Colors()
	}
	r := ledRig{pins: map[device.Color]*devicetest.RecordingPin{}}
	in := map[device.Color]gpio.PinOut{}
	for _, c := range colors {
		p := devicetest.NewRecordingPin("LED_" + string(c))
		r.pins[c] = p
		in[c] = p
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	leds, err := device.NewLEDs(in, opts)
	if err != nil {
		t.Fatalf("NewLEDs: %v", err)
	}
	r.leds = leds
	return r
}

func (r ledRig) levels() map[device.Color]gpio.Level {
	m := map[device.Color]gpio.Level{}
	for c, p := range r.pins {
		m[c] = p.Level()
	}
	return m
}

// behaviour is what an observer sees of one LED over a few seconds.
type behaviour string

const (
	dark   behaviour = "off"
	steady behaviour = "on"
	slow   behaviour = "slow"
	fast   behaviour = "fast"
	glow   behaviour = "breathe" // software PWM: far more edges than any blink
)

// observe classifies an LED from its recorded transitions over window.
// 1 Hz gives about 2 transitions a second, 4 Hz about 8: the bands are wide
// on purpose, the point is that a child can tell the rhythms apart.
func observe(p *devicetest.RecordingPin, window time.Duration) behaviour {
	perSec := float64(p.Transitions()) / window.Seconds()
	switch {
	case perSec == 0 && p.Level() == gpio.High:
		return steady
	case perSec == 0:
		return dark
	case perSec < 4:
		return slow
	case perSec < 20:
		return fast
	default:
		return glow
	}
}

func TestLEDPatterns(t *testing.T) {
	type look = map[device.Color]behaviour
	tests := []struct {
		p    device.Pattern
		want look
	}{
		{device.Off, look{device.Green: dark, device.Red: dark, device.Blue: dark}},
		{device.Ready, look{device.Green: steady, device.Red: dark, device.Blue: dark}},
		{device.Calling, look{device.Green: slow, device.Red: dark, device.Blue: dark}},
		{device.Ringing, look{device.Green: fast, device.Red: dark, device.Blue: fast}},
		{device.InCall, look{device.Green: dark, device.Red: dark, device.Blue: steady}},
		{device.InCallVoice, look{device.Green: steady, device.Red: dark, device.Blue: steady}},
		{device.NoAnswer, look{device.Green: dark, device.Red: slow, device.Blue: dark}},
		{device.Unreachable, look{device.Green: dark, device.Red: steady, device.Blue: dark}},
		{device.Offline, look{device.Green: dark, device.Red: glow, device.Blue: dark}},
		{device.Fault, look{device.Green: fast, device.Red: fast, device.Blue: dark}},
		{device.Pairing, look{device.Green: dark, device.Red: dark, device.Blue: slow}},
		{device.Pairable, look{device.Green: dark, device.Red: dark, device.Blue: glow}},
		{device.ResetArmed, look{device.Green: dark, device.Red: fast, device.Blue: fast}},
	}
	if len(tests) != len(device.Patterns()) {
		t.Fatalf("table covers %d patterns, device has %d", len(tests), len(device.Patterns()))
	}
	seen := map[string]device.Pattern{}
	for _, tt := range tests {
		t.Run(string(tt.p), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newLEDRig(t, device.LEDOpts{})
				defer r.leds.Close()
				r.leds.Show(device.Calling) // start from something else
				time.Sleep(300 * time.Millisecond)
				synctest.Wait()
				for _, p := range r.pins {
					p.Reset()
				}
				if err := r.leds.Show(tt.p); err != nil {
					t.Fatalf("Show: %v", err)
				}
				if got := r.leds.Pattern(); got != tt.p {
					t.Fatalf("Pattern() = %q after Show(%q)", got, tt.p)
				}
				const window = 4 * time.Second
				time.Sleep(window)
				synctest.Wait()
				got := look{}
				for c, p := range r.pins {
					got[c] = observe(p, window)
				}
				for c, w := range tt.want {
					if got[c] != w {
						t.Errorf("%s LED is %s, want %s (writes %v)", c, got[c], w, r.pins[c].Writes())
					}
				}
				sig := fmt.Sprint(got)
				if other, dup := seen[sig]; dup {
					t.Errorf("%q looks the same as %q (%s): a child cannot tell them apart", tt.p, other, sig)
				}
				seen[sig] = tt.p
			})
		})
	}
}

// TestOfflineAndRepairByColour: "no network" and "needs repair" light
// different LEDs, not only in a different rhythm, so that a parent can tell
// them apart at a glance (or describe them on the phone): offline lights
// red alone; needs repair lights red and green. Over a few seconds, which
// LEDs were ever lit.
func TestOfflineAndRepairByColour(t *testing.T) {
	lit := func(p device.Pattern) map[device.Color]bool {
		var on map[device.Color]bool
		synctest.Test(t, func(t *testing.T) {
			r := newLEDRig(t, device.LEDOpts{})
			defer r.leds.Close()
			if err := r.leds.Show(p); err != nil {
				t.Fatal(err)
			}
			on = map[device.Color]bool{}
			for range 40 { // 4 s
				for c, pin := range r.pins {
					if pin.Level() == gpio.High {
						on[c] = true
					}
				}
				time.Sleep(100*time.Millisecond + time.Millisecond)
				synctest.Wait()
			}
		})
		return on
	}
	offline, fault := lit(device.Offline), lit(device.Fault)
	if fmt.Sprint(offline) != fmt.Sprint(map[device.Color]bool{device.Red: true}) {
		t.Errorf("offline lights %v, want red alone", offline)
	}
	if fmt.Sprint(fault) != fmt.Sprint(map[device.Color]bool{device.Red: true, device.Green: true}) {
		t.Errorf("needs repair lights %v, want red and green", fault)
	}
}

// TestLEDShowIsImmediate: steady levels are on the pins when Show returns,
// and a blinking LED starts lit — or dark when lit would change nothing —
// so every change is visible at once.
func TestLEDShowIsImmediate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLEDRig(t, device.LEDOpts{})
		defer r.leds.Close()
		for _, c := range device.Colors() {
			if l := r.pins[c].Level(); l != gpio.Low {
				t.Errorf("after NewLEDs %s = %v, want Low", c, l)
			}
		}
		r.leds.Show(device.Ready)
		want := map[device.Color]gpio.Level{device.Green: gpio.High, device.Red: gpio.Low, device.Blue: gpio.Low}
		if got := r.levels(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("after Show(ready) levels %v, want %v", got, want)
		}
		r.leds.Show(device.Fault)
		if got := r.pins[device.Red].Level(); got != gpio.High {
			t.Errorf("after Show(fault) red = %v, want High (blink starts lit)", got)
		}
		// Ready's steady green → calling's green blink: lit first would look
		// like nothing happened, so the blink starts dark.
		r.leds.Show(device.Ready)
		r.leds.Show(device.Calling)
		if got := r.pins[device.Green].Level(); got != gpio.Low {
			t.Errorf("ready → calling: green = %v right after Show, want Low (the press must show at once)", got)
		}
		time.Sleep(600 * time.Millisecond)
		synctest.Wait()
		if got := r.pins[device.Green].Level(); got != gpio.High {
			t.Errorf("calling 0.6 s in: green = %v, want High (blinking)", got)
		}
	})
}

// TestLEDRingingAntiphase: in ringing the light jumps between green and
// blue, so the two are never lit together nor dark together.
func TestLEDRingingAntiphase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLEDRig(t, device.LEDOpts{})
		defer r.leds.Close()
		r.leds.Show(device.Ringing)
		time.Sleep(10 * time.Millisecond) // sample between ticks
		flips := 0
		last := r.pins[device.Green].Level()
		for i := range 20 {
			synctest.Wait()
			g, b := r.pins[device.Green].Level(), r.pins[device.Blue].Level()
			if g == b {
				t.Fatalf("sample %d: green = blue = %v, want antiphase", i, g)
			}
			if g != last {
				flips++
			}
			last = g
			time.Sleep(125 * time.Millisecond)
		}
		if flips < 5 {
			t.Errorf("green changed %d times in 20 samples, want it to blink", flips)
		}
	})
}

func TestLEDUnknownPatternShowsFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLEDRig(t, device.LEDOpts{})
		defer r.leds.Close()
		err := r.leds.Show("disco")
		if !errors.Is(err, device.ErrUnknownPattern) {
			t.Errorf("Show(disco) error = %v, want ErrUnknownPattern", err)
		}
		if got := r.leds.Pattern(); got != device.Fault {
			t.Errorf("Pattern() = %q, want fault", got)
		}
	})
}

func TestLEDActiveLow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLEDRig(t, device.LEDOpts{ActiveLow: true})
		r.leds.Show(device.Ready)
		want := map[device.Color]gpio.Level{device.Green: gpio.Low, device.Red: gpio.High, device.Blue: gpio.High}
		if got := r.levels(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("active low ready: levels %v, want %v", got, want)
		}
		if err := r.leds.Close(); err != nil {
			t.Fatal(err)
		}
		for c, l := range r.levels() {
			if l != gpio.High {
				t.Errorf("active low after Close: %s = %v, want High (dark)", c, l)
			}
		}
	})
}

func TestLEDAbsentColour(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLEDRig(t, device.LEDOpts{}, device.Green) // board with only a green LED
		defer r.leds.Close()
		for _, p := range device.Patterns() {
			if err := r.leds.Show(p); err != nil {
				t.Errorf("Show(%q) with absent LEDs: %v", p, err)
			}
		}
		r.leds.Show(device.Ready)
		if got := r.pins[device.Green].Level(); got != gpio.High {
			t.Errorf("green = %v, want High", got)
		}
	})
}

func TestLEDClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLEDRig(t, device.LEDOpts{})
		r.leds.Show(device.Ringing)
		time.Sleep(time.Second)
		if err := r.leds.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		for c, l := range r.levels() {
			if l != gpio.Low {
				t.Errorf("after Close %s = %v, want Low", c, l)
			}
		}
		writes := len(r.pins[device.Green].Writes())
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(r.pins[device.Green].Writes()); n != writes {
			t.Errorf("%d writes after Close, want blinking stopped", n-writes)
		}
		if err := r.leds.Show(device.Ready); !errors.Is(err, device.ErrClosed) {
			t.Errorf("Show after Close: %v, want ErrClosed", err)
		}
		if err := r.leds.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

// TestLEDWriteFailureRecovers: a failing pin is retried, so a transient
// error does not leave an LED showing a stale state.
func TestLEDWriteFailureRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLEDRig(t, device.LEDOpts{})
		defer r.leds.Close()
		r.pins[device.Green].FailWith(errors.New("EIO"))
		r.leds.Show(device.Ready)
		if got := r.pins[device.Green].Level(); got != gpio.Low {
			t.Fatalf("green = %v while writes fail", got)
		}
		r.pins[device.Green].FailWith(nil)
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if got := r.pins[device.Green].Level(); got != gpio.High {
			t.Errorf("green = %v after the pin healed, want High", got)
		}
	})
}

func TestNewLEDsErrors(t *testing.T) {
	bad := devicetest.NewRecordingPin("LED_RED")
	bad.FailWith(errors.New("EBUSY"))
	tests := []struct {
		name   string
		pins   map[device.Color]gpio.PinOut
		wantIs error
	}{
		{"unknown colour", map[device.Color]gpio.PinOut{"purple": devicetest.NewRecordingPin("X")}, device.ErrInvalidConfig},
		{"pin fails", map[device.Color]gpio.PinOut{device.Red: bad}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := device.NewLEDs(tt.pins, device.LEDOpts{})
			if err == nil {
				l.Close()
				t.Fatal("NewLEDs succeeded, want error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
		})
	}
}

// TestLEDShowConcurrent: Show is called from the call state machine, the
// network watcher and the technician's tools at once; run with -race.
func TestLEDShowConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLEDRig(t, device.LEDOpts{Logger: slog.New(slog.DiscardHandler)})
		defer r.leds.Close()
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 50 {
					ps := device.Patterns()
					r.leds.Show(ps[(i+j)%len(ps)])
					time.Sleep(time.Duration(i+1) * time.Millisecond)
				}
			})
		}
		wg.Wait()
		r.leds.Show(device.InCall)
		time.Sleep(time.Second)
		synctest.Wait()
		want := map[device.Color]gpio.Level{device.Green: gpio.Low, device.Red: gpio.Low, device.Blue: gpio.High}
		if got := r.levels(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("after the storm, in_call levels %v, want %v", got, want)
		}
	})
}

// TestLEDBreathe: a breathing LED is lit at once, then its duty falls to
// almost nothing half a breath in and rises again: a glow, by software PWM.
func TestLEDBreathe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLEDRig(t, device.LEDOpts{})
		defer r.leds.Close()
		r.leds.Show(device.Offline)
		red := r.pins[device.Red]
		if red.Level() != gpio.High {
			t.Fatal("breathing red not lit at once")
		}
		// duty samples the level every millisecond for 200 ms.
		duty := func() float64 {
			lit := 0
			for range 200 {
				time.Sleep(time.Millisecond)
				synctest.Wait()
				if red.Level() == gpio.High {
					lit++
				}
			}
			return float64(lit) / 200
		}
		start := duty() // 0–0.2 s: near full
		time.Sleep(1300 * time.Millisecond)
		trough := duty() // 1.5–1.7 s: near dark
		time.Sleep(1100 * time.Millisecond)
		again := duty() // 2.9–3.1 s: bright again
		t.Logf("duty: %.2f, %.2f, %.2f", start, trough, again)
		if start < 0.8 || trough > 0.1 || again < 0.7 {
			t.Errorf("duty %.2f → %.2f → %.2f, want bright → dark → bright", start, trough, again)
		}
		r.leds.Show(device.Ready)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if red.Level() != gpio.Low {
			t.Error("red still driven after leaving the breathing pattern")
		}
	})
}
