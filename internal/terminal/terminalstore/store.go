// Package terminalstore is the terminal's durable state: its identity (key
// and device certificate) in a file written once at provisioning
// (identity.go), and in one bbolt file its DTLS certificate, its pairing
// secret and parent, and its call log. A damaged state file is moved aside
// and a fresh one made, the identity kept (repair.go).
// bbolt commits are atomic and fsync'd, so a power cut mid-write leaves either
// the old state or the new one, never a torn mix.
package terminalstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tuanju/tuanju/internal/boltfile"
	"github.com/tuanju/tuanju/pairing"
)

var (
	bucketIdentity = []byte("identity")
	bucketPairing  = []byte("pairing")
	bucketCalls    = []byte("calls")
	// bucketReplay holds what makes a recorded call useless to replay: the
	// call IDs already acted on and the clock floor. A factory reset keeps
	// it (it names no family).
	bucketReplay = []byte("replay")

	keyDeviceKey  = []byte("device_key")
	keyDeviceCert = []byte("device_cert")
	keyDTLS       = []byte("dtls_certificate")
	keySecret     = []byte("pairing_secret")
	keyParent     = []byte("parent")
	// keyUnpairPending is set by FactoryReset and cleared once the server
	// has confirmed the unpair: a reset made offline is told on the next
	// login.
	keyUnpairPending = []byte("unpair_pending")
	keyClockFloor    = []byte("clock_floor")
	bucketSeenCalls  = []byte("seen_calls") // nested in bucketReplay
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
	// PublicKey is the parent's long-term key from the pairing handshake
	// (base64url SPKI): every call message from the parent must be signed
	// with it.
	PublicKey string `json:"public_key"`
}

// Store is the open state file, and the unit's identity read from the
// identity file beside it (identity.go).
type Store struct {
	db           *boltfile.DB
	statePath    string
	identityPath string
	id           *identity // nil: none in the identity file
}

// Open opens (creating if needed) the state file with mode 0600, and the
// identity file beside it (IdentityPath). A damaged state file is an error
// wrapping ErrDamaged, and is left as it is: the daemon moves it aside
// (OpenOrRepair); a technician's command only reports it.
func Open(path string) (*Store, error) { return OpenFiles(path, IdentityPath(path)) }

// OpenFiles is Open with the identity file at identityPath (on the OS
// image, a provisioning partition).
func OpenFiles(statePath, identityPath string) (*Store, error) {
	db, err := boltfile.Open(statePath, bucketIdentity, bucketPairing, bucketCalls, bucketReplay)
	if err != nil {
		return nil, fmt.Errorf("terminalstore: %w", err)
	}
	s := &Store{db: db, statePath: statePath, identityPath: identityPath}
	if err := s.loadIdentity(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// getOrCreate returns the value under key, creating it with make() in the
// same transaction when absent, so two callers never create two identities.
// A value already there is read in a read-only transaction: a write
// transaction commits pages even when it changes nothing, and on a full
// disk that commit fails, which would keep a provisioned unit from starting
// (TestTerminalOnFullDisk).
func (s *Store) getOrCreate(bucket, key []byte, make func() ([]byte, error)) ([]byte, error) {
	var out []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucket).Get(key); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	}); err != nil || out != nil {
		return out, err
	}
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

// dtlsCert is the stored form of the DTLS certificate.
type dtlsCert struct {
	Key  []byte `json:"key"`  // PKCS #8
	Cert []byte `json:"cert"` // DER
}

