package rendezvous

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tuanju/tuanju/internal/boltfile"
)

// RegistryEntry is one terminal as the registry holds it: its device
// record and its pairing (ParentID, Parent) or pending pairing, if any.
type RegistryEntry struct {
	ID       string
	Device   Device
	ParentID string // "" when the terminal has no parent
	Parent   Parent
	Pending  *PendingPairing // nil when none is pending
}

// RegistrySnapshot is what ReadRegistry read: every terminal, and counts
// of the records that belong to no terminal's entry.
type RegistrySnapshot struct {
	Entries []RegistryEntry // in device ID order
	// CallLogs, PushSubscriptions and Phones are the parents' call logs,
	// browsers' push subscriptions and fallback phone numbers: what the
	// NATS registry has no place for yet (rendezvous migrate says so).
	CallLogs, PushSubscriptions, Phones int
	// PendingOfPaired names the terminals that have both a parent and a
	// pending pairing (only Store.CreatePairing, which the hub does not
	// use, leaves that): the pending one can never complete.
	PendingOfPaired []string
}

// ReadRegistry reads the registry at path in one read-only transaction,
// for moving it elsewhere (rendezvous migrate). The server must not hold
// it: bbolt's lock is waited for boltfile.LockTimeout, then refused with
// an error wrapping bbolt's ErrTimeout. A registry that fails
// CheckRegistry's own checks (a pairing without its parent, a pending
// pairing of an unregistered terminal) is refused: moving it would carry
// the damage along.
func ReadRegistry(path string) (RegistrySnapshot, error) {
	var snap RegistrySnapshot
	db, err := boltfile.OpenReadOnly(path)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return snap, fmt.Errorf("rendezvous: read %s: the running server holds it: stop it first: %w", path, err)
	}
	if err != nil {
		return snap, fmt.Errorf("rendezvous: read registry: %w", err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketDevices, bucketParents, bucketPairings} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("bucket %q missing: not a registry", name)
			}
		}
		parents, pairings := tx.Bucket(bucketParents), tx.Bucket(bucketPairings)
		pending := tx.Bucket(bucketPending) // nil in a registry older than two-phase pairing
		err := tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			e := RegistryEntry{ID: string(k)}
			if err := json.Unmarshal(v, &e.Device); err != nil {
				return fmt.Errorf("decode device %s: %w", k, err)
			}
			if pid := pairings.Get(k); pid != nil {
				e.ParentID = string(pid)
				if err := getJSON(parents, e.ParentID, &e.Parent); err != nil {
					return fmt.Errorf("pairing of %s: parent %s: %w (run rendezvous check)", k, pid, err)
				}
			}
			if pending != nil && pending.Get(k) != nil {
				var p PendingPairing
				if err := getJSON(pending, e.ID, &p); err != nil {
					return fmt.Errorf("pending pairing of %s: %w", k, err)
				}
				if e.ParentID != "" {
					snap.PendingOfPaired = append(snap.PendingOfPaired, e.ID)
				} else {
					e.Pending = &p
				}
			}
			snap.Entries = append(snap.Entries, e)
			return nil
		})
		if err != nil {
			return err
		}
		for _, b := range []struct {
			name []byte
			what string
		}{{bucketPairings, "pairing"}, {bucketPending, "pending pairing"}} {
			if bk := tx.Bucket(b.name); bk != nil {
				if err := bk.ForEach(func(k, _ []byte) error {
					if tx.Bucket(bucketDevices).Get(k) == nil {
						return fmt.Errorf("%s of %s: device not registered (run rendezvous check)", b.what, k)
					}
					return nil
				}); err != nil {
					return err
				}
			}
		}
		snap.CallLogs = countKeys(tx, bucketCallLog) + countKeys(tx, bucketCalls)
		snap.Phones = countKeys(tx, bucketPhones)
		if push := tx.Bucket(bucketPush); push != nil {
			return push.ForEach(func(k, _ []byte) error {
				if b := push.Bucket(k); b != nil {
					snap.PushSubscriptions += b.Stats().KeyN
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return RegistrySnapshot{}, fmt.Errorf("rendezvous: read %s: %w", path, err)
	}
	return snap, nil
}

// countKeys counts a bucket's keys; a missing bucket has none.
func countKeys(tx *bolt.Tx, name []byte) int {
	b := tx.Bucket(name)
	if b == nil {
		return 0
	}
	n := 0
	b.ForEach(func(_, _ []byte) error { n++; return nil })
	return n
}
