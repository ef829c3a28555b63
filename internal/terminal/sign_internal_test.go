package terminal

import (
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// recordingLEDs remembers every pattern shown.
type recordingLEDs struct{ shown []device.Pattern }

func (l *recordingLEDs) Show(p device.Pattern) error { l.shown = append(l.shown, p); return nil }

// TestRingThatCannotBeSignedFailsAtOnce: when the terminal cannot sign its
// ring, nothing is sent and the child sees "no answer" at once — with its
// sound last, after the press's own "calling" — instead of "calling" for
// the 45 s ring timeout. The call is logged as failed.
func TestRingThatCannotBeSignedFailsAtOnce(t *testing.T) {
	store, err := terminalstore.Open(filepath.Join(t.TempDir(), "terminal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rendezvoustest.Provision(t, store)
	parentKey, _ := pairing.NewKey()
	enc, _ := pairing.EncodePublicKey(&parentKey.PublicKey)
	if err := store.SetParent(terminalstore.Parent{ParentID: protocol.NewID(), PairedAt: time.Now(), PublicKey: enc}); err != nil {
		t.Fatal(err)
	}
	leds := &recordingLEDs{}
	term, err := New(Config{ServerURL: "ws://127.0.0.1:9/ws", LoopbackOnly: true}, Deps{Store: store, LEDs: leds})
	if err != nil {
		t.Fatal(err)
	}
	defer term.iceNet.Close()
	term.step(call.Connected{Paired: true})
	if term.m.State != call.Idle {
		t.Fatalf("state %v after login, want idle", term.m.State)
	}
	// A key that cannot sign (what a damaged key store would give).
	broken := *term.key
	//lint:ignore SA1019 a key that cannot sign is what this test needs; D is the only way to make one
	broken.D = new(big.Int)
	term.key = &broken

	term.button(device.ButtonEvent{Kind: device.Press})
	if term.m.State != call.NoAnswer {
		t.Fatalf("state %v after a ring that could not be signed, want no_answer at once", term.m.State)
	}
	if last := leds.shown[len(leds.shown)-1]; last != device.NoAnswer {
		t.Errorf("lights show %q, want %q", last, device.NoAnswer)
	}
	if c := term.lastCue; c != call.CueNoAnswer {
		t.Errorf("last sound %q, want %q (the calling sound must not play after it)", c, call.CueNoAnswer)
	}
	calls, err := store.Calls(1)
	if err != nil || len(calls) != 1 || calls[0].Outcome != protocol.OutcomeFailed {
		t.Errorf("call log %+v, %v; want one failed call", calls, err)
	}
}
