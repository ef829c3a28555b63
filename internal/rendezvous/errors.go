package rendezvous

import (
	"errors"

	"github.com/tuanju/tuanju/internal/boltfile"
)

var (
	// ErrNotFound: no such device, parent or pairing in the store.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyPaired: the terminal already has a parent; a terminal has at most one.
	ErrAlreadyPaired = errors.New("already paired")
	// ErrKeyMismatch: a device ID is already registered with a different public key.
	ErrKeyMismatch = errors.New("device key does not match the pinned key")
	// ErrBadConfig: a configuration value is missing or out of range.
	ErrBadConfig = errors.New("bad configuration")
	// ErrClosed: the server is shutting down.
	ErrClosed = errors.New("server closed")
	// ErrDamaged: the registry file is not a sound bbolt file (boltfile).
	ErrDamaged = boltfile.ErrDamaged
	// ErrBadSignature: a notifier webhook request whose signature or
	// timestamp does not check out (VerifyNotifySignature).
	ErrBadSignature = errors.New("bad or stale signature")
	// ErrCallTaken: another node took an open call first (OpenCalls.TakeCall).
	ErrCallTaken = errors.New("call taken by another node")
)
