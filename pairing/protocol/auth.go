package protocol

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"fmt"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns 16 random bytes as a 26-character lower-case base32 ID.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return encodeID(b[:])
}

func encodeID(b []byte) string {
	s := idEncoding.EncodeToString(b)
	out := make([]byte, len(s))
	for i := range len(s) {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}

// NewNonce returns 32 random bytes, base64url without padding.
func NewNonce() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DeviceID derives a terminal's ID from its public key (the first 16 bytes of
// SHA-256 over the SPKI DER). Because the ID is bound to the key, nobody can
// claim another terminal's ID without its private key: an ID alone is worth
// nothing.
func DeviceID(spkiDER []byte) string {
	sum := sha256.Sum256(spkiDER)
	return encodeID(sum[:16])
}

// LoginMessage is what a terminal signs to answer a server challenge. The
// domain-separation prefix keeps a login signature from ever being valid as
// anything else.
func LoginMessage(nonce, deviceID string) []byte {
	return []byte("tuanju/v1 terminal login\n" + nonce + "\n" + deviceID)
}

// SignLogin builds a terminal's hello for the given challenge nonce,
// carrying its device certificate (DER; nil sends none, which a server
// refuses: only tests do that).
func SignLogin(key *ecdsa.PrivateKey, certDER []byte, nonce, version string) (Message, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return Message{}, fmt.Errorf("protocol: marshal public key: %w", err)
	}
	id := DeviceID(der)
	digest := sha256.Sum256(LoginMessage(nonce, id))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return Message{}, fmt.Errorf("protocol: sign login: %w", err)
	}
	return Message{
		Type:        TypeHello,
		Role:        RoleTerminal,
		DeviceID:    id,
		PublicKey:   base64.RawURLEncoding.EncodeToString(der),
		Signature:   base64.RawURLEncoding.EncodeToString(sig),
		Certificate: base64.RawURLEncoding.EncodeToString(certDER),
		Version:     version,
	}, nil
}

// LoginCertificate returns the DER of a terminal hello's certificate, or
// ErrInvalid when it has none. The signature does not cover it: a
// certificate is public and proves nothing by itself; it binds the device ID
// to the key, and the signature proves the key is here.
func LoginCertificate(m Message) ([]byte, error) {
	if m.Certificate == "" {
		return nil, fmt.Errorf("protocol: terminal hello has no device certificate: %w", ErrInvalid)
	}
	der, err := base64.RawURLEncoding.DecodeString(m.Certificate)
	if err != nil {
		return nil, fmt.Errorf("protocol: certificate is not base64url: %w", ErrInvalid)
	}
	return der, nil
}

// VerifyLogin checks a terminal's hello against the nonce the server sent. It
// returns the public key's DER so the server can pin it.
func VerifyLogin(m Message, nonce string) ([]byte, error) {
	if m.Type != TypeHello || m.Role != RoleTerminal {
		return nil, fmt.Errorf("protocol: verify login: not a terminal hello: %w", ErrInvalid)
	}
	der, err := base64.RawURLEncoding.DecodeString(m.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("protocol: verify login: public key: %w", ErrInvalid)
	}
	sig, err := base64.RawURLEncoding.DecodeString(m.Signature)
	if err != nil {
		return nil, fmt.Errorf("protocol: verify login: signature: %w", ErrInvalid)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("protocol: verify login: parse public key: %w", ErrInvalid)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("protocol: verify login: public key is not ECDSA P-256: %w", ErrInvalid)
	}
	if DeviceID(der) != m.DeviceID {
		return nil, fmt.Errorf("protocol: verify login: device ID does not match its key: %w", ErrInvalid)
	}
	digest := sha256.Sum256(LoginMessage(nonce, m.DeviceID))
	if !ecdsa.VerifyASN1(ec, digest[:], sig) {
		return nil, fmt.Errorf("protocol: verify login: bad signature: %w", ErrInvalid)
	}
	return der, nil
}
