package device_test

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/devicetest"
)

// A step of a finger on the button. Time is synctest's fake clock, so the
// real default thresholds (30 ms, 2 s, 10 s, 60 s) are used and nothing
// actually waits.
type step struct {
	press, release bool
	wait           time.Duration
	expect         []device.ButtonKind // check events since the last expect
	check          bool
}

func down() step                         { return step{press: true} }
func up() step                           { return step{release: true} }
func wait(d time.Duration) step          { return step{wait: d} }
func expect(k ...device.ButtonKind) step { return step{check: true, expect: k} }
func ms(n int) time.Duration             { return time.Duration(n) * time.Millisecond }
func bounce(n int, each time.Duration) []step { // n short open/close pairs
	var s []step
	for range n {
		s = append(s, up(), wait(each), down(), wait(each))
	}
	return s
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestButtonGestures(t *testing.T) {
	P, L, H, R := device.Press, device.LongPress, device.Hold, device.Release
	cat := func(parts ...[]step) []step { return slices.Concat(parts...) }
	tests := []struct {
		name      string
		activeLow bool
		steps     []step
	}{
		{"clean short press", false, []step{
			down(), wait(ms(200)), expect(), up(), wait(ms(100)), expect(P)}},
		{"active low short press", true, []step{
			down(), wait(ms(200)), up(), wait(ms(100)), expect(P)}},
		{"bounce on press and release is one press", false, cat(
			[]step{down(), wait(ms(2))}, bounce(4, ms(2)),
			[]step{wait(ms(300)), up(), wait(ms(3)), down(), wait(ms(1)), up(), wait(ms(2)), down(), wait(ms(2)), up(),
				wait(ms(200)), expect(P)})},
		{"glitch while held is one press", false, []step{
			down(), wait(ms(500)), up(), wait(ms(10)), down(), wait(ms(500)), up(), wait(ms(100)), expect(P)}},
		{"spike shorter than debounce is nothing", false, []step{
			down(), wait(ms(10)), up(), wait(ms(500)), expect()}},
		{"two presses are two presses", false, []step{
			down(), wait(ms(150)), up(), wait(ms(300)), down(), wait(ms(150)), up(), wait(ms(100)), expect(P, P)}},
		{"long press fires while held, its end is a release", false, []step{
			down(), wait(ms(1900)), expect(), wait(ms(200)), expect(L), wait(ms(500)), up(), wait(ms(500)), expect(R)}},
		{"release just under long press threshold is a press", false, []step{
			down(), wait(ms(1995)), up(), wait(ms(500)), expect(P)}},
		{"release just over long press threshold is a long press", false, []step{
			down(), wait(ms(2005)), up(), wait(ms(500)), expect(L, R)}},
		// There is no reset in use, however long the hold (reset.go).
		{"a 15 s hold in use is a long press and a hold, nothing more", false, []step{
			down(), wait(ms(9900)), expect(L, H), wait(ms(5200)), expect(), up(), wait(ms(500)), expect(R)}},
		{"hold fires at 3 s, after the long press, before release", false, []step{
			down(), wait(ms(2900)), expect(L), wait(ms(200)), expect(H), up(), wait(ms(500)), expect(R)}},
		{"release between long press and hold is only a long press", false, []step{
			down(), wait(ms(2500)), up(), wait(ms(1500)), expect(L, R)}},
		{"active low long press", true, []step{
			down(), wait(ms(2500)), expect(L), up(), wait(ms(500)), expect(R)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				line := devicetest.NewButtonLine("CALL_BUTTON", tt.activeLow)
				b, err := device.NewButton(line.Pin, device.ButtonOpts{ActiveLow: tt.activeLow, Logger: testLogger(t)})
				if err != nil {
					t.Fatalf("NewButton: %v", err)
				}
				defer b.Close()
				start := time.Now()
				for i, s := range tt.steps {
					switch {
					case s.press:
						line.Press()
					case s.release:
						line.Release()
					case s.wait > 0:
						time.Sleep(s.wait)
					case s.check:
						synctest.Wait()
						got := drain(b.Events())
						if !slices.Equal(kinds(got), s.expect) {
							t.Fatalf("step %d at +%v: events %v, want %v", i, time.Since(start), kinds(got), s.expect)
						}
					}
					synctest.Wait()
				}
			})
		})
	}
}

// TestButtonEventTimes checks At: a long press is stamped when the threshold
// was reached, a press when the (settled) release happened.
func TestButtonEventTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		line := devicetest.NewButtonLine("B", false)
		b, err := device.NewButton(line.Pin, device.ButtonOpts{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()

		t0 := time.Now()
		line.Press()
		time.Sleep(3500 * time.Millisecond)
		line.Release()
		time.Sleep(time.Second)
		ev := <-b.Events()
		if ev.Kind != device.LongPress || !ev.At.Equal(t0.Add(device.DefaultLongPress)) {
			t.Errorf("got %v at +%v, want long_press at +%v", ev.Kind, ev.At.Sub(t0), device.DefaultLongPress)
		}
		ev = <-b.Events()
		if ev.Kind != device.Hold || !ev.At.Equal(t0.Add(device.DefaultHold)) {
			t.Errorf("got %v at +%v, want hold at +%v", ev.Kind, ev.At.Sub(t0), device.DefaultHold)
		}
		ev = <-b.Events()
		if want := t0.Add(3500 * time.Millisecond); ev.Kind != device.Release || !ev.At.Equal(want) {
			t.Errorf("got %v at +%v, want release at +3.5s", ev.Kind, ev.At.Sub(t0))
		}

		t1 := time.Now()
		line.Press()
		time.Sleep(300 * time.Millisecond)
		line.Release()
		time.Sleep(time.Second)
		ev = <-b.Events()
		if want := t1.Add(300 * time.Millisecond); ev.Kind != device.Press || !ev.At.Equal(want) {
			t.Errorf("got %v at +%v, want press at +300ms", ev.Kind, ev.At.Sub(t1))
		}
	})
}

func TestButtonStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		line := devicetest.NewButtonLine("B", true)
		b, err := device.NewButton(line.Pin, device.ButtonOpts{ActiveLow: true, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()

		line.Press()
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if b.Stuck() {
			t.Fatal("stuck after 59 s, want not yet")
		}
		if !b.Pressed() {
			t.Fatal("Pressed() = false while held")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !b.Stuck() {
			t.Fatal("not stuck after 61 s held")
		}
		line.Release()
		time.Sleep(time.Second)
		synctest.Wait()
		if b.Stuck() || b.Pressed() {
			t.Fatalf("after release: Stuck() = %v, Pressed() = %v, want both false", b.Stuck(), b.Pressed())
		}
		// A button held past StuckAfter (a toy leaning on it) is a fault,
		// and no gesture.
		if got := kinds(drain(b.Events())); !slices.Equal(got, []device.ButtonKind{device.LongPress, device.Hold, device.Release}) {
			t.Errorf("events %v, want [long_press hold release]", got)
		}
	})
}

// TestButtonHeldAtStart: a button held while the terminal boots counts from
// when NewButton was called (so holding through boot reaches the thresholds).
func TestButtonHeldAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		line := devicetest.NewButtonLine("B", false)
		line.Press()
		b, err := device.NewButton(line.Pin, device.ButtonOpts{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		time.Sleep(2100 * time.Millisecond)
		synctest.Wait()
		if got := kinds(drain(b.Events())); !slices.Equal(got, []device.ButtonKind{device.LongPress}) {
			t.Errorf("events %v, want [long_press]", got)
		}
	})
}

func TestButtonClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		line := devicetest.NewButtonLine("B", false)
		b, err := device.NewButton(line.Pin, device.ButtonOpts{})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, ok := <-b.Events(); ok {
			t.Error("Events() still open after Close")
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		line.Press() // nobody listens: must not block
		line.Release()
	})
}

func TestNewButtonErrors(t *testing.T) {
	tests := []struct {
		name    string
		pin     gpio.PinIn
		opts    device.ButtonOpts
		wantIs  error
		wantMsg string
	}{
		{"nil pin", nil, device.ButtonOpts{}, device.ErrAbsent, "device: open button"},
		{"long press not before stuck", devicetest.NewButtonLine("B", false).Pin,
			device.ButtonOpts{LongPress: 10 * time.Second, StuckAfter: 5 * time.Second}, device.ErrInvalidConfig, "stuck-after"},
		{"hold not between long press and stuck", devicetest.NewButtonLine("B", false).Pin,
			device.ButtonOpts{Hold: time.Second}, device.ErrInvalidConfig, "hold"},
		{"debounce longer than long press", devicetest.NewButtonLine("B", false).Pin,
			device.ButtonOpts{Debounce: 3 * time.Second}, device.ErrInvalidConfig, "debounce"},
		{"negative", devicetest.NewButtonLine("B", false).Pin,
			device.ButtonOpts{Debounce: -time.Millisecond}, device.ErrInvalidConfig, "negative"},
		// gpiotest refuses edge detection without an edge channel: the
		// driver's error must come back wrapped with the pin's name.
		{"pin refuses edges", &gpiotest.Pin{N: "GPIO17"}, device.ButtonOpts{}, nil, `device: open button "GPIO17": gpiotest`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := device.NewButton(tt.pin, tt.opts)
			if err == nil {
				b.Close()
				t.Fatal("NewButton succeeded, want error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func drain(ch <-chan device.ButtonEvent) []device.ButtonEvent {
	var evs []device.ButtonEvent
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

func kinds(evs []device.ButtonEvent) []device.ButtonKind {
	out := []device.ButtonKind{}
	for _, ev := range evs {
		out = append(out, ev.Kind)
	}
	return out
}

// earlyPin is a pin whose edge detection is broken: WaitForEdge returns at
// once. The button must still see presses (by polling) without spinning.
type earlyPin struct {
	*gpiotest.Pin
	waits int
}

func (p *earlyPin) WaitForEdge(time.Duration) bool { p.waits++; return false }

func TestButtonWithoutEdges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := &earlyPin{Pin: &gpiotest.Pin{N: "B", EdgesChan: make(chan gpio.Level)}}
		b, err := device.NewButton(pin, device.ButtonOpts{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		pin.Out(gpio.High)
		time.Sleep(500 * time.Millisecond)
		pin.Out(gpio.Low)
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if got := kinds(drain(b.Events())); !slices.Equal(got, []device.ButtonKind{device.Press}) {
			t.Errorf("events %v, want [press] by polling", got)
		}
		if pin.waits > 100 {
			t.Errorf("%d WaitForEdge calls in 1 s: spinning", pin.waits)
		}
	})
}
