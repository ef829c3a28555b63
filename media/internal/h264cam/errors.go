package h264cam

import "errors"

var (
	// ErrNoH264 means the device offers no H.264 format at all: the caller
	// encodes in software instead. It is not a fault.
	ErrNoH264 = errors.New("h264cam: camera offers no H.264")
	// ErrNoUsableMode means the device offers H.264, but at no size and rate
	// near the wanted ones (see Want).
	ErrNoUsableMode = errors.New("h264cam: no usable H.264 mode")
	// ErrUnsupported means the camera has no control for what was asked
	// (forcing a key frame, setting the bitrate).
	ErrUnsupported = errors.New("h264cam: control not supported by the camera")
	// ErrClosed is returned by ReadAccessUnit after Close.
	ErrClosed = errors.New("h264cam: camera closed")
	// ErrBadSPS wraps every ParseSPS failure.
	ErrBadSPS = errors.New("h264cam: bad SPS")
)
