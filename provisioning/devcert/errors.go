package devcert

import "errors"

var (
	// ErrMalformed: the bytes are not a device certificate of the expected
	// shape (not DER, oversized, wrong key type, a CA certificate, no
	// digitalSignature usage, a common name that is not a device ID).
	ErrMalformed = errors.New("malformed device certificate")
	// ErrUntrusted: the certificate does not chain to any of the program CAs.
	ErrUntrusted = errors.New("device certificate not signed by a program CA")
	// ErrExpired: the certificate is outside its validity period now.
	ErrExpired = errors.New("device certificate expired or not yet valid")
	// ErrMismatch: the certificate is valid but for another key or device:
	// its key is not the one presented, or its CN is not the device ID.
	ErrMismatch = errors.New("device certificate is for another device")
	// ErrBadCA: a program CA file or key is unreadable or inconsistent.
	ErrBadCA = errors.New("bad program CA")
	// ErrBadBundle: an identity bundle lacks its key or certificate, or they
	// do not belong together.
	ErrBadBundle = errors.New("bad identity bundle")
)
