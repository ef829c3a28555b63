package terminalstore

import (
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/tuanju/tuanju/provisioning/devcert"
)

// The unit's identity is its ECDSA P-256 key and the device certificate a
// program CA signed for it. Both are written at flash time by provisioning
// (ImportIdentity), never made on the device and never part of the shared
// image: the server accepts a login only with a certificate from a program
// CA, and only provisioning holds a CA's key.
//
// They live in a file of their own, the identity file (an identity bundle,
// devcert.EncodeBundle, mode 0400), apart from the state file: the state
// file is written at every call and pairing and may be damaged by a power
// cut or a bad block, and the unit then starts a fresh one (repair.go) but
// must still be itself, with the device ID on its label. The identity file
// is written once, atomically, and only read afterwards; on the OS image it
// lives on a provisioning partition (terminald's identity_file).
//
// Units from before the identity file kept key and certificate in the
// state file's identity bucket: Open moves them out (migrate).

// IdentityPath is where the identity file is by default: beside the state
// file, named after it (terminal.db → terminal.identity.pem).
func IdentityPath(statePath string) string {
	return strings.TrimSuffix(statePath, filepath.Ext(statePath)) + ".identity.pem"
}

// identity is a parsed identity file.
type identity struct {
	key  *ecdsa.PrivateKey
	cert []byte
}

// readIdentityFile reads the identity file: nil when there is none, an
// error wrapping ErrCorrupt when it does not parse.
func readIdentityFile(path string) (*identity, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("terminalstore: identity file: %w", err)
	}
	key, cert, err := devcert.ParseBundle(b)
	if err != nil {
		return nil, fmt.Errorf("terminalstore: identity file %s: %w: %v", path, ErrCorrupt, err)
	}
	return &identity{key: key, cert: cert}, nil
}

// writeIdentityFile replaces the identity file atomically: written beside
// it, synced, renamed, and the directory synced, so a power cut leaves the
// old file or the new one, and a returned nil means it is on the disk.
func writeIdentityFile(path string, key *ecdsa.PrivateKey, cert []byte) error {
	b, err := devcert.EncodeBundle(key, cert)
	if err != nil {
		return err
	}
	return writeOnce(path, b)
}

// legacyIdentity reads key and certificate from the state file's identity
// bucket (a unit from before the identity file); either may be nil.
func legacyIdentity(tx *bolt.Tx) (keyDER, cert []byte) {
	b := tx.Bucket(bucketIdentity)
	if b == nil {
		return nil, nil
	}
	if v := b.Get(keyDeviceKey); v != nil {
		keyDER = append([]byte(nil), v...)
	}
	if v := b.Get(keyDeviceCert); v != nil {
		cert = append([]byte(nil), v...)
	}
	return keyDER, cert
}