// DTLSCertificate returns the terminal's persistent DTLS certificate and
// its key, making them on first use. The parent pins its fingerprint at
// pairing, so it must outlive restarts; it is self-signed and only ever
// checked by fingerprint, and its validity is long because a unit in the
// field must never find its calls broken by an expired certificate.
func (s *Store) DTLSCertificate() (*ecdsa.PrivateKey, *x509.Certificate, error) {
	v, err := s.getOrCreate(bucketIdentity, keyDTLS, func() ([]byte, error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			return nil, err
		}
		now := time.Now().UTC()
		tmpl := &x509.Certificate{
			SerialNumber: serial,
			Subject:      pkix.Name{CommonName: "tuanju terminal"},
			NotBefore:    now.Add(-24 * time.Hour),
			NotAfter:     now.AddDate(30, 0, 0),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			return nil, err
		}
		kd, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		return json.Marshal(dtlsCert{Key: kd, Cert: der})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("terminalstore: dtls certificate: %w", err)
	}
	var dc dtlsCert
	if err := json.Unmarshal(v, &dc); err != nil {
		return nil, nil, fmt.Errorf("terminalstore: dtls certificate: %w: %v", ErrCorrupt, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(dc.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("terminalstore: dtls certificate key: %w: %v", ErrCorrupt, err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("terminalstore: dtls certificate key: %w: not ECDSA", ErrCorrupt)
	}
	cert, err := x509.ParseCertificate(dc.Cert)
	if err != nil {
		return nil, nil, fmt.Errorf("terminalstore: dtls certificate: %w: %v", ErrCorrupt, err)
	}
	return ec, cert, nil
}

// PairingSecret returns the pairing secret, generating it on first use.
func (s *Store) PairingSecret() (pairing.Secret, error) {
	v, err := s.getOrCreate(bucketPairing, keySecret, func() ([]byte, error) {
		// A provisioned unit's label carries its bundle's secret (bundle.go).
		sec, ok := s.provisionedSecret()
		if !ok {
			sec = pairing.NewSecret()
		}
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

// FactoryReset erases the pairing and the call log, and marks an unpair
// the server has not confirmed yet. The device's identity and its DTLS
// certificate stay: they are the unit's, not the family's. So does the
// pairing secret: it is printed on the unit's label, which must keep
// working for the next family; what protects a reset unit is that pairing
// needs a press on its button inside the pairing window, not the secret.
func (s *Store) FactoryReset() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		secret := append([]byte(nil), tx.Bucket(bucketPairing).Get(keySecret)...)
		for _, name := range [][]byte{bucketPairing, bucketCalls} {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		if len(secret) > 0 {
			if err := tx.Bucket(bucketPairing).Put(keySecret, secret); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketPairing).Put(keyUnpairPending, []byte{1})
	})
	if err != nil {
		return fmt.Errorf("terminalstore: factory reset: %w", err)
	}
	// A reset is a grown-up's deliberate act: a unit that showed
	// needs-repair after a damaged state file is now simply unpaired.
	if err := ClearRepairNote(s.statePath); err != nil {
		return fmt.Errorf("terminalstore: factory reset: %w", err)
	}
	return nil
}

// UnpairPending reports whether a factory reset has not yet been confirmed
// by the server.
func (s *Store) UnpairPending() (bool, error) {
	var pending bool
	err := s.db.View(func(tx *bolt.Tx) error {
		pending = tx.Bucket(bucketPairing).Get(keyUnpairPending) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("terminalstore: unpair pending: %w", err)
	}
	return pending, nil
}

// ClearUnpairPending records that the server has confirmed the unpair.
func (s *Store) ClearUnpairPending() error {
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPairing).Delete(keyUnpairPending) })
	if err != nil {
		return fmt.Errorf("terminalstore: clear unpair pending: %w", err)
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

// MaxSeenCalls is how many call IDs MarkCallSeen remembers. A ring older
// than the clock floor by more than the signature window is refused on its
// time, so only the calls of that window need remembering; this is far
// more than any family makes in it.
const MaxSeenCalls = 4096

// MarkCallSeen records that the terminal acted on call id and reports
// whether it was new. The record survives restarts and power cuts: a ring
// the rendezvous server recorded cannot ring the child again after a
// reboot.
func (s *Store) MarkCallSeen(id string) (fresh bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketReplay).CreateBucketIfNotExists(bucketSeenCalls)
		if err != nil {
			return err
		}
		if b.Get([]byte(id)) != nil {
			return nil
		}
		fresh = true
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put([]byte(id), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
			return err
		}
		if b.Stats().KeyN < MaxSeenCalls {
			return nil
		}
		// Over the cap: drop the oldest quarter in one pass, so the scan
		// is paid once per ~1,000 calls.
		cut := seq - MaxSeenCalls*3/4
		var old [][]byte
		err = b.ForEach(func(k, v []byte) error {
			if len(v) == 8 && binary.BigEndian.Uint64(v) <= cut {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("terminalstore: mark call %s seen: %w", id, err)
	}
	return fresh, nil
}

// ClockFloor is the latest time this unit has known to be past (zero:
// none yet). Its clock is never set earlier, whatever a server says, so a
// server cannot wind a unit back to replay what it recorded.
func (s *Store) ClockFloor() (time.Time, error) {
	var t time.Time
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketReplay).Get(keyClockFloor)
		if v == nil {
			return nil
		}
		if len(v) != 8 {
			return fmt.Errorf("%w: clock floor of %d bytes", ErrCorrupt, len(v))
		}
		t = time.Unix(int64(binary.BigEndian.Uint64(v)), 0).UTC()
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("terminalstore: clock floor: %w", err)
	}
	return t, nil
}

// RaiseClockFloor moves the floor up to t (whole seconds); an earlier t
// changes nothing.
func (s *Store) RaiseClockFloor(t time.Time) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReplay)
		if v := b.Get(keyClockFloor); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) >= t.Unix() {
			return nil
		}
		return b.Put(keyClockFloor, binary.BigEndian.AppendUint64(nil, uint64(t.Unix())))
	})
	if err != nil {
		return fmt.Errorf("terminalstore: raise clock floor: %w", err)
	}
	return nil
}
