package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/logbuf"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestServerCannotUnpairTerminal: a server that says "not paired" at login
// does not clear the terminal's parent, so a 3 s hold does not open the
// pairing window and someone with a photo of the label cannot pair a new
// parent in its place (before the fix the terminal took the server's word:
// it dropped to unpaired, the hold opened the window, one press paired a
// stranger). Only a factory reset on the unit removes a parent. The control:
// the parent's next ring still rings.
func TestServerCannotUnpairTerminal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	mm := newMITM(t, srv.WSURL)
	logs := &logbuf.Buffer{}
	r := startTerminal(t, ctx, srv, terminalOpts{wsURL: mm.wsURL(), logTo: logs})
	cred := r.pair()
	ph := r.phone(cred, media.LowData)
	label := r.term.PairingURL()

	mm.set(func(m *protocol.Message) {
		if m.Type == protocol.TypeWelcome {
			no := false
			m.Paired, m.PeerOnline = &no, &no
		}
	}, nil)
	mm.drop()
	eventually(t, step, "the terminal logs in again and hears it is not paired", func() bool {
		return logs.Has("the server has no record of this unit's parent")
	})
	r.waitIdle("ready after the new login")
	if st := r.term.Status(); !st.Paired || st.ParentID != cred.ParentID {
		t.Fatalf("after the server said not paired, the terminal shows paired=%v parent %q; want its parent %q kept", st.Paired, st.ParentID, cred.ParentID)
	}

	// The parent's 3 s hold, or a child's: no pairing window.
	if err := r.board.Hold(); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(3500 * time.Millisecond)
	for time.Now().Before(until) {
		if r.term.Status().Pairable || r.board.State().Pattern == device.Pairable {
			t.Fatal("a hold opened the pairing window of a paired terminal")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.board.Release(); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the button reads released", func() bool { return !r.board.Button().Pressed() })
	r.waitPattern(device.Ready, "ready after the hold")

	// Someone with a photo of the label asks to pair, through the server.
	deviceID, secret, err := pairing.ParseURL(label)
	if err != nil {
		t.Fatal(err)
	}
	h, err := pairing.StartParent(secret, deviceID)
	if err != nil {
		t.Fatal(err)
	}
	req := h.Request()
	pairID := protocol.NewID()
	mm.inject(protocol.Message{Type: protocol.TypePairRequest, PairID: pairID, DeviceID: deviceID, Nonce: req.Nonce,
		EphemeralKey: req.EphemeralKey, Proof: req.Proof})
	eventually(t, step, "the terminal refuses the pairing request", func() bool {
		m, ok := mm.lastSent(protocol.TypePairReject)
		return ok && m.PairID == pairID
	})
	if m, _ := mm.lastSent(protocol.TypePairReject); m.Reason != "not_pairable" {
		t.Errorf("pairing request refused with %q, want not_pairable", m.Reason)
	}

	// Control: an honest login, and the parent's ring rings.
	mm.set(nil, nil)
	mm.drop()
	eventually(t, step, "the parent is online again at the terminal", func() bool { return r.term.Status().PeerOnline })
	if _, err := ph.Ring(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ringing, "the parent's ring rings")
}
