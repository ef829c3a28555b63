// Package signing is the programme's signing key: an Ed25519 key, apart from
// the program CA, that signs every unit's bundle (provisioning/bundle) and
// every batch's manifest. Terminals and the rendezvous server hold only its
// public half. Ed25519 because its signatures are deterministic (the same
// bundle signed twice is the same bytes, which keeps a re-run batch
// byte-identical), small (64 bytes) and in the standard library on both ends.
package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrBadKey: a key file that is not an Ed25519 key in PEM.
	ErrBadKey = errors.New("bad signing key")
	// ErrBadSignature: the signature does not verify: the signed bytes or
	// the signature were changed.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrUnknownKey: signed by a key that is not the programme's.
	ErrUnknownKey = errors.New("signed by a key that is not the programme's")
)

// KeyIDSize is the length of a key ID: the first bytes of SHA-256 over the
// public key. It names the key (which of several programmes, or which
// generation) so a refusal can say "foreign" rather than "tampered".
const KeyIDSize = 8

// KeyID names a public key.
type KeyID [KeyIDSize]byte

func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// IDOf is the key ID of pub.
func IDOf(pub ed25519.PublicKey) KeyID {
	sum := sha256.Sum256(pub)
	var id KeyID
	copy(id[:], sum[:KeyIDSize])
	return id
}

// Key is the programme's private signing key.
type Key struct {
	priv ed25519.PrivateKey
}

// NewKey makes a fresh signing key.
func NewKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing: new key: %w", err)
	}
	return &Key{priv: priv}, nil
}

// Public is the key's public half.
func (k *Key) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// ID is the key's ID.
func (k *Key) ID() KeyID { return IDOf(k.Public()) }

// Sign signs msg (deterministic: the same msg gives the same signature).
func (k *Key) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

// PEM is the private key as PKCS #8 PEM (encrypt it before it touches a disk:
// provisioning/programme does).
func (k *Key) PEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("signing: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey reads a PKCS #8 PEM Ed25519 private key.
func ParseKey(b []byte) (*Key, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing: no PEM PRIVATE KEY block: %w", ErrBadKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing: %w: %v", ErrBadKey, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing: not an Ed25519 key: %w", ErrBadKey)
	}
	return &Key{priv: priv}, nil
}

// PublicPEM is a public key as PEM ("PUBLIC KEY", SPKI): what terminals
// (terminald's programme_key_file) and the server are given.
func PublicPEM(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // an ed25519.PublicKey always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublic reads one or more PEM Ed25519 public keys: a file may list
// several (an old and a new signing key during a rollover).
func ParsePublic(b []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return nil, fmt.Errorf("signing: public keys: text that is not PEM: %w", ErrBadKey)
			}
			break
		}
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("signing: public keys: unexpected PEM block %q: %w", blk.Type, ErrBadKey)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing: public keys: %w: %v", ErrBadKey, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("signing: public keys: not Ed25519: %w", ErrBadKey)
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("signing: public keys: none found: %w", ErrBadKey)
	}
	return keys, nil
}

// Find returns the key among keys whose ID is id.
func Find(keys []ed25519.PublicKey, id KeyID) (ed25519.PublicKey, bool) {
	for _, k := range keys {
		if IDOf(k) == id {
			return k, true
		}
	}
	return nil, false
}

// A detached signature is a one-line text file beside what it signs
// (manifest.json.sig):
//
//	tuanju-signature-v1 <key ID, hex> <Ed25519 signature, base64url>
const detachedTag = "tuanju-signature-v1"

// Detached returns the detached signature of msg.
func (k *Key) Detached(msg []byte) []byte {
	return fmt.Appendf(nil, "%s %s %s\n", detachedTag, k.ID(), base64.RawURLEncoding.EncodeToString(k.Sign(msg)))
}

// VerifyDetached checks a detached signature of msg against keys and
// returns the ID of the key that made it.
func VerifyDetached(msg, sig []byte, keys []ed25519.PublicKey) (KeyID, error) {
	var id KeyID
	f := strings.Fields(string(sig))
	if len(f) != 3 || f[0] != detachedTag {
		return id, fmt.Errorf("signing: not a %s signature: %w", detachedTag, ErrBadSignature)
	}
	raw, err := hex.DecodeString(f[1])
	if err != nil || len(raw) != KeyIDSize {
		return id, fmt.Errorf("signing: bad key ID %q: %w", f[1], ErrBadSignature)
	}
	copy(id[:], raw)
	s, err := base64.RawURLEncoding.DecodeString(f[2])
	if err != nil || len(s) != ed25519.SignatureSize {
		return id, fmt.Errorf("signing: signature is not %d bytes of base64url: %w", ed25519.SignatureSize, ErrBadSignature)
	}
	pub, ok := Find(keys, id)
	if !ok {
		return id, fmt.Errorf("signing: key %s: %w", id, ErrUnknownKey)
	}
	if !ed25519.Verify(pub, msg, s) {
		return id, fmt.Errorf("signing: key %s: %w", id, ErrBadSignature)
	}
	return id, nil
}
