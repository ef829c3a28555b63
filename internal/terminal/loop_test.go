package terminal_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/speaker/speakertest"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/internal/terminal/terminaltest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// loopRig is a terminal on fakes: a fake server connection, a paired
// parent, recording lights and speaker, a button channel. It runs inside a
// synctest bubble, so settle (synctest.Wait) proves the loop has handled
// everything it was given, and time moves only when the test sleeps.
type loopRig struct {
	t       *testing.T
	term    *terminal.Terminal
	srv     *terminaltest.Server
	parent  *terminaltest.Parent
	leds    *terminaltest.LEDs
	buttons chan device.ButtonEvent
	stuck   atomic.Bool
	// ring is the last ring message the terminal sent (press).
	ring protocol.Message
}

// newStore is a provisioned state file with p as the paired parent.
func newStore(t *testing.T, p *terminaltest.Parent) *terminalstore.Store {
	t.Helper()
	store, err := terminalstore.Open(filepath.Join(t.TempDir(), "terminal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rendezvoustest.Provision(t, store)
	if err := p.PairWith(store); err != nil {
		t.Fatal(err)
	}
	return store
}

// startLoop runs a paired terminal in the current synctest bubble until the
// test ends, and waits for it to show ready.
func startLoop(t *testing.T, store *terminalstore.Store, p *terminaltest.Parent) *loopRig {
	t.Helper()
	return startLoopConfig(t, store, p, terminal.Config{LoopbackOnly: true})
}

// startLoopConfig is startLoop with the terminal's configuration.
func startLoopConfig(t *testing.T, store *terminalstore.Store, p *terminaltest.Parent, cfg terminal.Config) *loopRig {
	t.Helper()
	r := &loopRig{t: t, srv: terminaltest.NewServer(true, true), parent: p, leds: &terminaltest.LEDs{},
		buttons: make(chan device.ButtonEvent)}
	term, err := terminal.New(cfg, terminal.Deps{
		Store: store, Buttons: r.buttons, LEDs: r.leds, Speaker: &speakertest.Speaker{},
		ButtonStuck: r.stuck.Load, Dial: r.srv.Dial,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.term = term
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := term.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	r.expect(device.Ready, "after login")
	return r
}

// settle waits until the loop has handled everything it was given.
func (r *loopRig) settle() { synctest.Wait() }

func (r *loopRig) press(k device.ButtonKind) {
	r.buttons <- device.ButtonEvent{Kind: k}
	r.settle()
}

// deliver hands the terminal a message from the server.
func (r *loopRig) deliver(m protocol.Message) {
	r.srv.Conn().Deliver(m)
	r.settle()
}

func (r *loopRig) parentRing(callID string) protocol.Message {
	m, err := r.parent.Ring(callID)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func (r *loopRig) expect(p device.Pattern, when string) {
	r.t.Helper()
	r.settle()
	if got := r.leds.Last(); got != p {
		r.t.Fatalf("%s: lights %q, want %q (status %+v)", when, got, p, r.term.Status())
	}
	if got := r.term.Status().Pattern; got != string(p) {
		r.t.Fatalf("%s: status pattern %q, want %q", when, got, p)
	}
}

// sent is one message the terminal sent, as a table writes it.
type sent struct{ typ, callID, reason string }

func (s sent) String() string { return fmt.Sprintf("%s %s %s", s.typ, s.callID, s.reason) }

func sentOf(ms []protocol.Message) []sent {
	var out []sent
	for _, m := range ms {
		out = append(out, sent{m.Type, m.CallID, m.Reason})
	}
	return out
}

const (
	c1 = "aaaaaaaaaaaaaaaaaaaaaaaaaa"
	c2 = "bbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// States a table row starts from, each reached the way a child and a parent
// reach it.
var (
	inIdle    = func(r *loopRig) {}
	inCalling = func(r *loopRig) {
		r.press(device.Press)
		for _, m := range r.srv.Conn().Sent() {
			if m.Type == protocol.TypeRing {
				r.ring = m
			}
		}
		if r.ring.Nonce == "" {
			r.t.Fatal("a press sent no signed ring")
		}
		r.expect(device.Calling, "after a press")
	}
	inRinging = func(r *loopRig) {
		r.ring = r.parentRing(c1)
		r.deliver(r.ring)
		r.expect(device.Ringing, "after the parent's ring")
	}
	inNoAnswer = func(r *loopRig) {
		inCalling(r)
		r.deliver(protocol.Message{Type: protocol.TypeHangup, CallID: r.ring.CallID, Reason: protocol.ReasonDecline})
		r.expect(device.NoAnswer, "after the parent declined")
	}
	inFault = func(r *loopRig) {
		r.stuck.Store(true)
		time.Sleep(time.Second) // the health tick
		r.expect(device.Fault, "with the button stuck")
	}
)

// TestRingFromParent: the paired parent's signed ring, in each state of
// the terminal: what the terminal sends back and what the lights show.
func TestRingFromParent(t *testing.T) {
	tests := []struct {
		name    string
		from    func(*loopRig)
		want    []sent
		pattern device.Pattern
	}{
		{"idle: rings", inIdle, nil, device.Ringing},
		{"no answer showing: rings", inNoAnswer, nil, device.Ringing},
		{"calling: busy, our call goes on", inCalling, []sent{{protocol.TypeHangup, c2, protocol.ReasonBusy}}, device.Calling},
		{"ringing: busy, the first ring goes on", inRinging, []sent{{protocol.TypeHangup, c2, protocol.ReasonBusy}}, device.Ringing},
		{"needs repair: refused at once, the parent's page hears failed", inFault, []sent{{protocol.TypeHangup, c2, protocol.ReasonFailed}}, device.Fault},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newParent(t)
			store := newStore(t, p)
			synctest.Test(t, func(t *testing.T) {
				r := startLoop(t, store, p)
				tt.from(r)
				r.srv.Conn().TakeSent()
				r.deliver(r.parentRing(c2))
				if got := sentOf(r.srv.Conn().TakeSent()); fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("sent %v, want %v", got, tt.want)
				}
				r.expect(tt.pattern, "after the ring")
			})
		})
	}
}

// TestUntrustedMessages: what the server relays but the paired parent did
// not sign, or that belongs to no call of ours, changes nothing the child
// sees; a ring is declined so the caller stops waiting.
func TestUntrustedMessages(t *testing.T) {
	tests := []struct {
		name    string
		from    func(*loopRig)
		msg     func(*loopRig) protocol.Message
		want    []sent
		pattern device.Pattern
	}{
		{"a stranger's ring is declined", inIdle, func(r *loopRig) protocol.Message {
			m, err := newParent(r.t).Ring(c2)
			if err != nil {
				r.t.Fatal(err)
			}
			return m
		}, []sent{{protocol.TypeHangup, c2, protocol.ReasonDecline}}, device.Ready},
		{"an unsigned ring is declined", inIdle, func(r *loopRig) protocol.Message {
			return protocol.Message{Type: protocol.TypeRing, CallID: c2, Nonce: "n"}
		}, []sent{{protocol.TypeHangup, c2, protocol.ReasonDecline}}, device.Ready},
		{"a replayed ring is declined", func(r *loopRig) {
			r.ring = r.parentRing(c2)
			r.deliver(r.ring)
			r.deliver(protocol.Message{Type: protocol.TypeHangup, CallID: c2})
			r.expect(device.Ready, "after the parent gave up")
		}, func(r *loopRig) protocol.Message { return r.ring },
			[]sent{{protocol.TypeHangup, c2, protocol.ReasonDecline}}, device.Ready},
		{"a forged accept is ignored", inCalling, func(r *loopRig) protocol.Message {
			m, err := newParent(r.t).Accept(r.ring)
			if err != nil {
				r.t.Fatal(err)
			}
			return m
		}, nil, device.Calling},
		{"the parent's accept of another call is ignored", inCalling, func(r *loopRig) protocol.Message {
			ring := r.ring
			ring.CallID = c2
			m, err := r.parent.Accept(ring)
			if err != nil {
				r.t.Fatal(err)
			}
			return m
		}, nil, device.Calling},
		{"a forged prepare makes no offer", inCalling, func(r *loopRig) protocol.Message {
			m, err := newParent(r.t).Prepare(r.ring)
			if err != nil {
				r.t.Fatal(err)
			}
			return m
		}, nil, device.Calling},
		{"an accept presented as a prepare makes no offer", inCalling, func(r *loopRig) protocol.Message {
			m, err := r.parent.Accept(r.ring)
			if err != nil {
				r.t.Fatal(err)
			}
			m.Type = protocol.TypePrepare
			return m
		}, nil, device.Calling},
		{"the parent's prepare of another call makes no offer", inCalling, func(r *loopRig) protocol.Message {
			ring := r.ring
			ring.CallID = c2
			m, err := r.parent.Prepare(ring)
			if err != nil {
				r.t.Fatal(err)
			}
			return m
		}, nil, device.Calling},
		// The parent's prepare of the call it rang (no nonce).
		{"a forged prepare of the parent's call makes no offer", inRinging, func(r *loopRig) protocol.Message {
			m, err := newParent(r.t).PrepareOwn(r.ring)
			if err != nil {
				r.t.Fatal(err)
			}
			return m
		}, nil, device.Ringing},
		{"the parent's prepare over another ring nonce makes no offer", inRinging, func(r *loopRig) protocol.Message {
			ring := r.ring
			ring.Nonce = pairing.NewNonce()
			m, err := r.parent.PrepareOwn(ring)
			if err != nil {
				r.t.Fatal(err)
			}
			return m
		}, nil, device.Ringing},
		{"a callee's prepare of the parent's call makes no offer", inRinging, func(r *loopRig) protocol.Message {
			m, err := r.parent.Prepare(r.ring)
			if err != nil {
				r.t.Fatal(err)
			}
			return m
		}, nil, device.Ringing},
		{"a caller's prepare of the child's call makes no offer", inCalling, func(r *loopRig) protocol.Message {
			m, err := r.parent.PrepareOwn(r.ring)
			if err != nil {
				r.t.Fatal(err)
			}
			return m
		}, nil, device.Calling},
		{"a ring presented as the parent's prepare makes no offer", inRinging, func(r *loopRig) protocol.Message {
			m := r.ring
			m.Type, m.Nonce = protocol.TypePrepare, ""
			return m
		}, nil, device.Ringing},
		{"an answer before our offer is ignored", inCalling, func(r *loopRig) protocol.Message {
			return protocol.Message{Type: protocol.TypeAnswer, CallID: r.ring.CallID, SDP: "v=0"}
		}, nil, device.Calling},
		{"a paired without a pairing of ours is ignored", inIdle, func(r *loopRig) protocol.Message {
			return protocol.Message{Type: protocol.TypePaired, PairID: "p", ParentID: "x"}
		}, nil, device.Ready},
		{"a pairing request outside the window is refused, unseen", inIdle, func(r *loopRig) protocol.Message {
			return protocol.Message{Type: protocol.TypePairRequest, PairID: "p", Nonce: "n", Source: "s"}
		}, []sent{{protocol.TypePairReject, "", "not_pairable"}}, device.Ready},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newParent(t)
			store := newStore(t, p)
			synctest.Test(t, func(t *testing.T) {
				r := startLoop(t, store, p)
				tt.from(r)
				cues := r.term.Status().LastCue
				m := tt.msg(r)
				r.srv.Conn().TakeSent()
				r.deliver(m)
				if got := sentOf(r.srv.Conn().TakeSent()); fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("sent %v, want %v", got, tt.want)
				}
				r.expect(tt.pattern, "after the message")
				if c := r.term.Status().LastCue; c != cues {
					t.Errorf("a sound (%q) played", c)
				}
			})
		})
	}
}

