package terminal_test

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/synth"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// healthSent is the terminal's status reports among what it sent, as
// "health [faults]".
func healthSent(ms []protocol.Message) []string {
	var out []string
	for _, m := range ms {
		if m.Type == protocol.TypeStatus {
			out = append(out, fmt.Sprint(m.Health, " ", m.Faults))
		}
	}
	return out
}

// TestHealthReport: the terminal tells the server its health — right after
// each login and whenever it changes, never twice the same on one
// connection — naming the parts at fault, so that the parent's page says
// "needs repair (camera)" where it said "online".
func TestHealthReport(t *testing.T) {
	tests := []struct {
		name string
		do   func(r *loopRig, camera *synth.Socket)
		want []string // after the report at login
	}{
		{"nothing happens: nothing more", func(r *loopRig, _ *synth.Socket) {
			time.Sleep(5 * time.Second)
		}, nil},
		{"the camera is pulled out, then put back", func(r *loopRig, camera *synth.Socket) {
			camera.Unplug()
			time.Sleep(time.Second) // the health tick
			r.expect(device.Fault, "camera out")
			time.Sleep(3 * time.Second) // still out: no second report
			camera.Replug()
			time.Sleep(time.Second)
			r.expect(device.Ready, "camera back")
		}, []string{"needs_repair [camera]", "ready []"}},
		{"the button sticks, then the camera goes too", func(r *loopRig, camera *synth.Socket) {
			r.stuck.Store(true)
			time.Sleep(1500 * time.Millisecond) // a health tick between the two
			camera.Unplug()
			time.Sleep(time.Second)
		}, []string{"needs_repair [button]", "needs_repair [button camera]"}},
		{"a call rings and is declined: still ready", func(r *loopRig, _ *synth.Socket) {
			inRinging(r)
			r.press(device.LongPress)
		}, nil},
		{"a new connection is told again", func(r *loopRig, _ *synth.Socket) {
			r.srv.Conn().Close()
			r.settle()
			time.Sleep(time.Minute) // past any backoff
		}, []string{"ready []"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newParent(t)
			store := newStore(t, p)
			synctest.Test(t, func(t *testing.T) {
				camera := &synth.Socket{}
				r := startLoopConfig(t, store, p, terminal.Config{LoopbackOnly: true,
					Capture: media.CaptureConfig{Profile: media.LowData, Camera: media.SourceSynthetic, SyntheticSocket: camera}})
				if got := healthSent(r.srv.Conn().TakeSent()); fmt.Sprint(got) != fmt.Sprint([]string{"ready []"}) {
					t.Fatalf("after login the terminal reported %q, want ready", got)
				}
				first := r.srv.Conn()
				tt.do(r, camera)
				r.settle()
				got := healthSent(first.TakeSent())
				if c := r.srv.Conn(); c != first {
					got = append(got, healthSent(c.TakeSent())...)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("reported %q, want %q", got, tt.want)
				}
			})
		})
	}
}

// TestChildCues: what the child hears and sees at the moments issue 13
// named: a pairing stored, a call that reaches nobody, a call or ring that
// drops.
func TestChildCues(t *testing.T) {
	tests := []struct {
		name    string
		from    func(*loopRig)
		do      func(*loopRig)
		pattern device.Pattern
		cue     string
	}{
		{"the server could ring nobody: unreachable, not no answer", inCalling, func(r *loopRig) {
			r.deliver(protocol.Message{Type: protocol.TypeHangup, CallID: r.ring.CallID, Reason: protocol.ReasonUnavailable})
		}, device.Unreachable, "unreachable"},
		{"unreachable shows a few seconds, then ready", inCalling, func(r *loopRig) {
			r.deliver(protocol.Message{Type: protocol.TypeHangup, CallID: r.ring.CallID, Reason: protocol.ReasonUnavailable})
			time.Sleep(6 * time.Second)
		}, device.Ready, "unreachable"},
		{"the parent did not answer: no answer", inCalling, func(r *loopRig) {
			r.deliver(protocol.Message{Type: protocol.TypeHangup, CallID: r.ring.CallID, Reason: protocol.ReasonNoAnswer})
		}, device.NoAnswer, "no_answer"},
		{"the link drops while the parent's call rings: the ring drops", inRinging, func(r *loopRig) {
			r.srv.Refuse(errors.New("unreachable"))
			r.srv.Conn().Close()
		}, device.Offline, "dropped"},
		{"the button sticks while the parent's call rings: dropped, needs repair", inRinging, func(r *loopRig) {
			r.stuck.Store(true)
			time.Sleep(time.Second)
		}, device.Fault, "dropped"},
		{"the parent gives up ringing: the ordinary hang-up", inRinging, func(r *loopRig) {
			r.deliver(protocol.Message{Type: protocol.TypeHangup, CallID: c1, Reason: protocol.ReasonCancel})
		}, device.Ready, "hangup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newParent(t)
			store := newStore(t, p)
			synctest.Test(t, func(t *testing.T) {
				r := startLoop(t, store, p)
				tt.from(r)
				tt.do(r)
				r.expect(tt.pattern, tt.name)
				if c := r.term.Status().LastCue; c != tt.cue {
					t.Errorf("last sound %q, want %q", c, tt.cue)
				}
			})
		})
	}
}
