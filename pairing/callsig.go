package pairing

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// Every call is authenticated end to end with the keys exchanged at
// pairing. The caller signs its ring, the callee its accept, the terminal
// its offer and the parent its answer. Each signature covers the call's
// binding: the call ID, a fresh nonce from each side (the caller's in its
// ring, the callee's in its accept) and, from the offer on, the SHA-256 of
// the exact bytes of the offer (and the answer) SDP; an ICE restart's offer
// and answer also cover the restart's number (Binding.Restart).
//
// So the rendezvous server, which relays all of them, cannot start a call
// on anyone's behalf, cannot change one byte of an SDP (no parser
// differential can help it: the bytes that are verified are the bytes that
// are applied), and cannot replay a recorded call: the terminal's nonce is
// new for every call and its peer's answer must sign it, so freshness does
// not depend on any clock the server could set. The signing time is still
// checked (MaxSkew) to bound what a replayed ring can do.

const labelCall = "tuanju/v3 call"

// MaxSkew is how far a signed call message's time may be from the
// receiver's clock. Terminals correct their clock by the server's time at
// login (boards often have no real-time clock), within bounds they keep
// themselves; phones keep good time. Replay protection does not rest on it
// (see Binding).
const MaxSkew = 10 * time.Minute

// Binding is what both ends of one call know once its ring and accept have
// crossed, and what every signature from the accept on covers.
type Binding struct {
	CallID string
	// RingNonce is the caller's fresh nonce (its ring's "nonce");
	// AcceptNonce the callee's (its accept's "nonce").
	RingNonce, AcceptNonce string
	// OfferHash is SDPHash of the offer as sent (terminal) or received
	// (parent): the answer signs the offer it answers.
	OfferHash string
	// Prepared: the accept nonce came in a prepare (the callee asked for
	// the offer while it was still ringing), or the caller prepared its own
	// call (its prepare carries no nonce: the callee's offer brings it),
	// and no accept has come yet. NonceOffered: the accept nonce came with
	// the callee's offer to the caller's prepare. Not signed: they order
	// messages (Calls.Add).
	Prepared, NonceOffered bool
	// Restart is the ICE restart an offer or answer belongs to: 0 for the
	// call's first, then 1, 2, … (the message's "restart"). A receiver
	// takes only a restart above the last it applied, so a relay cannot
	// replay an earlier offer of the same call; the terminal also checks
	// that an answer signs its newest offer's hash.
	Restart int
}

// CallSig is a signed call message's signature and signing time.
type CallSig struct {
	SignedAt  string // RFC 3339, UTC, whole seconds
	Signature string // P1363 ECDSA P-256, base64url
}

// NewNonce is a fresh call nonce: 256 random bits, base64url.
func NewNonce() string { return protocol.NewNonce() }

var noncePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// callText is exactly what a call message's signature covers. Each field
// comes from a restricted alphabet (no newline), so the text is unambiguous.
// Which fields a type fills is fixed: ring (call, ring nonce), accept and
// prepare (+ accept nonce), offer (+ offer hash), answer (+ answer hash).
// The type is signed too, so a prepare can never pass for an accept.
func callText(typ string, b Binding, signedAt, sdpHash string) (string, error) {
	if !protocol.ValidID(b.CallID) {
		return "", fmt.Errorf("pairing: %s: call_id %.40q: %w", typ, b.CallID, ErrBadProof)
	}
	need := func(name, v string) error {
		if !noncePattern.MatchString(v) {
			return fmt.Errorf("pairing: %s %s: %s missing or malformed: %w", typ, b.CallID, name, ErrBadProof)
		}
		return nil
	}
	var accept, offer, answer string
	if err := need("ring nonce", b.RingNonce); err != nil {
		return "", err
	}
	switch typ {
	case protocol.TypeRing:
	case protocol.TypePrepare:
		// The callee's prepare signs the nonce its accept will bring; the
		// caller's prepare of its own call, none: the line stays empty.
		if b.AcceptNonce != "" {
			if err := need("accept nonce", b.AcceptNonce); err != nil {
				return "", err
			}
			accept = b.AcceptNonce
		}
	case protocol.TypeAccept, protocol.TypeOffer, protocol.TypeAnswer:
		if err := need("accept nonce", b.AcceptNonce); err != nil {
			return "", err
		}
		accept = b.AcceptNonce
		switch typ {
		case protocol.TypeOffer:
			offer = sdpHash
		case protocol.TypeAnswer:
			if err := need("offer hash", b.OfferHash); err != nil {
				return "", err
			}
			offer, answer = b.OfferHash, sdpHash
		}
	default:
		return "", fmt.Errorf("pairing: %q is not a signed call message: %w", typ, ErrBadProof)
	}
	text := strings.Join([]string{labelCall, typ, b.CallID, signedAt, b.RingNonce, accept, offer, answer}, "\n")
	switch {
	case b.Restart < 0 || b.Restart > protocol.MaxRestarts || (b.Restart != 0 && !hasSDP(typ)):
		return "", fmt.Errorf("pairing: %s %s: restart %d: %w", typ, b.CallID, b.Restart, ErrBadProof)
	case b.Restart > 0:
		// A ninth line: the first offer and answer keep the eight-line
		// text they always had, and no text of one form is the other's.
		text += "\nrestart " + strconv.Itoa(b.Restart)
	}
	return text, nil
}

