package terminalstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// A unit provisioned from a programme's batch got a signed bundle
// (provisioning/bundle): its identity, its label's pairing secret and its
// settings. terminald verifies it against the programme's key, then
// ImportBundle keeps it whole beside the identity file (BundlePath, mode
// 0400, written once like the identity): terminald reads its settings at
// every start, and a fresh state file (after damage) takes its pairing
// secret from it, so the printed label keeps working.

// BundlePath is where the unit's bundle is kept: beside the identity file
// (terminal.identity.pem → terminal.identity.tjb).
func BundlePath(identityPath string) string {
	return strings.TrimSuffix(identityPath, filepath.Ext(identityPath)) + ".tjb"
}

// ImportBundle stores a bundle that bundle.Decode has verified (raw, its
// bytes, and u, its body): the identity it carries under ImportIdentity's
// rules (another device's identity is refused, ErrIdentityExists), the
// bundle itself, and its pairing secret in the state file, replacing the
// one the unit may have made itself (the label carries the bundle's).
// Importing the same bundle again changes nothing.
func (s *Store) ImportBundle(raw []byte, u bundle.Unit) error {
	key, cert, err := devcert.ParseBundle([]byte(u.Identity))
	if err != nil {
		return fmt.Errorf("terminalstore: import bundle %s: %w", u.Unit, err)
	}
	if id, _ := devcert.DeviceID(&key.PublicKey); id != u.DeviceID {
		return fmt.Errorf("terminalstore: import bundle %s: its identity is device %s, not %s: %w", u.Unit, id, u.DeviceID, devcert.ErrBadBundle)
	}
	sec, err := pairing.ParseSecret(u.PairingSecret)
	if err != nil {
		return fmt.Errorf("terminalstore: import bundle %s: %w", u.Unit, err)
	}
	cur, err := readIdentityFile(s.identityPath)
	if err != nil {
		return fmt.Errorf("terminalstore: import bundle %s: %w", u.Unit, err)
	}
	if cur != nil && !cur.key.Equal(key) {
		return fmt.Errorf("terminalstore: import bundle %s (device %s): %w", u.Unit, u.DeviceID, ErrIdentityExists)
	}
	// The bundle first, the identity (what makes the unit provisioned)
	// last: a power cut between leaves an unprovisioned unit whose next
	// import finishes the job.
	if err := writeOnce(BundlePath(s.identityPath), raw); err != nil {
		return fmt.Errorf("terminalstore: import bundle %s: %w", u.Unit, err)
	}
	if err := s.ImportIdentity(key, cert); err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPairing).Put(keySecret, []byte(sec.String())) })
	if err != nil {
		return fmt.Errorf("terminalstore: import bundle %s: pairing secret: %w", u.Unit, err)
	}
	return nil
}

// ReadBundle returns the unit's stored bundle, or ok false when it was
// provisioned without one (a bare identity, `make demo`).
func ReadBundle(identityPath string) (u bundle.Unit, ok bool, err error) {
	b, err := os.ReadFile(BundlePath(identityPath))
	if errors.Is(err, fs.ErrNotExist) {
		return u, false, nil
	}
	if err != nil {
		return u, false, fmt.Errorf("terminalstore: bundle: %w", err)
	}
	u, err = bundle.DecodeStored(b)
	if err != nil {
		return u, false, fmt.Errorf("terminalstore: bundle %s: %w: %w", BundlePath(identityPath), ErrCorrupt, err)
	}
	return u, true, nil
}

// provisionedSecret is the stored bundle's pairing secret, if it is this
// unit's (the identity file's key): what a fresh state file starts with.
func (s *Store) provisionedSecret() (pairing.Secret, bool) {
	u, ok, err := ReadBundle(s.identityPath)
	if err != nil || !ok || s.id == nil {
		return pairing.Secret{}, false
	}
	if id, _ := devcert.DeviceID(&s.id.key.PublicKey); id != u.DeviceID {
		return pairing.Secret{}, false
	}
	sec, err := pairing.ParseSecret(u.PairingSecret)
	return sec, err == nil
}

// writeOnce writes a file atomically with mode 0400, like the identity.
func writeOnce(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := renameio.NewPendingFile(path, renameio.WithStaticPermissions(0o400))
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RefusalPath is where a refused bundle import leaves its reason: beside
// the identity file.
func RefusalPath(identityPath string) string {
	return strings.TrimSuffix(identityPath, filepath.Ext(identityPath)) + ".refused"
}

// WriteRefusal keeps why an import refused a bundle, for the daemon's log
// and needs-repair light while the unit has no identity.
func WriteRefusal(identityPath, reason string) error {
	if err := os.MkdirAll(filepath.Dir(identityPath), 0o700); err != nil {
		return fmt.Errorf("terminalstore: refusal note: %w", err)
	}
	if err := renameio.WriteFile(RefusalPath(identityPath), []byte(reason+"\n"), 0o600); err != nil {
		return fmt.Errorf("terminalstore: refusal note: %w", err)
	}
	return nil
}

// ReadRefusal returns the last refusal's reason, "" when there is none.
func ReadRefusal(identityPath string) (string, error) {
	b, err := os.ReadFile(RefusalPath(identityPath))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("terminalstore: refusal note: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// ClearRefusal removes the note once an import succeeded.
func ClearRefusal(identityPath string) error {
	if err := os.Remove(RefusalPath(identityPath)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("terminalstore: refusal note: %w", err)
	}
	return nil
}
