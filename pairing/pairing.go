// Package pairing holds the first-version pairing rules shared by the terminal,
// the rendezvous server and the parent's page: the pairing secret, the pairing
// URL that the QR label carries, and the HMAC proofs that show each side knows
// the secret without ever sending it. The secret travels only in the URL's
// fragment, which browsers never send to a server, so the rendezvous server
// relays the proofs blindly and cannot pair on its own.
package pairing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
)

// SecretBytes is the size of a pairing secret: 128 bits.
const SecretBytes = 16

// Secret is a terminal's pairing secret.
type Secret [SecretBytes]byte

// NewSecret returns a fresh random secret.
func NewSecret() Secret {
	var s Secret
	rand.Read(s[:])
	return s
}

// String is the base64url (no padding) form used in URLs and on disk.
func (s Secret) String() string { return base64.RawURLEncoding.EncodeToString(s[:]) }

// ParseSecret decodes the String form.
func ParseSecret(v string) (Secret, error) {
	var s Secret
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) != SecretBytes {
		return s, fmt.Errorf("pairing: parse secret: %w", ErrBadSecret)
	}
	copy(s[:], b)
	return s, nil
}

// URL builds the pairing URL for a terminal: base is the rendezvous server's
// public address (https://example.org). The device ID and secret go in the
// fragment: "#d=<device>&s=<secret>".
func URL(base, deviceID string, s Secret) string {
	v := url.Values{}
	v.Set("d", deviceID)
	v.Set("s", s.String())
	return strings.TrimRight(base, "/") + "/pair#" + v.Encode()
}

// ParseURL extracts the device ID and secret from a pairing URL.
func ParseURL(raw string) (deviceID string, s Secret, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", s, fmt.Errorf("pairing: parse url: %w: %w", ErrBadURL, err)
	}
	v, err := url.ParseQuery(u.Fragment)
	if err != nil {
		return "", s, fmt.Errorf("pairing: parse url fragment: %w: %w", ErrBadURL, err)
	}
	deviceID = v.Get("d")
	if deviceID == "" {
		return "", s, fmt.Errorf("pairing: parse url: no device ID: %w", ErrBadURL)
	}
	if v.Get("s") == "" {
		return "", s, fmt.Errorf("pairing: parse url: no secret: %w", ErrBadURL)
	}
	s, err = ParseSecret(v.Get("s"))
	if err != nil {
		return "", s, err
	}
	return deviceID, s, nil
}

func mac(s Secret, parts ...string) string {
	h := hmac.New(sha256.New, s[:])
	h.Write([]byte(strings.Join(parts, "\n")))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// RequestProof is what the parent's page sends to ask a terminal to pair:
// HMAC-SHA256(secret, "tuanju/v1 pair request\n" + deviceID + "\n" + nonce).
func RequestProof(s Secret, deviceID, nonce string) string {
	return mac(s, "tuanju/v1 pair request", deviceID, nonce)
}

// AcceptProof is what the terminal returns once its button confirmed the
// pairing, so the page knows it reached the real terminal:
// HMAC-SHA256(secret, "tuanju/v1 pair accept\n" + deviceID + "\n" + nonce + "\n" + pairID).
func AcceptProof(s Secret, deviceID, nonce, pairID string) string {
	return mac(s, "tuanju/v1 pair accept", deviceID, nonce, pairID)
}

// Verify compares a received proof with the expected one in constant time.
func Verify(expected, got string) bool {
	return hmac.Equal([]byte(expected), []byte(got))
}
