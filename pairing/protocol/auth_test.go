package protocol

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func newKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func spki(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func signLogin(t testing.TB, k *ecdsa.PrivateKey, nonce string) Message {
	t.Helper()
	m, err := SignLogin(k, nil, nonce, "terminald/test")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// handHello builds a terminal hello the way another client would, without
// SignLogin: the signature is over the documented bytes.
func handHello(t testing.TB, k *ecdsa.PrivateKey, nonce string) Message {
	t.Helper()
	der := spki(t, k)
	id := DeviceID(der)
	digest := sha256.Sum256([]byte("tuanju/v1 terminal login\n" + nonce + "\n" + id))
	sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return Message{
		Type: TypeHello, Role: RoleTerminal, DeviceID: id,
		PublicKey: base64.RawURLEncoding.EncodeToString(der),
		Signature: base64.RawURLEncoding.EncodeToString(sig),
	}
}

func TestSignVerifyLogin(t *testing.T) {
	k := newKey(t, elliptic.P256())
	nonce := NewNonce()
	m := signLogin(t, k, nonce)

	// What SignLogin builds goes through the strict decoder unchanged.
	b, err := Encode(m)
	if err != nil {
		t.Fatalf("Encode(SignLogin): %v", err)
	}
	m, err = Decode(b)
	if err != nil {
		t.Fatalf("Decode(SignLogin): %v", err)
	}
	if m.Version != "terminald/test" {
		t.Errorf("Version = %q", m.Version)
	}

	der, err := VerifyLogin(m, nonce)
	if err != nil {
		t.Fatalf("VerifyLogin: %v", err)
	}
	if want := spki(t, k); !bytes.Equal(der, want) {
		t.Fatalf("VerifyLogin returned %x, want the key's SPKI DER %x", der, want)
	}
	if m.DeviceID != DeviceID(der) {
		t.Fatalf("hello device_id %s, DeviceID(key) %s", m.DeviceID, DeviceID(der))
	}
}

// TestVerifyLoginByHand: a hello built from docs/protocol.md alone verifies,
// so the doc and the code agree on the signed bytes.
func TestVerifyLoginByHand(t *testing.T) {
	k := newKey(t, elliptic.P256())
	nonce := NewNonce()
	if _, err := VerifyLogin(handHello(t, k, nonce), nonce); err != nil {
		t.Fatalf("VerifyLogin of a hello built from the doc: %v", err)
	}
}

func TestDeviceID(t *testing.T) {
	k := newKey(t, elliptic.P256())
	der := spki(t, k)
	id := DeviceID(der)
	if id != DeviceID(der) {
		t.Fatal("DeviceID is not deterministic")
	}
	if !ValidID(id) {
		t.Fatalf("DeviceID = %q, not a valid ID", id)
	}
	// docs/protocol.md: base32(SHA-256(SPKI DER)[0:16]), lower case, no padding.
	sum := sha256.Sum256(der)
	want := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16]))
	if id != want {
		t.Fatalf("DeviceID = %s, want %s", id, want)
	}
	if other := DeviceID(spki(t, newKey(t, elliptic.P256()))); other == id {
		t.Fatal("two keys gave the same device ID")
	}
	// A fixed known answer: SHA-256("") starts e3b0c442 98fc1c14 9afbf4c8 996fb924.
	if got, want := DeviceID(nil), "4oymiquy7qobjgx36tejs35zeq"; got != want {
		t.Fatalf("DeviceID(empty) = %s, want %s", got, want)
	}
}

func TestVerifyLoginRejects(t *testing.T) {
	k := newKey(t, elliptic.P256())
	other := newKey(t, elliptic.P256())
	nonce := NewNonce()
	good := signLogin(t, k, nonce)

	p384 := newKey(t, elliptic.P384())
	p384Hello := func() Message {
		// Built by hand: SignLogin would do the same for any curve, so this
		// is what a terminal with the wrong key type would send.
		der := spki(t, p384)
		id := DeviceID(der)
		digest := sha256.Sum256(LoginMessage(nonce, id))
		sig, err := ecdsa.SignASN1(rand.Reader, p384, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		return Message{Type: TypeHello, Role: RoleTerminal, DeviceID: id,
			PublicKey: base64.RawURLEncoding.EncodeToString(der), Signature: base64.RawURLEncoding.EncodeToString(sig)}
	}()
	// Sanity: the P-384 hello is otherwise right, so only the curve rejects it.
	{
		der, _ := base64.RawURLEncoding.DecodeString(p384Hello.PublicKey)
		pub, _ := x509.ParsePKIXPublicKey(der)
		sig, _ := base64.RawURLEncoding.DecodeString(p384Hello.Signature)
		digest := sha256.Sum256(LoginMessage(nonce, p384Hello.DeviceID))
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
			t.Fatal("test setup: the P-384 signature does not verify")
		}
	}

	with := func(f func(*Message)) Message {
		m := good
		f(&m)
		return m
	}
	otherHello := signLogin(t, other, nonce)

	tests := []struct {
		name  string
		m     Message
		nonce string
		why   string // a word the error must contain
	}{
		{"replayed against a new challenge", good, NewNonce(), "signature"},
		{"empty nonce", good, "", "signature"},
		{"another key's device_id", with(func(m *Message) { m.DeviceID = otherHello.DeviceID }), nonce, "device ID"},
		{"device_id of the key, not derived", with(func(m *Message) { m.DeviceID = tID }), nonce, "device ID"},
		{"signature by another key", with(func(m *Message) { m.Signature = otherHello.Signature }), nonce, "signature"},
		{"another key with this device_id", with(func(m *Message) { m.PublicKey = otherHello.PublicKey }), nonce, "device ID"},
		{"P-384 key", p384Hello, nonce, "P-256"},
		{"RSA-looking garbage key", with(func(m *Message) { m.PublicKey = base64.RawURLEncoding.EncodeToString([]byte("not DER")) }), nonce, "public key"},
		{"public_key not base64", with(func(m *Message) { m.PublicKey = "***" }), nonce, "public key"},
		{"public_key padded", with(func(m *Message) { m.PublicKey += "==" }), nonce, "public key"},
		{"signature not base64", with(func(m *Message) { m.Signature = "!!" }), nonce, "signature"},
		{"signature empty", with(func(m *Message) { m.Signature = "" }), nonce, "signature"},
		{"signature truncated", with(func(m *Message) { m.Signature = m.Signature[:len(m.Signature)-4] }), nonce, "signature"},
		{"parent hello", with(func(m *Message) { m.Role = RoleParent }), nonce, "terminal hello"},
		{"pairing hello", Message{Type: TypeHello, Role: RolePairing}, nonce, "terminal hello"},
		{"not a hello", with(func(m *Message) { m.Type = TypeWelcome }), nonce, "terminal hello"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der, err := VerifyLogin(tc.m, tc.nonce)
			if err == nil {
				t.Fatal("VerifyLogin accepted it")
			}
			if der != nil {
				t.Errorf("VerifyLogin returned a key with its error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("error %q does not say %q", err, tc.why)
			}
		})
	}
	// And the untouched hello still verifies: the cases above failed for
	// their own reason.
	if _, err := VerifyLogin(good, nonce); err != nil {
		t.Fatalf("the good hello: %v", err)
	}
}

