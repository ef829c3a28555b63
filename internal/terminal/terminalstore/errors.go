package terminalstore

import (
	"errors"

	"github.com/tuanju/tuanju/internal/boltfile"
)

var (
	// ErrNotPaired: the terminal has no parent yet.
	ErrNotPaired = errors.New("not paired")
	// ErrAlreadyPaired: the terminal has a parent; reset first.
	ErrAlreadyPaired = errors.New("already paired")
	// ErrCorrupt: a stored value cannot be decoded.
	ErrCorrupt = errors.New("corrupt state")
	// ErrNoIdentity: the unit was never provisioned: no device key and
	// certificate were imported (terminald identity import).
	ErrNoIdentity = errors.New("no device identity")
	// ErrNoCertificate: a device key is stored but no certificate for it
	// (a unit from before device certificates): it must be provisioned.
	ErrNoCertificate = errors.New("no device certificate")
	// ErrIdentityExists: a different provisioned identity is already stored.
	ErrIdentityExists = errors.New("another device identity is already stored")
	// ErrInvalid: a value to store is out of range.
	ErrInvalid = errors.New("invalid value")
	// ErrDamaged: the state file is not a sound bbolt file (boltfile).
	ErrDamaged = boltfile.ErrDamaged
)
