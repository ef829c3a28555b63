package pairing

import "errors"

var (
	// ErrBadSecret: a pairing secret that is not 16 bytes of base64url.
	ErrBadSecret = errors.New("malformed pairing secret")
	// ErrBadURL: a pairing URL without the device ID or secret.
	ErrBadURL = errors.New("malformed pairing URL")
	// ErrBadKey: a public key that is not an ECDSA/ECDH P-256 key in the
	// expected encoding.
	ErrBadKey = errors.New("malformed public key")
	// ErrBadProof: an HMAC proof or a signature does not verify. The
	// message was forged, replayed into another exchange, or the sender does
	// not know the pairing secret.
	ErrBadProof = errors.New("pairing proof does not verify")
	// ErrWrongDevice: the terminal's key does not hash to the device ID the
	// label carries: someone other than the labelled terminal answered.
	ErrWrongDevice = errors.New("device key does not match the label")
	// ErrStale: a signed call message outside the accepted time window.
	ErrStale = errors.New("signed message is too old or from the future")
	// ErrFingerprint: an SDP whose DTLS fingerprint is missing, ambiguous or
	// not the signed one.
	ErrFingerprint = errors.New("DTLS fingerprint mismatch")
	// ErrBadSDP: an SDP outside the one shape both sides accept (see
	// CheckSDP): it is neither signed, verified nor applied.
	ErrBadSDP = errors.New("SDP refused")
	// ErrOutOfOrder: a call message its call's binding is not ready for
	// (an accept of no ring, a second accept, an offer before the accept).
	ErrOutOfOrder = errors.New("call message out of order")
)
