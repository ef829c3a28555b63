package terminal_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/speaker/speakertest"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/internal/terminal/terminaltest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// pairSent is one pairing message the terminal sent, as a table writes it.
type pairSent struct{ typ, pairID, reason string }

func pairSentOf(ms []protocol.Message) []pairSent {
	var out []pairSent
	for _, m := range ms {
		if m.Type == protocol.TypeStatus {
			continue // its health, after every login (TestHealthReport)
		}
		out = append(out, pairSent{m.Type, m.PairID, m.Reason})
	}
	return out
}

// runTerminal runs a terminal on store against srv in the current synctest
// bubble until the test ends.
func runTerminal(t *testing.T, store *terminalstore.Store, srv *terminaltest.Server, buttons chan device.ButtonEvent,
	fault func(terminal.PairFaultPoint) bool) *terminal.Terminal {
	t.Helper()
	term, err := terminal.New(terminal.Config{LoopbackOnly: true}, terminal.Deps{
		Store: store, Buttons: buttons, LEDs: &terminaltest.LEDs{}, Speaker: &speakertest.Speaker{},
		Dial: srv.Dial, PairFault: fault,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := term.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	synctest.Wait()
	return term
}

func unpairedStore(t *testing.T) *terminalstore.Store {
	t.Helper()
	store, err := terminalstore.Open(filepath.Join(t.TempDir(), "terminal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rendezvoustest.Provision(t, store)
	return store
}

// TestReconcilePairing: at login the terminal settles every difference
// between its pairing and the server's (the welcome's parent_id and
// pending pair_id), and its own store never changes on the server's word.
// Before, it logged "pairing differs" and sent nothing, so a split stayed
// split.
func TestReconcilePairing(t *testing.T) {
	const other = "cccccccccccccccccccccccccc"
	yes, no := true, false
	tests := []struct {
		name    string
		paired  bool // the terminal has the parent p
		welcome func(w *protocol.Message, p string)
		want    func(p string) []pairSent
	}{
		{"both paired alike: nothing", true,
			func(w *protocol.Message, p string) { w.Paired, w.ParentID = &yes, p },
			func(string) []pairSent { return nil }},
		{"neither paired: nothing", false,
			func(w *protocol.Message, p string) { w.Paired = &no },
			func(string) []pairSent { return nil }},
		{"pending pairing the terminal stored: completed", true,
			func(w *protocol.Message, p string) { w.Paired, w.PairID = &no, p },
			func(p string) []pairSent { return []pairSent{{protocol.TypePairComplete, p, ""}} }},
		{"pending pairing the terminal never stored: rolled back", false,
			func(w *protocol.Message, p string) { w.Paired, w.PairID = &no, other },
			func(string) []pairSent { return []pairSent{{protocol.TypePairReject, other, protocol.ReasonNotPaired}} }},
		{"pending pairing not the terminal's parent: rolled back", true,
			func(w *protocol.Message, p string) { w.Paired, w.PairID = &no, other },
			func(string) []pairSent { return []pairSent{{protocol.TypePairReject, other, protocol.ReasonNotPaired}} }},
		{"server paired, terminal not (the issue 11 split): server told to drop it", false,
			func(w *protocol.Message, p string) { w.Paired, w.ParentID = &yes, other },
			func(string) []pairSent { return []pairSent{{protocol.TypeUnpair, "", protocol.ReasonNotPaired}} }},
		{"server paired with another parent: server told to drop it", true,
			func(w *protocol.Message, p string) { w.Paired, w.ParentID = &yes, other },
			func(string) []pairSent { return []pairSent{{protocol.TypeUnpair, "", protocol.ReasonNotPaired}} }},
		{"server lost the terminal's parent: logged, kept", true,
			func(w *protocol.Message, p string) { w.Paired = &no },
			func(string) []pairSent { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newParent(t)
			store := unpairedStore(t)
			if tt.paired {
				if err := p.PairWith(store); err != nil {
					t.Fatal(err)
				}
			}
			synctest.Test(t, func(t *testing.T) {
				srv := terminaltest.NewServer(false, false)
				srv.EditWelcome(func(w *protocol.Message) { tt.welcome(w, p.ID) })
				term := runTerminal(t, store, srv, make(chan device.ButtonEvent), nil)
				if got, want := pairSentOf(srv.Conn().Sent()), tt.want(p.ID); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("sent %v, want %v", got, want)
				}
				stored, err := store.Parent()
				switch {
				case tt.paired && (err != nil || stored.ParentID != p.ID):
					t.Errorf("stored parent = %+v, %v; want %s kept", stored, err, p.ID)
				case !tt.paired && !errors.Is(err, terminalstore.ErrNotPaired):
					t.Errorf("stored parent = %+v, %v; want none (the server never gives the terminal a parent)", stored, err)
				}
				if s := term.Status(); s.Paired != tt.paired {
					t.Errorf("status paired = %v, want %v", s.Paired, tt.paired)
				}
			})
		})
	}
}

// TestPairStoresBeforeComplete: the terminal says pair_complete, on which
// the server commits, only once the parent is in its state file; a
// terminal stopped before that has stored nothing and sent no complete.
func TestPairStoresBeforeComplete(t *testing.T) {
	for _, stopAt := range []terminal.PairFaultPoint{"", terminal.PairFaultConfirmReceived, terminal.PairFaultParentStored} {
		t.Run(fmt.Sprintf("stopped at %q", stopAt), func(t *testing.T) {
			store := unpairedStore(t)
			secret, err := store.PairingSecret()
			if err != nil {
				t.Fatal(err)
			}
			synctest.Test(t, func(t *testing.T) {
				srv := terminaltest.NewServer(false, false)
				buttons := make(chan device.ButtonEvent)
				var seen []string // at each step: stored parent, complete sent
				var conn *terminaltest.Conn
				fault := func(step terminal.PairFaultPoint) bool {
					p, _ := store.Parent()
					complete := false
					for _, m := range conn.Sent() {
						complete = complete || m.Type == protocol.TypePairComplete
					}
					seen = append(seen, fmt.Sprintf("%s: parent %q complete %v", step, p.ParentID, complete))
					return step == stopAt
				}
				term := runTerminal(t, store, srv, buttons, fault)
				conn = srv.Conn()
				pairID := protocol.NewID()
				h, err := pairing.StartParent(secret, term.DeviceID())
				if err != nil {
					t.Fatal(err)
				}
				r := h.Request()
				conn.Deliver(protocol.Message{Type: protocol.TypePairRequest, PairID: pairID, DeviceID: term.DeviceID(),
					Nonce: r.Nonce, EphemeralKey: r.EphemeralKey, Proof: r.Proof})
				synctest.Wait()
				buttons <- device.ButtonEvent{Kind: device.Press}
				synctest.Wait()
				var acc protocol.Message
				for _, m := range conn.Sent() {
					if m.Type == protocol.TypePairAccept {
						acc = m
					}
				}
				if _, err := h.Accept(pairID, pairing.Accept{EphemeralKey: acc.EphemeralKey, PublicKey: acc.PublicKey,
					Fingerprint: acc.Fingerprint, Signature: acc.Signature, Proof: acc.Proof}); err != nil {
					t.Fatalf("the terminal's accept: %v", err)
				}
				key, err := pairing.NewKey()
				if err != nil {
					t.Fatal(err)
				}
				c, err := h.Confirm(key)
				if err != nil {
					t.Fatal(err)
				}
				conn.Deliver(protocol.Message{Type: protocol.TypePairConfirm, PairID: pairID, PublicKey: c.PublicKey, Signature: c.Signature, Proof: c.Proof})
				synctest.Wait()

				want := []string{
					fmt.Sprintf("%s: parent %q complete false", terminal.PairFaultConfirmReceived, ""),
					fmt.Sprintf("%s: parent %q complete false", terminal.PairFaultParentStored, pairID),
					fmt.Sprintf("%s: parent %q complete true", terminal.PairFaultCompleteSent, pairID),
				}
				switch stopAt {
				case terminal.PairFaultConfirmReceived:
					want = want[:1]
				case terminal.PairFaultParentStored:
					want = want[:2]
				}
				if fmt.Sprint(seen) != fmt.Sprint(want) {
					t.Errorf("steps:\n%q\nwant\n%q", seen, want)
				}
				// The child hears "paired" once the pairing is stored, and
				// not before.
				if cue, done := term.Status().LastCue, stopAt == ""; (cue == "paired") != done {
					t.Errorf("last sound %q with the pairing stored %v; want the paired sound exactly when it is", cue, done)
				}
			})
		})
	}
}
