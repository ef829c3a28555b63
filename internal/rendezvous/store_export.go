package rendezvous

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tuanju/tuanju/internal/boltfile"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// RegistryEntry is one terminal as the registry holds it: its device
// record and its pairing (ParentID, Parent) or pending pairing, if any.
type RegistryEntry struct {
	ID       string
	Device   Device
	ParentID string // "" when the terminal has no parent
	Parent   Parent
	Pending  *PendingPairing // nil when none is pending
	// What belongs to the parent, when there is one: the pairing's call
	// log (every record kept, newest first), the browsers' push
	// subscriptions and the number the parent gave (nil: none).
	Calls []protocol.CallRecord
	Push  []PushSubscription
	Phone *Phone
}

// RegistrySnapshot is what ReadRegistry read: every terminal, and counts
// of the records that belong to no terminal's entry.
type RegistrySnapshot struct {
	Entries []RegistryEntry // in device ID order
	// CallLogs, PushSubscriptions and Phones count the registry's call
	// logs, browsers' push subscriptions and parents' numbers, whether or
	// not an entry holds them (a parent's, left by an interrupted unpair
	// of a registry from before it was one transaction, would not).
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
				if err := readParentsOwn(tx, &e); err != nil {
					return fmt.Errorf("parent %s of %s: %w", pid, k, err)
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

// readParentsOwn reads what belongs to an entry's parent: its call log (in
// call_log, or calls/ in a registry from before it that OpenStore has not
// yet moved), push subscriptions and number.
func readParentsOwn(tx *bolt.Tx, e *RegistryEntry) error {
	var err error
	if logs := tx.Bucket(bucketCallLog); logs != nil && logs.Bucket([]byte(e.ParentID)) != nil {
		e.Calls, _, err = newestCalls(logs.Bucket([]byte(e.ParentID)), MaxStoredCalls)
	} else if old := tx.Bucket(bucketCalls); old != nil && old.Bucket([]byte(e.ParentID)) != nil {
		e.Calls, err = readCalls(old.Bucket([]byte(e.ParentID)))
		e.Calls = e.Calls[:min(len(e.Calls), MaxStoredCalls)]
	}
	if err != nil {
		return fmt.Errorf("call log: %w", err)
	}
	if push := tx.Bucket(bucketPush); push != nil && push.Bucket([]byte(e.ParentID)) != nil {
		if e.Push, err = readSubscriptions(push.Bucket([]byte(e.ParentID))); err != nil {
			return fmt.Errorf("push subscriptions: %w", err)
		}
	}
	if phones := tx.Bucket(bucketPhones); phones != nil {
		var p Phone
		switch err := getJSON(phones, e.ParentID, &p); {
		case err == nil:
			e.Phone = &p
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("phone: %w", err)
		}
	}
	return nil
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