func hasSDP(typ string) bool { return typ == protocol.TypeOffer || typ == protocol.TypeAnswer }

// SignCall signs one call message of type typ (ring, accept, offer,
// answer) at time at, over the binding so far and, for an offer or answer,
// the exact bytes of sdp (which must pass CheckSDP).
func SignCall(key *ecdsa.PrivateKey, typ string, b Binding, sdp string, at time.Time) (CallSig, error) {
	var h string
	if hasSDP(typ) {
		var err error
		if h, err = SDPHash(sdp); err != nil {
			return CallSig{}, err
		}
	} else if sdp != "" {
		return CallSig{}, fmt.Errorf("pairing: %s carries no SDP: %w", typ, ErrBadProof)
	}
	c := CallSig{SignedAt: at.UTC().Truncate(time.Second).Format(time.RFC3339)}
	text, err := callText(typ, b, c.SignedAt, h)
	if err != nil {
		return CallSig{}, err
	}
	c.Signature, err = sign(key, text)
	return c, err
}

// VerifyCall checks a received call message: signed by the paired peer's
// key pub, over the binding the receiver holds (its own nonce among it) and
// over exactly sdp for an offer or answer, and signed within MaxSkew of now.
func VerifyCall(pub *ecdsa.PublicKey, typ string, b Binding, sdp string, c CallSig, now time.Time) error {
	at, err := time.Parse(time.RFC3339, c.SignedAt)
	if err != nil {
		return fmt.Errorf("pairing: %s %s: signed_at %.40q: %w", typ, b.CallID, c.SignedAt, ErrBadProof)
	}
	if d := now.Sub(at); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("pairing: %s %s signed at %s, now %s: %w", typ, b.CallID, c.SignedAt, now.UTC().Format(time.RFC3339), ErrStale)
	}
	var h string
	if hasSDP(typ) {
		if h, err = SDPHash(sdp); err != nil {
			return fmt.Errorf("pairing: %s %s: %w", typ, b.CallID, err)
		}
	} else if sdp != "" {
		return fmt.Errorf("pairing: %s %s carries an SDP: %w", typ, b.CallID, ErrBadProof)
	}
	text, err := callText(typ, b, c.SignedAt, h)
	if err != nil {
		return err
	}
	if !verify(pub, text, c.Signature) {
		return fmt.Errorf("pairing: %s %s: signature: %w", typ, b.CallID, ErrBadProof)
	}
	return nil
}

// CheckSDP is the one rule every SDP must pass before it is signed,
// verified or applied, on both sides (the page has the same rule): printable
// ASCII lines ending in CRLF or LF and nothing else (no other control
// character, no lone CR, no byte over 0x7E), starting "v=0", ending with a
// line end, and exactly one DTLS fingerprint (SDPFingerprint). A line that
// one SDP parser reads and another skips is how a relay could slip a second
// fingerprint past a check; with this rule there is no such line.
func CheckSDP(sdp string) error {
	if err := protocol.CheckSDP(sdp); err != nil {
		return fmt.Errorf("pairing: %w: %w", ErrBadSDP, err)
	}
	for i := 0; i < len(sdp); i++ {
		switch c := sdp[i]; {
		case c == '\n':
		case c == '\r':
			if i+1 >= len(sdp) || sdp[i+1] != '\n' {
				return fmt.Errorf("pairing: SDP has a carriage return not before a line feed at byte %d: %w", i, ErrBadSDP)
			}
		case c < 0x20 || c > 0x7e:
			return fmt.Errorf("pairing: SDP has byte 0x%02x at %d (only printable ASCII and line ends): %w", c, i, ErrBadSDP)
		}
	}
	if !strings.HasSuffix(sdp, "\n") {
		return fmt.Errorf("pairing: SDP does not end with a line end: %w", ErrBadSDP)
	}
	_, err := sdpFingerprint(sdp)
	return err
}

// SDPHash is the base64url SHA-256 of an SDP's exact bytes, which call
// signatures cover; the SDP must pass CheckSDP.
func SDPHash(sdp string) (string, error) {
	if err := CheckSDP(sdp); err != nil {
		return "", err
	}
	h := sha256.Sum256([]byte(sdp))
	return b64.EncodeToString(h[:]), nil
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
// canonical form, after CheckSDP. Every a=fingerprint line (session or
// media level) must be SHA-256 and the same: an SDP that offers several
// certificates could slip one past a check of another.
func SDPFingerprint(sdp string) (string, error) {
	if err := CheckSDP(sdp); err != nil {
		return "", err
	}
	return sdpFingerprint(sdp)
}

func sdpFingerprint(sdp string) (string, error) {
	var fp string
	for line := range strings.Lines(sdp) {
		// The attribute's name in any letter case: a parser that ignores
		// case must not find a line this scan skipped.
		l := strings.TrimRight(line, "\r\n")
		const attr = "a=fingerprint:"
		if len(l) < len(attr) || !strings.EqualFold(l[:len(attr)], attr) {
			continue
		}
		v := l[len(attr):]
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
