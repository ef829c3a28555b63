package rendezvous_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/registrytest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	st := try(rendezvous.OpenStore(path)).must(t)
	now := time.Unix(1_800_000_000, 0).UTC()
	dev := protocol.NewID()
	if err := st.CreatePairing(dev, protocol.NewID(), make([]byte, 32), "", now); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("pairing an unregistered device: %v, want ErrNotFound", err)
	}
	if first := try(st.RegisterDevice(dev, []byte("key"), "", now)).must(t); !first {
		t.Fatal("first registration not reported as first")
	}
	if _, err := st.RegisterDevice(dev, []byte("other key"), "", now); !errors.Is(err, rendezvous.ErrKeyMismatch) {
		t.Fatalf("re-registering with another key: %v, want ErrKeyMismatch", err)
	}
	p1, p2 := protocol.NewID(), protocol.NewID()
	check(t, st.CreatePairing(dev, p1, make([]byte, 32), "", now))
	if err := st.CreatePairing(dev, p2, make([]byte, 32), "", now); !errors.Is(err, rendezvous.ErrAlreadyPaired) {
		t.Fatalf("second pairing: %v, want ErrAlreadyPaired", err)
	}
	if _, err := st.Parent(p2); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("refused pairing left parent %s behind: %v", p2, err)
	}
	// The log keeps the newest MaxCallLog, newest first.
	for i := range rendezvous.MaxCallLog + 30 {
		check(t, st.PutCall(p1, protocol.CallRecord{CallID: protocol.NewID(), Direction: protocol.DirFromTerminal,
			StartedAt: now.Add(time.Duration(i) * time.Minute), Outcome: protocol.OutcomeMissed}))
	}
	log := try(st.CallLog(p1, true)).must(t)
	if len(log) != rendezvous.MaxCallLog || !log[0].StartedAt.Equal(now.Add(79*time.Minute)) {
		t.Fatalf("call log has %d entries starting %v", len(log), log[0].StartedAt)
	}
	check(t, st.Close())

	st = try(rendezvous.OpenStore(path)).must(t)
	defer st.Close()
	if got := try(st.ParentOf(dev)).must(t); got != p1 {
		t.Fatalf("after reopen paired with %s, want %s", got, p1)
	}
	for _, r := range try(st.CallLog(p1, false)).must(t) {
		if !r.Seen {
			t.Fatalf("call %s not seen after reading the log with markSeen", r.CallID)
		}
	}
}

// TestStoreRegistry: the bbolt store keeps the registry's contract.
func TestStoreRegistry(t *testing.T) {
	registrytest.Run(t, func(t *testing.T, dir string) rendezvous.Registry {
		return try(rendezvous.OpenStore(filepath.Join(dir, rendezvous.RegistryFile))).must(t)
	})
}
