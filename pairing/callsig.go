package pairing

import (
	"crypto/ecdsa"
	"fmt"
	"strings"
	"time"

	"github.com/tuanju/tuanju/internal/protocol"
)

// Every call is authenticated end to end with the keys exchanged at
// pairing. The parent signs its ring, accept and answer; the terminal signs
// its ring, accept and offer. A signature covers the message type, the call
// ID, the signing time and, for offers and answers, the DTLS fingerprint in
// the SDP — so the rendezvous server, which relays all of them, can neither
// start a call on anyone's behalf nor put itself between the two DTLS
// endpoints, and an old message replayed into another call fails.

const labelCall = "tuanju/v2 call"

// MaxSkew is how far a signed call message's time may be from the
// receiver's clock. Terminals correct their clock by the server's time at
// login (boards often have no real-time clock), phones keep good time.
const MaxSkew = 10 * time.Minute

// CallSig is what a signed call message carries besides its call ID.
type CallSig struct {
	Type        string // ring, accept, offer, answer
	CallID      string
	SignedAt    string // RFC 3339, UTC, whole seconds
	Fingerprint string // offers and answers: the SDP's DTLS fingerprint; else empty
	Signature   string // P1363 ECDSA P-256, base64url
}

func (c CallSig) signed() string {
	return strings.Join([]string{labelCall, c.Type, c.CallID, c.SignedAt, c.Fingerprint}, "\n")
}

// SignCall signs a call message at time at. For offers and answers pass the
// SDP; its fingerprint is what gets signed.
func SignCall(key *ecdsa.PrivateKey, typ, callID string, at time.Time, sdp string) (CallSig, error) {
	c := CallSig{Type: typ, CallID: callID, SignedAt: at.UTC().Truncate(time.Second).Format(time.RFC3339)}
	if sdp != "" {
		fp, err := SDPFingerprint(sdp)
		if err != nil {
			return CallSig{}, err
		}
		c.Fingerprint = fp
	}
	var err error
	c.Signature, err = sign(key, c.signed())
	return c, err
}

// VerifyCall checks a call message's signature by the paired peer's key,
// its time against now, and, when sdp is given, that the SDP carries
// exactly the signed fingerprint.
func VerifyCall(pub *ecdsa.PublicKey, c CallSig, sdp string, now time.Time) error {
	at, err := time.Parse(time.RFC3339, c.SignedAt)
	if err != nil {
		return fmt.Errorf("pairing: %s %s: signed_at %q: %w", c.Type, c.CallID, c.SignedAt, ErrBadProof)
	}
	if d := now.Sub(at); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("pairing: %s %s signed at %s, now %s: %w", c.Type, c.CallID, c.SignedAt, now.UTC().Format(time.RFC3339), ErrStale)
	}
	if sdp != "" {
		fp, err := SDPFingerprint(sdp)
		if err != nil {
			return err
		}
		if fp != c.Fingerprint {
			return fmt.Errorf("pairing: %s %s: SDP fingerprint is not the signed one: %w", c.Type, c.CallID, ErrFingerprint)
		}
	} else if c.Fingerprint != "" {
		return fmt.Errorf("pairing: %s %s: fingerprint without SDP: %w", c.Type, c.CallID, ErrFingerprint)
	}
	if !verify(pub, c.signed(), c.Signature) {
		return fmt.Errorf("pairing: %s %s: signature: %w", c.Type, c.CallID, ErrBadProof)
	}
	return nil
}

// CheckFingerprint accepts exactly the canonical form SDPFingerprint
// returns (protocol.ValidFingerprint): "sha-256 " and 32 upper-case hex
// bytes separated by colons.
func CheckFingerprint(fp string) error {
	if !protocol.ValidFingerprint(fp) {
		return fmt.Errorf("pairing: fingerprint %.80q: %w", fp, ErrFingerprint)
	}
	return nil
}

// Fingerprint puts a certificate fingerprint, as a WebRTC stack reports
// it (algorithm, hex value), in canonical form, refusing all but SHA-256.
func Fingerprint(algorithm, value string) (string, error) {
	fp := strings.ToLower(strings.TrimSpace(algorithm)) + " " + strings.ToUpper(strings.TrimSpace(value))
	if err := CheckFingerprint(fp); err != nil {
		return "", err
	}
	return fp, nil
}

// SDPFingerprint returns the one DTLS fingerprint an SDP declares, in
// canonical form. Every a=fingerprint line (session or media level) must
// be SHA-256 and the same: an SDP that offers several certificates could
// slip one past a check of another.
func SDPFingerprint(sdp string) (string, error) {
	var fp string
	for line := range strings.Lines(sdp) {
		v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "a=fingerprint:")
		if !ok {
			continue
		}
		alg, hex, ok := strings.Cut(strings.TrimSpace(v), " ")
		if !ok {
			return "", fmt.Errorf("pairing: SDP fingerprint %.80q: %w", v, ErrFingerprint)
		}
		got, err := Fingerprint(alg, hex)
		if err != nil {
			return "", err
		}
		if fp != "" && got != fp {
			return "", fmt.Errorf("pairing: SDP declares two fingerprints: %w", ErrFingerprint)
		}
		fp = got
	}
	if fp == "" {
		return "", fmt.Errorf("pairing: SDP has no DTLS fingerprint: %w", ErrFingerprint)
	}
	return fp, nil
}
