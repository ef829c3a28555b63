package rendezvous_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestPendingPairing: the server's half of the two-phase pairing. A pending
// pairing survives a restart, is found by its terminal and by the parent ID
// it becomes, and ends only by the terminal's word: committed (once; a
// repeated complete is no error) or rolled back; a factory reset drops it.
func TestPendingPairing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	st := try(rendezvous.OpenStore(path)).must(t)
	now := time.Unix(1_800_000_000, 0).UTC()
	dev := protocol.NewID()
	try(st.RegisterDevice(dev, []byte("key"), "", now)).must(t)
	pend := rendezvous.PendingPairing{PairID: protocol.NewID(), TokenHash: make([]byte, 32), PublicKey: "UA", CreatedAt: now}
	check(t, st.PutPendingPairing(dev, pend))
	check(t, st.Close())
	st = try(rendezvous.OpenStore(path)).must(t)
	defer st.Close()

	if got := try(st.PendingOf(dev)).must(t); got.PairID != pend.PairID {
		t.Fatalf("pending after reopen = %+v, want %s", got, pend.PairID)
	}
	if d, _, err := st.PendingParent(pend.PairID); err != nil || d != dev {
		t.Fatalf("PendingParent = %s, %v; want %s", d, err, dev)
	}
	if _, err := st.ParentOf(dev); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("a pending pairing is not a pairing: ParentOf err = %v", err)
	}
	if _, _, err := st.CompletePairing(dev, protocol.NewID(), now); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("completing another pair ID: %v, want ErrNotFound", err)
	}
	p, committed, err := st.CompletePairing(dev, pend.PairID, now)
	if err != nil || !committed || p.PublicKey != "UA" || p.DeviceID != dev {
		t.Fatalf("CompletePairing = %+v, %v, %v", p, committed, err)
	}
	if _, committed, err := st.CompletePairing(dev, pend.PairID, now); err != nil || committed {
		t.Fatalf("a repeated complete = %v, %v; want no error, not committed again", committed, err)
	}
	if got := try(st.ParentOf(dev)).must(t); got != pend.PairID {
		t.Fatalf("paired with %s, want the pair ID %s", got, pend.PairID)
	}
	if _, err := st.PendingOf(dev); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("pending left after the commit: %v", err)
	}
	if _, _, err := st.PendingParent(pend.PairID); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("pending parent left after the commit: %v", err)
	}
	if err := st.PutPendingPairing(dev, rendezvous.PendingPairing{PairID: protocol.NewID()}); !errors.Is(err, rendezvous.ErrAlreadyPaired) {
		t.Fatalf("pending for a paired terminal: %v, want ErrAlreadyPaired", err)
	}

	// Rolled back by the terminal; dropped by a factory reset.
	dev2 := protocol.NewID()
	try(st.RegisterDevice(dev2, []byte("key2"), "", now)).must(t)
	a, b := protocol.NewID(), protocol.NewID()
	check(t, st.PutPendingPairing(dev2, rendezvous.PendingPairing{PairID: a}))
	if dropped := try(st.DropPendingPairing(dev2, b)).must(t); dropped {
		t.Fatal("rolling back another pair ID dropped the pending one")
	}
	if dropped := try(st.DropPendingPairing(dev2, a)).must(t); !dropped {
		t.Fatal("the roll-back dropped nothing")
	}
	if _, _, err := st.CompletePairing(dev2, a, now); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("completing a rolled-back pairing: %v, want ErrNotFound", err)
	}
	check(t, st.PutPendingPairing(dev2, rendezvous.PendingPairing{PairID: b}))
	try(st.Unpair(dev2)).must(t)
	if _, err := st.PendingOf(dev2); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("pending left after a factory reset: %v", err)
	}
}
