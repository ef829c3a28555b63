package device

import "errors"

var (
	// ErrAbsent means a piece of hardware is not there at all (no pin of
	// that name, LED not fitted). It is reported apart from a failure so the
	// terminal can run with what it has and the technician's self-test can
	// name what is missing.
	ErrAbsent = errors.New("device: hardware absent")

	// ErrInvalidConfig means options or a pin map make no sense (negative
	// durations, thresholds out of order, a pin used twice).
	ErrInvalidConfig = errors.New("device: invalid configuration")

	// ErrUnknownPattern means Show was asked for a pattern that is not in
	// the table. The LEDs show Fault instead, so a bug is visible.
	ErrUnknownPattern = errors.New("device: unknown LED pattern")

	// ErrClosed means the Button or LEDs have been closed.
	ErrClosed = errors.New("device: closed")
)
