package pins

import "errors"

var (
	// ErrAmbiguous means a spec matches lines on more than one chip.
	ErrAmbiguous = errors.New("pins: ambiguous pin")
	// ErrGlobalNumber means a name resolved only to sysfs's global GPIO
	// number, which is not stable across kernels.
	ErrGlobalNumber = errors.New("pins: kernel-global GPIO number")
)
