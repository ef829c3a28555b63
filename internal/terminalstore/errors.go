package terminalstore

import "errors"

var (
	// ErrNotPaired: the terminal has no parent yet.
	ErrNotPaired = errors.New("not paired")
	// ErrAlreadyPaired: the terminal has a parent; reset first.
	ErrAlreadyPaired = errors.New("already paired")
	// ErrCorrupt: a stored value cannot be decoded.
	ErrCorrupt = errors.New("corrupt state")
)
