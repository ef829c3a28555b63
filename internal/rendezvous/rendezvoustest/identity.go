package rendezvoustest

import (
	"crypto/ecdsa"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// testCA is one program CA for the whole test binary: every test server
// trusts it, so a terminal provisioned once keeps working against a second
// server in the same test (as a real unit does after a server restart), and
// DialTerminal needs no server to find its certificate.
var testCA = sync.OnceValue(func() *devcert.CA {
	ca, err := devcert.NewCA("rendezvoustest program CA")
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return ca
})

// TestCA is the program CA every test server trusts. Tests that need a CA
// the server does not trust make their own with devcert.NewCA.
func TestCA() *devcert.CA { return testCA() }

// TestCAFile writes TestCA's certificate into a test directory and returns
// its path, for a Config's DeviceCAFiles or a rendezvous -device-ca flag.
func TestCAFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "program-ca.pem")
	if err := os.WriteFile(path, TestCA().CertPEM(), 0o644); err != nil {
		t.Fatalf("write test CA: %v", err)
	}
	return path
}

// IssueDevice returns a device certificate from TestCA for key.
func IssueDevice(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := TestCA().Issue(&key.PublicKey)
	if err != nil {
		t.Fatalf("issue device certificate: %v", err)
	}
	return der
}

// IssueDevice returns a device certificate this server accepts for key.
func (s *Server) IssueDevice(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	return IssueDevice(t, key)
}

// NewIdentity is what flashing makes for one unit: a key and its
// certificate from TestCA.
func NewIdentity(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, _ := NewKey()
	return key, IssueDevice(t, key)
}

// Provision imports a fresh identity into a terminal's store unless it
// already has one (a test that restarts a terminal on the same state keeps
// its identity), and returns the device ID.
func Provision(t testing.TB, store *terminalstore.Store) string {
	t.Helper()
	if key, err := store.Identity(); err == nil {
		if _, err := store.Certificate(); err == nil {
			return DeviceID(key)
		}
	} else if !errors.Is(err, terminalstore.ErrNoIdentity) {
		t.Fatalf("provision: %v", err)
	}
	key, cert := NewIdentity(t)
	if err := store.ImportIdentity(key, cert); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return DeviceID(key)
}

// ProvisionFile does Provision on a state file that is not open, for tests
// that start terminald as a separate process.
func ProvisionFile(t testing.TB, statePath string) string {
	t.Helper()
	store, err := terminalstore.Open(statePath)
	if err != nil {
		t.Fatalf("provision %s: %v", statePath, err)
	}
	defer store.Close()
	return Provision(t, store)
}

// BundleFile writes a fresh identity bundle (PEM key and certificate from
// TestCA), what `terminald identity import` reads, and returns its path and
// the device ID.
func BundleFile(t testing.TB) (string, string) {
	t.Helper()
	key, cert := NewIdentity(t)
	b, err := devcert.EncodeBundle(key, cert)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "identity.pem")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, DeviceID(key)
}
