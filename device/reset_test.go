package device_test

import (
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
)

// in is one input to the recogniser at +at from power-up: a button event, or
// a tick (kind 0) with the button down or up.
type in struct {
	at      time.Duration
	kind    device.ButtonKind
	pressed bool
}

func ev(at time.Duration, k device.ButtonKind) in { return in{at: at, kind: k} }
func tick(at time.Duration, pressed bool) in      { return in{at: at, pressed: pressed} }

// ticks adds a tick every 100 ms from a to b, with the button as given.
func ticks(a, b time.Duration, pressed bool) []in {
	var out []in
	for t := a; t <= b; t += 100 * time.Millisecond {
		out = append(out, tick(t, pressed))
	}
	return out
}

func cat(parts ...[]in) []in {
	var out []in
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func s(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }

// TestResetGesture: only held-at-power-up + release + exactly three short
// presses + quiet resets; every near miss boots normally.
func TestResetGesture(t *testing.T) {
	P, L, H, R := device.Press, device.LongPress, device.Hold, device.Release
	// armedHold is the power-up hold the Button reports: long press at
	// 2 s, hold at 3 s, let go at 4 s.
	armedHold := cat(ticks(0, s(1.9), true), []in{ev(s(2), L), ev(s(3), H)}, ticks(s(3), s(3.9), true), []in{ev(s(4), R)})
	threePresses := []in{ev(s(4.5), P), tick(s(4.6), false), ev(s(5), P), ev(s(5.5), P)}
	tests := []struct {
		name string
		in   []in
		want device.ResetVerdict // the final verdict
	}{
		{"held at power-up, released, three presses, quiet: reset",
			cat(armedHold, threePresses, ticks(s(5.6), s(8), false)), device.ResetConfirmed},
		{"three presses but no quiet yet: still waiting",
			cat(armedHold, threePresses, ticks(s(5.6), s(7), false)), device.ResetPending},
		{"held at power-up then released, no presses: boots normally",
			cat(armedHold, ticks(s(4.1), s(15), false)), device.ResetCancelled},
		{"two presses only: boots normally",
			cat(armedHold, []in{ev(s(5), P), ev(s(6), P)}, ticks(s(6.1), s(16), false)), device.ResetCancelled},
		{"four presses (drumming): boots normally",
			cat(armedHold, threePresses, []in{ev(s(6), P)}, ticks(s(6.1), s(10), false)), device.ResetCancelled},
		{"a fourth press held down through the quiet: boots normally",
			cat(armedHold, threePresses, ticks(s(5.6), s(8), true)), device.ResetCancelled},
		{"presses after the window: boots normally",
			cat(armedHold, []in{ev(s(13), P), ev(s(13.5), P), ev(s(14.5), P)}, ticks(s(14.6), s(18), false)), device.ResetCancelled},
		{"a long press instead of short ones: boots normally",
			cat(armedHold, []in{ev(s(5), P), ev(s(7.5), L)}, ticks(s(7.6), s(12), true)), device.ResetCancelled},
		{"released before the reset armed, then three presses: boots normally",
			cat(ticks(0, s(1.9), true), []in{ev(s(2), L), ev(s(2.5), R), ev(s(3), P), ev(s(3.5), P), ev(s(4), P)}, ticks(s(4.1), s(8), false)),
			device.ResetCancelled},
		{"a short press at power-up (a child's jab): boots normally",
			[]in{tick(0, true), ev(s(0.2), P), ev(s(0.8), P), ev(s(1.2), P), ev(s(1.6), P)}, device.ResetCancelled},
		{"held past stuck-after: stuck, no reset",
			cat(ticks(0, s(1.9), true), []in{ev(s(2), L), ev(s(3), H)}, ticks(s(3), s(61), true)), device.ResetStuck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			boot := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
			g := device.NewResetGesture(boot, device.ResetOpts{})
			var got device.ResetVerdict
			armed := 0
			for _, x := range tt.in {
				if g.Done() {
					break
				}
				var v device.ResetVerdict
				if x.kind == 0 {
					g, v = g.Tick(boot.Add(x.at), x.pressed)
				} else {
					g, v = g.Event(device.ButtonEvent{Kind: x.kind, At: boot.Add(x.at)})
				}
				if v == device.ResetArm {
					armed++
					continue
				}
				got = v
			}
			if got != tt.want {
				t.Fatalf("verdict %v (%s), want %v", got, g.Why, tt.want)
			}
			if armed > 1 {
				t.Errorf("armed reported %d times, want at most once", armed)
			}
		})
	}
}
