package media

import (
	"slices"

	"github.com/pion/mediadevices/pkg/frame"
	"github.com/pion/mediadevices/pkg/prop"
)

// rawFormats convert to I420 with a cheap per-pixel shuffle; MJPEG needs a
// JPEG decode of every frame on the board's CPU.
var rawFormats = []frame.Format{frame.FormatI420, frame.FormatYUYV, frame.FormatNV12, frame.FormatNV21, frame.FormatUYVY}

// cameraFormats says which pixel formats to ask a camera for, given the
// modes it reports. A raw mode near the profile's size that reaches its
// frame rate is preferred: at the low-data profile's size that is cheapest
// for a small ARM core. A camera that has no such raw mode but has one in
// MJPEG — cheap UVC cameras often reach their rates only in MJPEG — gets
// MJPEG. With neither, any format it has will do and mediadevices takes the
// nearest mode. (A camera's own H.264, where usable, never gets here: Open
// passes it through instead, see passthrough.go.)
func cameraFormats(modes []prop.Media, p Profile) (prop.FrameFormatConstraint, string) {
	fits := func(m prop.Media) bool {
		return m.Width >= p.Width/2 && m.Width <= 2*p.Width && m.Height >= p.Height/2 && m.Height <= 2*p.Height &&
			(m.FrameRate == 0 || m.FrameRate >= float32(p.FPS))
	}
	var raw, mjpeg bool
	for _, m := range modes {
		switch {
		case !fits(m):
		case slices.Contains(rawFormats, m.FrameFormat):
			raw = true
		case m.FrameFormat == frame.FormatMJPEG:
			mjpeg = true
		}
	}
	switch {
	case raw:
		return prop.FrameFormatOneOf(rawFormats), "raw"
	case mjpeg:
		return prop.FrameFormatExact(frame.FormatMJPEG), "mjpeg"
	}
	return prop.FrameFormatOneOf(append(slices.Clone(rawFormats), frame.FormatMJPEG)), "nearest"
}
