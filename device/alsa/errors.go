package alsa

import "errors"

var (
	// ErrNoDevice means the named card, PCM device, subdevice or direction
	// does not exist (or there is no sound card at all): hardware absent, as
	// opposed to hardware failing.
	ErrNoDevice = errors.New("alsa: no such device")
	// ErrBusy means the PCM (or the requested subdevice) is open elsewhere.
	ErrBusy = errors.New("alsa: device busy")
	// ErrBadName means a device name is not one this package understands.
	ErrBadName = errors.New("alsa: bad device name")
	// ErrUnsupported means the hardware cannot do what was asked: S16_LE
	// interleaved, the channel count, any rate near the wanted one.
	ErrUnsupported = errors.New("alsa: unsupported by the hardware")
	// ErrClosed is returned by Read, Write and the others once Close was
	// called, including to a Read or Write that Close interrupted.
	ErrClosed = errors.New("alsa: closed")
)
