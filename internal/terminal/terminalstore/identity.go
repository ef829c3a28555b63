package terminalstore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/tuanju/tuanju/provisioning/devcert"
)

// The unit's identity is its ECDSA P-256 key and the device certificate a
// program CA signed for it. Both are written at flash time by provisioning
// (ImportIdentity), never made on the device and never part of the shared
// image: the server accepts a login only with a certificate from a program
// CA, and only provisioning holds a CA's key.

// Identity returns the device's signing key, or ErrNoIdentity when the unit
// was never provisioned.
func (s *Store) Identity() (*ecdsa.PrivateKey, error) {
	var der []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketIdentity).Get(keyDeviceKey); v != nil {
			der = append([]byte(nil), v...)
		}
		return nil
	})
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
// unit was never provisioned, or ErrNoCertificate when only a key is stored.
func (s *Store) Certificate() ([]byte, error) {
	var der []byte
	var hasKey bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdentity)
		hasKey = b.Get(keyDeviceKey) != nil
		if v := b.Get(keyDeviceCert); v != nil {
			der = append([]byte(nil), v...)
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("terminalstore: certificate: %w", err)
	case der != nil:
		return der, nil
	case hasKey:
		return nil, fmt.Errorf("terminalstore: certificate: %w", ErrNoCertificate)
	default:
		return nil, fmt.Errorf("terminalstore: certificate: %w", ErrNoIdentity)
	}
}

// ImportIdentity stores the key and device certificate provisioning wrote
// for this unit. The certificate must be for the key (devcert.CheckPair);
// who signed it is the server's to judge at each login.
//
// It refuses (ErrIdentityExists) to replace a provisioned identity with one
// for another key: the device ID is the unit's name on the server and on its
// label, and the pairing hangs on it, so swapping it silently would orphan
// the family. A factory reset keeps the identity for the same reason; a unit
// whose key must change is re-flashed (its state file erased). Allowed:
// importing the same key again with a new certificate (re-issued by a new
// program CA at key rollover), and replacing a key that never had a
// certificate (a unit from before device certificates, which no server
// accepts anyway).
func (s *Store) ImportIdentity(key *ecdsa.PrivateKey, certDER []byte) error {
	if err := devcert.CheckPair(key, certDER); err != nil {
		return fmt.Errorf("terminalstore: import identity: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("terminalstore: import identity: %w", err)
	}
	id, _ := devcert.DeviceID(&key.PublicKey)
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdentity)
		if old := b.Get(keyDeviceKey); old != nil && b.Get(keyDeviceCert) != nil && !sameKey(old, key) {
			return ErrIdentityExists
		}
		if err := b.Put(keyDeviceKey, keyDER); err != nil {
			return err
		}
		return b.Put(keyDeviceCert, bytes.Clone(certDER))
	})
	if err != nil {
		return fmt.Errorf("terminalstore: import identity %s: %w", id, err)
	}
	return nil
}

// sameKey reports whether the stored PKCS#8 key is key. A stored key that
// does not parse is not the same (and ImportIdentity then refuses, rather
// than overwrite what it cannot read).
func sameKey(storedDER []byte, key *ecdsa.PrivateKey) bool {
	k, err := x509.ParsePKCS8PrivateKey(storedDER)
	if err != nil {
		return false
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	return ok && ec.Equal(key)
}
