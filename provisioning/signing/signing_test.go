package signing_test

import (
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/tuanju/tuanju/provisioning/signing"
)

// TestDetached: a detached signature verifies over its bytes only, names
// its key, and a key the verifier does not hold is "unknown", not "bad".
func TestDetached(t *testing.T) {
	k, _ := signing.NewKey()
	other, _ := signing.NewKey()
	msg := []byte(`{"units":[]}`)
	sig := k.Detached(msg)
	keys := []ed25519.PublicKey{k.Public()}
	if id, err := signing.VerifyDetached(msg, sig, keys); err != nil || id != k.ID() {
		t.Fatalf("verify: %v, id %s want %s", err, id, k.ID())
	}
	if _, err := signing.VerifyDetached([]byte(`{"units":[1]}`), sig, keys); !errors.Is(err, signing.ErrBadSignature) {
		t.Fatalf("changed message: %v, want ErrBadSignature", err)
	}
	if _, err := signing.VerifyDetached(msg, other.Detached(msg), keys); !errors.Is(err, signing.ErrUnknownKey) {
		t.Fatalf("other key: %v, want ErrUnknownKey", err)
	}
	if _, err := signing.VerifyDetached(msg, []byte("junk"), keys); !errors.Is(err, signing.ErrBadSignature) {
		t.Fatalf("junk: %v, want ErrBadSignature", err)
	}
}

// TestKeyPEM: private and public keys survive PEM, and a file of two
// public keys gives both.
func TestKeyPEM(t *testing.T) {
	k, _ := signing.NewKey()
	p, err := k.PEM()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := signing.ParseKey(p)
	if err != nil || k2.ID() != k.ID() {
		t.Fatalf("parse key: %v", err)
	}
	other, _ := signing.NewKey()
	keys, err := signing.ParsePublic(append(signing.PublicPEM(k.Public()), signing.PublicPEM(other.Public())...))
	if err != nil || len(keys) != 2 || signing.IDOf(keys[1]) != other.ID() {
		t.Fatalf("parse public: %d keys, %v", len(keys), err)
	}
	if _, err := signing.ParsePublic(append(signing.PublicPEM(k.Public()), "junk"...)); !errors.Is(err, signing.ErrBadKey) {
		t.Fatalf("trailing junk: %v", err)
	}
	if _, err := signing.ParseKey(signing.PublicPEM(k.Public())); !errors.Is(err, signing.ErrBadKey) {
		t.Fatalf("public as private: %v", err)
	}
}
