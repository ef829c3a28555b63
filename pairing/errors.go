package pairing

import "errors"

var (
	// ErrBadSecret: a pairing secret that is not 16 bytes of base64url.
	ErrBadSecret = errors.New("malformed pairing secret")
	// ErrBadURL: a pairing URL without the device ID or secret.
	ErrBadURL = errors.New("malformed pairing URL")
)
