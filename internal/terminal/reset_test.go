package terminal_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/devicetest"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
)

type seen struct {
	mu   sync.Mutex
	what []string
}

func (s *seen) add(x string) { s.mu.Lock(); s.what = append(s.what, x); s.mu.Unlock() }
func (s *seen) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.what)
}

type seenLEDs struct{ *seen }

func (l seenLEDs) Show(p device.Pattern) error { l.add("lights " + string(p)); return nil }

type seenSpeaker struct{ *seen }

func (s seenSpeaker) PlayCue(c string)                              { s.add("cue " + c) }
func (s seenSpeaker) PlayCueWait(_ context.Context, c string) error { s.add("cue " + c); return nil }

// finger is one step of a hand on the button, at power-up and after.
type finger struct {
	down, up bool
	wait     time.Duration
}

var (
	down  = finger{down: true}
	up    = finger{up: true}
	sleep = func(d time.Duration) finger { return finger{wait: d} }
	tap   = []finger{down, sleep(200 * time.Millisecond), up, sleep(400 * time.Millisecond)}
)

// TestBootReset runs the real button driver and the reset gesture, on
// synctest's clock with the default timings, against a paired state file.
func TestBootReset(t *testing.T) {
	armed := slices.Concat([]finger{sleep(3500 * time.Millisecond), up, sleep(500 * time.Millisecond)})
	tests := []struct {
		name     string
		heldAtUp bool          // the button is down when the unit powers up
		lastCall time.Duration // a call ended this long before power-up; 0: none
		fingers  []finger
		want     bool
	}{
		{"held at power-up, let go, three presses: reset", true, 0, slices.Concat(armed, tap, tap, tap), true},
		{"the same an hour after a call: reset", true, time.Hour, slices.Concat(armed, tap, tap, tap), true},
		{"the same 30 s after a call: refused", true, 30 * time.Second, slices.Concat(armed, tap, tap, tap), false},
		{"held at power-up then let go, no presses: no reset", true, 0, armed, false},
		{"held at power-up, let go too soon, three presses: no reset", true, 0,
			slices.Concat([]finger{sleep(time.Second), up, sleep(500 * time.Millisecond)}, tap, tap, tap), false},
		{"four presses (drumming): no reset", true, 0, slices.Concat(armed, tap, tap, tap, tap), false},
		{"held at power-up for 70 s (stuck): no reset", true, 0, []finger{sleep(70 * time.Second), up}, false},
		{"not held at power-up; then a 10 s hold and three presses: no reset", false, 0,
			slices.Concat([]finger{sleep(time.Second), down, sleep(10 * time.Second), up, sleep(500 * time.Millisecond)}, tap, tap, tap), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "terminal.db")
			store, err := terminalstore.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			rendezvoustest.Provision(t, store)
			if err := store.SetParent(terminalstore.Parent{ParentID: "p1", PairedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			synctest.Test(t, func(t *testing.T) {
				powerUp := time.Now()
				if tt.lastCall > 0 {
					if err := store.AppendCall(terminalstore.CallRecord{CallID: "c1", EndedAt: powerUp.Add(-tt.lastCall)}); err != nil {
						t.Fatal(err)
					}
				}
				line := devicetest.NewButtonLine("B", false)
				if tt.heldAtUp {
					line.Press()
				}
				b, err := device.NewButton(line.Pin, device.ButtonOpts{})
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				s := &seen{}
				type result struct {
					reset bool
					err   error
				}
				done := make(chan result, 1)
				go func() {
					r, err := terminal.BootReset(t.Context(), terminal.BootDeps{Button: b, LEDs: seenLEDs{s}, Speaker: seenSpeaker{s}, Store: store})
					done <- result{r, err}
				}()
				for _, f := range tt.fingers {
					switch {
					case f.down:
						line.Press()
					case f.up:
						line.Release()
					default:
						time.Sleep(f.wait)
					}
					synctest.Wait()
				}
				time.Sleep(15 * time.Second) // past any window: the gesture is decided
				synctest.Wait()
				var r result
				select {
				case r = <-done:
				default:
					t.Fatalf("BootReset undecided after the gesture; saw %q", s.list())
				}
				if r.err != nil || r.reset != tt.want {
					t.Fatalf("BootReset = %v, %v; want %v (saw %q)", r.reset, r.err, tt.want, s.list())
				}
				_, perr := store.Parent()
				if erased := errors.Is(perr, terminalstore.ErrNotPaired); erased != tt.want {
					t.Fatalf("pairing erased = %v, want %v", erased, tt.want)
				}
				if pending, _ := store.UnpairPending(); pending != tt.want {
					t.Errorf("unpair pending = %v, want %v (the old parent must be told)", pending, tt.want)
				}
				armedShown := slices.Contains(s.list(), "lights "+string(device.ResetArmed))
				if tt.want && !armedShown {
					t.Errorf("reset without the reset-armed light first: %q", s.list())
				}
				if !tt.heldAtUp && len(s.list()) > 0 {
					t.Errorf("not held at power-up, yet the unit showed or played %q", s.list())
				}
			})
		})
	}
}