// parseLegacy parses what legacyIdentity read: nil unless it is a key and
// a certificate for it.
func parseLegacy(keyDER, cert []byte) *identity {
	if keyDER == nil || cert == nil {
		return nil
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || devcert.CheckPair(ec, cert) != nil {
		return nil
	}
	return &identity{key: ec, cert: cert}
}

// loadIdentity reads the identity file and moves a state file's identity
// into it. The move cannot lose the identity to a crash: the file is
// written and synced first, and only then is the copy in the state file
// deleted; a crash between leaves both, and the next Open finishes.
func (s *Store) loadIdentity() error {
	id, err := readIdentityFile(s.identityPath)
	if err != nil {
		return err
	}
	var keyDER, cert []byte
	if err := s.db.View(func(tx *bolt.Tx) error { keyDER, cert = legacyIdentity(tx); return nil }); err != nil {
		return fmt.Errorf("terminalstore: identity: %w", err)
	}
	legacy := parseLegacy(keyDER, cert)
	switch {
	case legacy == nil:
		s.id = id
		return nil
	case id == nil:
		if err := writeIdentityFile(s.identityPath, legacy.key, legacy.cert); err != nil {
			return fmt.Errorf("terminalstore: move identity to %s: %w", s.identityPath, err)
		}
		if id, err = readIdentityFile(s.identityPath); err != nil || id == nil || !id.key.Equal(legacy.key) {
			return fmt.Errorf("terminalstore: move identity to %s: the file does not read back (%v)", s.identityPath, err)
		}
	case !id.key.Equal(legacy.key):
		// Two identities: the file is the one provisioning wrote last.
		// The state file's stays where it is, unread.
		s.id = id
		return nil
	}
	s.id = id
	if err := s.db.Update(deleteLegacyIdentity); err != nil {
		return fmt.Errorf("terminalstore: move identity out of the state file: %w", err)
	}
	return nil
}

func deleteLegacyIdentity(tx *bolt.Tx) error {
	b := tx.Bucket(bucketIdentity)
	if err := b.Delete(keyDeviceKey); err != nil {
		return err
	}
	return b.Delete(keyDeviceCert)
}

// Identity returns the device's signing key, or ErrNoIdentity when the unit
// was never provisioned.
func (s *Store) Identity() (*ecdsa.PrivateKey, error) {
	if s.id != nil {
		return s.id.key, nil
	}
	var der []byte
	err := s.db.View(func(tx *bolt.Tx) error { der, _ = legacyIdentity(tx); return nil })
	if err != nil {
		return nil, fmt.Errorf("terminalstore: identity: %w", err)
	}
	if der == nil {
		return nil, fmt.Errorf("terminalstore: identity: %w", ErrNoIdentity)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("terminalstore: identity: %w: %v", ErrCorrupt, err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("terminalstore: identity: %w: not an ECDSA key", ErrCorrupt)
	}
	return ec, nil
}

// Certificate returns the device certificate (DER), ErrNoIdentity when the
// unit was never provisioned, or ErrNoCertificate when only a key is stored
// (in the state file of a unit from before device certificates).
func (s *Store) Certificate() ([]byte, error) {
	if s.id != nil {
		return append([]byte(nil), s.id.cert...), nil
	}
	var key, cert []byte
	err := s.db.View(func(tx *bolt.Tx) error { key, cert = legacyIdentity(tx); return nil })
	switch {
	case err != nil:
		return nil, fmt.Errorf("terminalstore: certificate: %w", err)
	case cert != nil:
		return cert, nil
	case key != nil:
		return nil, fmt.Errorf("terminalstore: certificate: %w", ErrNoCertificate)
	default:
		return nil, fmt.Errorf("terminalstore: certificate: %w", ErrNoIdentity)
	}
}

// IdentityFile is the path of the identity file.
func (s *Store) IdentityFile() string { return s.identityPath }

// ImportIdentity writes the key and device certificate provisioning made
// for this unit to the identity file. The certificate must be for the key
// (devcert.CheckPair); who signed it is the server's to judge at each login.
//
// It refuses (ErrIdentityExists) to replace a provisioned identity with one
// for another key: the device ID is the unit's name on the server and on its
// label, and the pairing hangs on it, so swapping it silently would orphan
// the family. A factory reset keeps the identity for the same reason; a unit
// whose key must change is re-flashed (its identity file erased). Allowed:
// importing the same key again with a new certificate (re-issued by a new
// program CA at key rollover), and replacing a key that never had a
// certificate (a unit from before device certificates, which no server
// accepts anyway). An identity file that does not parse is not replaced
// either (ErrCorrupt): the technician removes it, knowing what it was.
func (s *Store) ImportIdentity(key *ecdsa.PrivateKey, certDER []byte) error {
	if err := devcert.CheckPair(key, certDER); err != nil {
		return fmt.Errorf("terminalstore: import identity: %w", err)
	}
	devID, _ := devcert.DeviceID(&key.PublicKey)
	cur, err := readIdentityFile(s.identityPath)
	if err != nil {
		return fmt.Errorf("terminalstore: import identity %s: %w", devID, err)
	}
	if cur != nil && !cur.key.Equal(key) {
		return fmt.Errorf("terminalstore: import identity %s: %w", devID, ErrIdentityExists)
	}
	if err := writeIdentityFile(s.identityPath, key, certDER); err != nil {
		return fmt.Errorf("terminalstore: import identity %s: %w", devID, err)
	}
	s.id = &identity{key: key, cert: append([]byte(nil), certDER...)}
	// An uncertified key left in the state file is replaced, not kept.
	if err := s.db.Update(deleteLegacyIdentity); err != nil {
		return fmt.Errorf("terminalstore: import identity %s: %w", devID, err)
	}
	return nil
}
