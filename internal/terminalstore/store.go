// Package terminalstore is the terminal's durable state in one bbolt file:
// its identity (key and device certificate), its pairing secret and parent,
// and its call log.
// bbolt commits are atomic and fsync'd, so a power cut mid-write leaves either
// the old state or the new one, never a torn mix.
package terminalstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tuanju/tuanju/pairing"
)

var (
	bucketIdentity = []byte("identity")
	bucketPairing  = []byte("pairing")
	bucketCalls    = []byte("calls")

	keyDeviceKey  = []byte("device_key")
	keyDeviceCert = []byte("device_cert")
	keySecret     = []byte("pairing_secret")
	keyParent     = []byte("parent")
)

// MaxCalls is how many call records are kept; older ones are dropped.
const MaxCalls = 500

// CallRecord is one call in the terminal's own log.
type CallRecord struct {
	CallID    string    `json:"call_id"`
	Outgoing  bool      `json:"outgoing"`
	Answered  bool      `json:"answered"`
	Outcome   string    `json:"outcome"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at"`
}

// Parent is the terminal's one paired parent.
type Parent struct {
	ParentID string    `json:"parent_id"`
	PairedAt time.Time `json:"paired_at"`
}

// Store is the open state file.
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the state file with mode 0600: it holds
// the device's private key.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("terminalstore: open %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("terminalstore: chmod %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketIdentity, bucketPairing, bucketCalls} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("terminalstore: init %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// getOrCreate returns the value under key, creating it with make() in the
// same transaction when absent, so two callers never create two identities.
func (s *Store) getOrCreate(bucket, key []byte, make func() ([]byte, error)) ([]byte, error) {
	var out []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if v := b.Get(key); v != nil {
			out = append([]byte(nil), v...)
			return nil
		}
		v, err := make()
		if err != nil {
			return err
		}
		out = v
		return b.Put(key, v)
	})
	return out, err
}

// PairingSecret returns the pairing secret, generating it on first use.
func (s *Store) PairingSecret() (pairing.Secret, error) {
	v, err := s.getOrCreate(bucketPairing, keySecret, func() ([]byte, error) {
		sec := pairing.NewSecret()
		return []byte(sec.String()), nil
	})
	if err != nil {
		return pairing.Secret{}, fmt.Errorf("terminalstore: pairing secret: %w", err)
	}
	sec, err := pairing.ParseSecret(string(v))
	if err != nil {
		return sec, fmt.Errorf("terminalstore: pairing secret: %w: %v", ErrCorrupt, err)
	}
	return sec, nil
}

// Parent returns the paired parent, or ErrNotPaired.
func (s *Store) Parent() (Parent, error) {
	var p Parent
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPairing).Get(keyParent)
		if v == nil {
			return ErrNotPaired
		}
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return nil
	})
	if err != nil {
		return Parent{}, fmt.Errorf("terminalstore: parent: %w", err)
	}
	return p, nil
}

// SetParent records the one paired parent. A terminal that already has a
// parent refuses: a second pairing needs a factory reset first.
func (s *Store) SetParent(p Parent) error {
	v, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("terminalstore: set parent: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPairing)
		if old := b.Get(keyParent); old != nil {
			return ErrAlreadyPaired
		}
		return b.Put(keyParent, v)
	})
	if err != nil {
		return fmt.Errorf("terminalstore: set parent %s: %w", p.ParentID, err)
	}
	return nil
}

// ReplaceParent records p as the parent whether or not one is stored. The
// terminal calls it only for a pairing the server confirmed after a press on
// its own button, when the server no longer knew the old pairing (its
// registry was lost or reset): refusing then would leave a terminal the
// server routes calls to but that believes it has no parent.
func (s *Store) ReplaceParent(p Parent) error {
	v, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("terminalstore: replace parent: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPairing).Put(keyParent, v) })
	if err != nil {
		return fmt.Errorf("terminalstore: replace parent %s: %w", p.ParentID, err)
	}
	return nil
}

// FactoryReset erases the pairing, the pairing secret (a new one is made on
// next use, so an old label stops working) and the call log. The device's
// identity stays: it is the unit's, not the family's.
func (s *Store) FactoryReset() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketPairing, bucketCalls} {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("terminalstore: factory reset: %w", err)
	}
	return nil
}

// AppendCall adds a record to the call log, dropping the oldest beyond MaxCalls.
func (s *Store) AppendCall(r CallRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("terminalstore: append call: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCalls)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
			return err
		}
		c := b.Cursor()
		for n := b.Stats().KeyN + 1 - MaxCalls; n > 0; n-- {
			k, _ := c.First()
			if k == nil {
				break
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("terminalstore: append call %s: %w", r.CallID, err)
	}
	return nil
}

// Calls returns up to limit records, newest first.
func (s *Store) Calls(limit int) ([]CallRecord, error) {
	var out []CallRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCalls).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var r CallRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: call record: %v", ErrCorrupt, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("terminalstore: calls: %w", err)
	}
	return out, nil
}
