package terminal

import (
	"context"
	"math/big"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// nopConn is a connection that takes every message and never receives.
type nopConn struct{}

func (nopConn) Welcome() protocol.Message { return protocol.Message{} }
func (nopConn) Send(protocol.Message)     {}
func (nopConn) Receive(ctx context.Context) (protocol.Message, error) {
	<-ctx.Done()
	return protocol.Message{}, ctx.Err()
}
func (nopConn) Close() {}

// TestActionsDoNotStep: an action that fails raises its event for the
// step to run next; do itself never runs the machine, so the machine is
// unchanged after do and the event waits in the queue.
func TestActionsDoNotStep(t *testing.T) {
	const c1 = "aaaaaaaaaaaaaaaaaaaaaaaaaa"
	calling := call.Machine{State: call.Calling, Online: true, Paired: true, CallID: c1, Outgoing: true}
	connecting := call.Machine{State: call.Connecting, Online: true, Paired: true, CallID: c1, Answered: true}
	tests := []struct {
		name      string
		m         call.Machine
		conn      ServerConn
		brokenKey bool
		act       call.Action
		raised    call.Event
	}{
		{"a ring that cannot be signed", calling, nopConn{}, true, call.SendRing{CallID: c1}, call.SignFailed{CallID: c1}},
		{"an accept with no verified ring", connecting, nopConn{}, false, call.SendAccept{CallID: c1}, call.SignFailed{CallID: c1}},
		{"media with no connection", connecting, nil, false, call.StartMedia{CallID: c1, Cue: call.CueConnected}, call.MediaFailed{CallID: c1}},
		{"media for a call not signed both ways", connecting, nopConn{}, false, call.StartMedia{CallID: c1, Cue: call.CueConnected}, call.MediaFailed{CallID: c1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := terminalstore.Open(filepath.Join(t.TempDir(), "terminal.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			rendezvoustest.Provision(t, store)
			term, err := New(Config{ServerURL: "ws://127.0.0.1:9/ws", LoopbackOnly: true}, Deps{Store: store, LEDs: &recordingLEDs{}})
			if err != nil {
				t.Fatal(err)
			}
			defer term.iceNet.Close()
			if tt.brokenKey {
				broken := *term.key
				//lint:ignore SA1019 a key that cannot sign is what this test needs; D is the only way to make one
				broken.D = new(big.Int)
				term.key = &broken
			}
			term.m, term.conn = tt.m, tt.conn
			term.do(tt.act)
			if !reflect.DeepEqual(term.m, tt.m) {
				t.Errorf("do(%T) ran the machine: %+v, want %+v", tt.act, term.m, tt.m)
			}
			if want := []call.Event{tt.raised}; !reflect.DeepEqual(term.queued, want) {
				t.Errorf("queued %#v, want %#v", term.queued, want)
			}
		})
	}
}
