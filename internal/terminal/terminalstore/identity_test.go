package terminalstore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	bolt "go.etcd.io/bbolt"
	"path/filepath"
	"testing"

	"github.com/tuanju/tuanju/provisioning/devcert"
)

var testCA = func() *devcert.CA {
	ca, err := devcert.NewCA("terminalstore test")
	if err != nil {
		panic(err)
	}
	return ca
}()

func newIdentity(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := devcert.NewDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := testCA.Issue(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// provision imports a fresh identity, as flashing does.
func provision(t *testing.T, s *Store) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, cert := newIdentity(t)
	if err := s.ImportIdentity(key, cert); err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// TestNoIdentityUntilImported: a fresh store makes no key of its own.
func TestNoIdentityUntilImported(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	if k, err := s.Identity(); !errors.Is(err, ErrNoIdentity) || k != nil {
		t.Errorf("fresh store Identity() = %v, %v; want nil, ErrNoIdentity", k, err)
	}
	if c, err := s.Certificate(); !errors.Is(err, ErrNoIdentity) || c != nil {
		t.Errorf("fresh store Certificate() = %d bytes, %v; want ErrNoIdentity", len(c), err)
	}
	key, cert := provision(t, s)
	if k, err := s.Identity(); err != nil || !k.Equal(key) {
		t.Errorf("Identity() after import = %v; want the imported key", err)
	}
	if c, err := s.Certificate(); err != nil || !bytes.Equal(c, cert) {
		t.Errorf("Certificate() after import: %v", err)
	}
}

// TestImportIdentityRules: what may replace what (see ImportIdentity).
func TestImportIdentityRules(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	key, cert := provision(t, s)

	other, otherCert := newIdentity(t)
	if err := s.ImportIdentity(other, otherCert); !errors.Is(err, ErrIdentityExists) {
		t.Errorf("importing another unit's identity err = %v, want ErrIdentityExists", err)
	}
	if k, _ := s.Identity(); !k.Equal(key) {
		t.Error("a refused import changed the key")
	}
	if err := s.ImportIdentity(key, otherCert); !errors.Is(err, devcert.ErrBadBundle) {
		t.Errorf("importing a certificate for another key err = %v, want ErrBadBundle", err)
	}

	// The same key with a re-issued certificate (program CA rollover).
	ca2, _ := devcert.NewCA("rollover")
	cert2, _ := ca2.Issue(&key.PublicKey)
	if err := s.ImportIdentity(key, cert2); err != nil {
		t.Fatalf("re-importing the same key with a new certificate: %v", err)
	}
	if c, _ := s.Certificate(); !bytes.Equal(c, cert2) || bytes.Equal(c, cert) {
		t.Error("the re-issued certificate was not stored")
	}
	// The identity survives a factory reset.
	if err := s.FactoryReset(); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Certificate(); err != nil || !bytes.Equal(c, cert2) {
		t.Errorf("certificate after factory reset: %v", err)
	}
}

// TestImportReplacesUncertifiedKey: a key stored without a certificate (a
// unit from before device certificates) is provisioned over, and until then
// the store says what is missing.
func TestImportReplacesUncertifiedKey(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	old, _ := newIdentity(t)
	der, _ := x509.MarshalPKCS8PrivateKey(old)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketIdentity).Put(keyDeviceKey, der) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Certificate(); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("key without certificate: Certificate() err = %v, want ErrNoCertificate", err)
	}
	key, _ := provision(t, s)
	if k, _ := s.Identity(); !k.Equal(key) {
		t.Error("the uncertified key was not replaced")
	}
}