// TestLoginDomainSeparated: a login signature is over its prefix, so a
// signature made by the same key over the bare nonce does not verify.
func TestLoginDomainSeparated(t *testing.T) {
	k := newKey(t, elliptic.P256())
	nonce := NewNonce()
	m := signLogin(t, k, nonce)
	digest := sha256.Sum256([]byte(nonce))
	sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	m.Signature = base64.RawURLEncoding.EncodeToString(sig)
	if _, err := VerifyLogin(m, nonce); err == nil {
		t.Fatal("a signature over the bare nonce verified")
	}
}

func TestNewIDAndNonce(t *testing.T) {
	const n = 1000
	ids, nonces := map[string]bool{}, map[string]bool{}
	for range n {
		id := NewID()
		if !ValidID(id) {
			t.Fatalf("NewID() = %q, not a valid ID", id)
		}
		// 26 characters carry 130 bits; 16 bytes fill 128 of them, so the
		// last character's two low bits are always zero.
		if !strings.ContainsRune("aeimquy4", rune(id[25])) {
			t.Fatalf("NewID() = %q: last character is not canonical base32 of 16 bytes", id)
		}
		ids[id] = true

		nonce := NewNonce()
		b, err := base64.RawURLEncoding.Strict().DecodeString(nonce)
		if err != nil || len(b) != 32 {
			t.Fatalf("NewNonce() = %q: %d bytes, %v; want 32 bytes of base64url", nonce, len(b), err)
		}
		if len(nonce) != 43 || !b64urlPattern.MatchString(nonce) {
			t.Fatalf("NewNonce() = %q, not 43 characters of base64url", nonce)
		}
		nonces[nonce] = true
	}
	if len(ids) != n || len(nonces) != n {
		t.Fatalf("%d draws gave %d distinct IDs and %d distinct nonces", n, len(ids), len(nonces))
	}
}

// FuzzVerifyLogin: VerifyLogin never panics, and never accepts anything but a
// real signature by the one key, over a nonce that key signed.
func FuzzVerifyLogin(f *testing.F) {
	// The key and the signed nonces must be the same in every fuzzing worker
	// process (each runs this setup again), so nothing here may be random but
	// the signatures.
	scalar := sha256.Sum256([]byte("tuanju fuzz terminal key"))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar[:])
	if err != nil {
		f.Fatal(err)
	}
	der := spki(f, k)
	signed := map[string]bool{}
	for _, nonce := range []string{"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "", "n"} {
		m := signLogin(f, k, nonce)
		signed[nonce] = true
		f.Add(m.Type, m.Role, m.DeviceID, m.PublicKey, m.Signature, nonce)
		f.Add(m.Type, m.Role, m.DeviceID, m.PublicKey, m.Signature, NewNonce())
	}
	p384 := newKey(f, elliptic.P384())
	f.Add(TypeHello, RoleTerminal, DeviceID(spki(f, p384)), base64.RawURLEncoding.EncodeToString(spki(f, p384)), "MEUCIQ", "n")
	f.Add("", "", "", "", "", "")

	f.Fuzz(func(t *testing.T, typ, role, deviceID, publicKey, signature, nonce string) {
		m := Message{Type: typ, Role: role, DeviceID: deviceID, PublicKey: publicKey, Signature: signature}
		got, err := VerifyLogin(m, nonce)
		if err != nil {
			if got != nil {
				t.Fatal("VerifyLogin returned a key with its error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if !bytes.Equal(got, der) || !signed[nonce] {
			t.Fatalf("VerifyLogin accepted a forged login: key %x, nonce %q", got, nonce)
		}
	})
}
