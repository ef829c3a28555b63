package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestSplitPairingHeals: the split the outside fault-injection run found
// (issue 11) — the server and the phone paired, the terminal's state file
// with no parent, as a terminal killed between the server's commit and its
// own write was left — heals at the terminal's next login: the terminal
// says it has no parent, the server drops its stale record, the phone's
// credential is refused (the page deletes it and asks for the label), and
// the family pairs again without a factory reset. Before, the terminal
// refused the parent's rings and the server refused a new pairing
// (already_paired) for ever.
func TestSplitPairingHeals(t *testing.T) {
	state := filepath.Join(t.TempDir(), "terminal.db")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	r := startTerminal(t, ctx, srv, terminalOpts{statePath: state})
	old := r.pair()
	r.stop()
	dropParent(t, state)

	r = startTerminal(t, ctx, srv, terminalOpts{statePath: state})
	if _, err := r.store.Parent(); !errors.Is(err, terminalstore.ErrNotPaired) {
		t.Fatalf("the split state: terminal parent err = %v, want ErrNotPaired", err)
	}
	eventually(t, step, "the server drops the pairing the terminal does not have", func() bool {
		_, err := srv.Registry().ParentOf(r.term.DeviceID())
		return errors.Is(err, rendezvous.ErrNotFound)
	})
	sctx, scancel := context.WithTimeout(ctx, step)
	defer scancel()
	_, err := rendezvoustest.DialPaired(sctx, srv.WSURL, old)
	var ref *rendezvoustest.RefusedError
	if !errors.As(err, &ref) || ref.Code != protocol.ErrCodeAuthFailed {
		t.Fatalf("the old phone's login: %v; want auth_failed (so the page forgets it)", err)
	}
	cred := r.pair()
	if cred.ParentID == old.ParentID {
		t.Fatal("paired again with the dead parent ID")
	}
	// The audit log tells the healing from a reset.
	want := []string{"paired " + old.ParentID, "pairing_dropped " + old.ParentID, "paired " + cred.ParentID}
	if events := auditEvents(t, srv); !slices.Equal(events, want) {
		t.Fatalf("audit log %q, want %q", events, want)
	}
}

// dropParent removes the parent from a stopped terminal's state file and
// nothing else (no pending unpair): what the old pairing left when the
// terminal died before its write.
func dropParent(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("pairing"))
		if b == nil || b.Get([]byte("parent")) == nil {
			return errors.New("no parent to drop")
		}
		return b.Delete([]byte("parent"))
	})
	if err != nil {
		t.Fatal(err)
	}
}
