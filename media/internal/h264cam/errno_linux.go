//go:build linux

package h264cam

import (
	"errors"

	"golang.org/x/sys/unix"
)

// errAgain: the device was readable but the buffer went to another reader.
var errAgain = unix.EAGAIN

// isNoControl: V4L2 answers EINVAL for a control id it does not have, and
// ENOTTY when the driver has no control handler at all.
func isNoControl(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY)
}
