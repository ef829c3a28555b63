package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/logbuf"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestRefusedOffer: the server refuses the terminal's offer (here the
// second call's is over the socket's rate), so the parent never sees
// it and no answer can come. The child's call fails at once — the phone
// hears "failed", the child the dropped sound, the terminal is ready for
// the next press — instead of showing "connecting" until ConnectTimeout.
// An offer made while the phone rings (the phone prepared the call) is
// dropped when refused, and the accept makes a fresh one (refused too
// here, so that call fails at once as well).
func TestRefusedOffer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare bool
	}{
		{"the call's offer", false},
		{"the offer made while the phone rings", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log logbuf.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			srv := rendezvoustest.NewServer(t, func(c *rendezvous.Config) {
				// One offer or answer a socket, never refilled: the
				// first call's offer takes the terminal's.
				c.Limits.SDP = rendezvous.Rate{Burst: 1}
			})
			r := startTerminal(t, ctx, srv, terminalOpts{wsURL: srv.WSURL, profile: media.LowData, logTo: &log})
			ph := r.phoneWith(r.pair(), media.LowData, nil, func(c *PhoneConfig) { c.Prepare = tc.prepare })
			first := r.childCalls(t, ph)
			if err := ph.Hangup(r.ctx, first.CallID, protocol.ReasonHangup); err != nil {
				t.Fatal(err)
			}
			r.waitIdle("ready after the first call")
			if err := r.board.Press(r.ctx); err != nil {
				t.Fatal(err)
			}
			ring := await(t, ph, protocol.TypeRing)
			if tc.prepare {
				eventually(t, step, "the terminal drops the prepared connection whose offer was refused", func() bool {
					return log.Has("dropping the prepared call connection", ring.CallID, "refused")
				})
			}
			if err := ph.Accept(r.ctx, ring.CallID); err != nil {
				t.Fatal(err)
			}
			accepted := time.Now()
			// Half of ConnectTimeout: the call must not wait for it. A
			// bound on a hang, not a figure: the refusal comes back at once.
			limit := call.ConnectTimeout / 2
			deadline := time.After(limit)
			for hung := false; !hung; {
				select {
				case m := <-ph.Events():
					if m.Type == protocol.TypeOffer {
						t.Errorf("the phone got an offer the server should have refused")
					}
					if m.Type != protocol.TypeHangup || m.CallID != ring.CallID {
						continue
					}
					if m.Reason != protocol.ReasonFailed {
						t.Errorf("hang-up reason %q, want %q", m.Reason, protocol.ReasonFailed)
					}
					hung = true
				case <-deadline:
					t.Fatalf("no hang-up %v after the accept of a call whose offer the server refused (terminal %+v)", limit, r.term.Status())
				}
			}
			t.Logf("the call failed %v after the accept", time.Since(accepted).Round(time.Millisecond))
			r.waitIdle("ready again after the failed call")
			if c := r.term.Status().LastCue; c != string(call.CueDropped) {
				t.Errorf("last sound %q, want %q", c, call.CueDropped)
			}
			if !log.Has("the server refused the call's offer", ring.CallID) {
				t.Errorf("the terminal did not log why the call failed")
			}
		})
	}
}
