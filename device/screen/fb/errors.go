package fb

import "errors"

var (
	// ErrUnsupportedFormat means the framebuffer's pixel layout is not one
	// Canvas can write: not packed pixels, not true colour (8 bpp palette
	// modes, monochrome), or colour fields wider than 8 bits. Set a mode
	// (Options.Mode) or configure the driver for 16, 24 or 32 bpp.
	ErrUnsupportedFormat = errors.New("fb: unsupported pixel format")

	// ErrModeRejected means the driver did not accept the mode Options.Mode
	// asked for (it answered with another size or depth, or refused).
	ErrModeRejected = errors.New("fb: mode rejected")

	// ErrNoBlank means the driver cannot blank the screen (FBIOBLANK
	// answered EINVAL, as vfb and some SPI panel drivers do). The caller
	// can show black instead.
	ErrNoBlank = errors.New("fb: blanking not supported by the driver")

	// ErrBadImage means Draw was given nothing to show: a nil or empty
	// picture.
	ErrBadImage = errors.New("fb: nothing to draw")

	// ErrClosed means the framebuffer has been closed.
	ErrClosed = errors.New("fb: closed")
)
