package media

import "errors"

var (
	// ErrNoCamera means no camera is attached (or the named one is not): the
	// terminal can still make an audio call, and the self-test reports the camera
	// as missing rather than broken. A camera that exists but fails to open is a
	// different, unwrapped error.
	ErrNoCamera = errors.New("media: no camera")
	// ErrNoMicrophone means no microphone is attached (or not the named
	// one), reported apart from one that fails, as ErrNoCamera is.
	ErrNoMicrophone = errors.New("media: no microphone")
	// ErrUnknownProfile is returned by ProfileByName for a name it does not know.
	ErrUnknownProfile = errors.New("media: unknown profile")
	// ErrInvalidProfile wraps every Profile.Validate failure.
	ErrInvalidProfile = errors.New("media: invalid profile")
	// ErrUnknownSource means a CaptureConfig names a camera or microphone source
	// this build does not have.
	ErrUnknownSource = errors.New("media: unknown source")
	// ErrSourceLost means a camera or microphone failed in the middle of a
	// call (a USB camera pulled out): see Capture.Lost.
	ErrSourceLost = errors.New("source lost")
)
