package protocol

import "errors"

var (
	// ErrTooLarge: a message or one of its fields is over its limit.
	ErrTooLarge = errors.New("too large")
	// ErrMalformed: not a JSON object of the expected shape.
	ErrMalformed = errors.New("malformed message")
	// ErrInvalid: well-formed JSON whose fields break the protocol's rules.
	ErrInvalid = errors.New("invalid message")
)
