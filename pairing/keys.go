package pairing

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math/big"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// The parent's browser must be able to do everything here with WebCrypto
// alone, on old Android Chrome too. So: ECDSA P-256 with SHA-256, and
// signatures in WebCrypto's own format, IEEE P1363 (r || s, 32 bytes each),
// not ASN.1 DER. Public keys travel as SPKI DER (what WebCrypto's
// exportKey("spki") gives), base64url without padding.

var b64 = base64.RawURLEncoding

// EncodePublicKey is the SPKI DER of an ECDSA P-256 key in base64url.
func EncodePublicKey(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("pairing: encode public key: %w", err)
	}
	return b64.EncodeToString(der), nil
}

// ParsePublicKey decodes EncodePublicKey's form and insists on P-256.
func ParsePublicKey(s string) (*ecdsa.PublicKey, error) {
	der, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("pairing: public key: %w: not base64url", ErrBadKey)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("pairing: public key: %w: %v", ErrBadKey, err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("pairing: public key: %w: not ECDSA P-256", ErrBadKey)
	}
	return ec, nil
}

// DeviceIDOf is the device ID a public key (base64url SPKI) hashes to
// (protocol.DeviceID). The label's device ID is therefore a 128-bit hash of
// the terminal's key, and the page checks the key it is given against it.
func DeviceIDOf(spkiB64 string) (string, error) {
	der, err := b64.DecodeString(spkiB64)
	if err != nil {
		return "", fmt.Errorf("pairing: device key: %w: not base64url", ErrBadKey)
	}
	return protocol.DeviceID(der), nil
}

// sign signs SHA-256(msg) and returns r || s (P1363) in base64url.
func sign(key *ecdsa.PrivateKey, msg string) (string, error) {
	digest := sha256.Sum256([]byte(msg))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return "", fmt.Errorf("pairing: sign: %w", err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return b64.EncodeToString(out), nil
}

// verify checks a P1363 signature over SHA-256(msg).
func verify(pub *ecdsa.PublicKey, msg, sig string) bool {
	raw, err := b64.DecodeString(sig)
	if err != nil || len(raw) != 64 {
		return false
	}
	digest := sha256.Sum256([]byte(msg))
	r := new(big.Int).SetBytes(raw[:32])
	s := new(big.Int).SetBytes(raw[32:])
	return ecdsa.Verify(pub, digest[:], r, s)
}

// NewKey makes an ECDSA P-256 key pair: a parent's long-term key in Go
// clients (the page makes its own, non-extractable, with WebCrypto).
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pairing: new key: %w", err)
	}
	return k, nil
}