// TestHealth: what the loop shows when the connection or the hardware
// fails, and that it comes back.
func TestHealth(t *testing.T) {
	tests := []struct {
		name    string
		do      func(*loopRig)
		pattern device.Pattern
		online  bool
		fault   string
		calls   int // calls ended
	}{
		{"the connection closes: offline", func(r *loopRig) {
			r.srv.Refuse(errors.New("unreachable"))
			r.srv.Conn().Close()
		}, device.Offline, false, "", 0},
		{"the connection closes and comes back: ready", func(r *loopRig) {
			r.srv.Conn().Close()
			r.settle()
			time.Sleep(time.Minute) // past any backoff
		}, device.Ready, true, "", 0},
		{"the connection closes mid-call: offline, the call over", func(r *loopRig) {
			inCalling(r)
			r.srv.Refuse(errors.New("unreachable"))
			r.srv.Conn().Close()
		}, device.Offline, false, "", 1},
		{"the server refuses the unit's certificate: needs repair", func(r *loopRig) {
			r.srv.Refuse(fmt.Errorf("refused: %w", terminal.ErrAuthFailed))
			r.srv.Conn().Close()
			r.settle()
			time.Sleep(2 * time.Second) // the first retry (within 3×MinBackoff), then the health tick
		}, device.Fault, false, "device certificate refused by the server", 0},
		{"the button sticks: needs repair", inFault, device.Fault, true, "call button stuck", 0},
		{"the button is freed: ready", func(r *loopRig) {
			inFault(r)
			r.stuck.Store(false)
			time.Sleep(time.Second)
		}, device.Ready, true, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newParent(t)
			store := newStore(t, p)
			synctest.Test(t, func(t *testing.T) {
				r := startLoop(t, store, p)
				tt.do(r)
				r.expect(tt.pattern, tt.name)
				st := r.term.Status()
				if st.Online != tt.online || st.Fault != tt.fault || st.Calls != tt.calls || st.CallID != "" {
					t.Errorf("status online=%v fault=%q calls=%d call=%q, want online=%v fault=%q calls=%d and no call",
						st.Online, st.Fault, st.Calls, st.CallID, tt.online, tt.fault, tt.calls)
				}
			})
		})
	}
}

func newParent(t *testing.T) *terminaltest.Parent {
	t.Helper()
	p, err := terminaltest.NewParent()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
