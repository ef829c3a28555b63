// Package pairing is how a terminal and its one parent come to know each
// other and how they recognise each other on every call afterwards: the
// label's secret and pairing URL, the pairing handshake (handshake.go) that
// exchanges their long-term keys, and the signatures on call messages
// (callsig.go). The secret travels only in the URL's fragment, which
// browsers never send to a server, and everything the rendezvous server
// relays is bound to it or to the exchanged keys: the server can refuse to
// relay, but it cannot pair on its own or join a call.
package pairing

import (
	"crypto/rand"
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
