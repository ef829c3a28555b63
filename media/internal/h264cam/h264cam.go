// Package h264cam streams a camera's own H.264 through V4L2: a UVC camera
// that encodes H.264 itself (V4L2_PIX_FMT_H264) costs the board no CPU for
// video at all, where a raw or MJPEG camera needs openh264 on every frame.
//
// A Camera hands out access units exactly as the camera produced them (one
// V4L2 buffer = one access unit, Annex B), copied out of the mmap'd buffer,
// for the caller to packetize without decoding or re-encoding (package media
// does that). It also reaches the camera's codec controls where the driver
// has them: forcing an IDR picture (V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME) and
// the bitrate (V4L2_CID_MPEG_VIDEO_BITRATE); many UVC cameras expose
// neither through uvcvideo, which ErrUnsupported reports.
//
// The V4L2 side uses github.com/blackjack/webcam (already under
// mediadevices' camera driver).
package h264cam

import "time"

// Want is the picture a call would like (the media profile's).
type Want struct {
	Width, Height, FPS int
}

// Mode is an H.264 size and rate a camera offers.
type Mode struct {
	Width, Height int
	// FPS is the highest rate the camera lists for the size, 0 if it lists
	// none.
	FPS float64
}

// fits mirrors media's rule for raw modes: within half to twice the wanted
// size each way, and at least the wanted rate (or no rate listed).
func (m Mode) fits(w Want) bool {
	return m.Width >= w.Width/2 && m.Width <= 2*w.Width && m.Height >= w.Height/2 && m.Height <= 2*w.Height &&
		(m.FPS == 0 || m.FPS >= float64(w.FPS))
}

// ChooseMode picks the mode nearest w (by area) among those that fit, or
// reports false.
func ChooseMode(modes []Mode, w Want) (Mode, bool) {
	var best Mode
	found := false
	dist := func(m Mode) int {
		d := m.Width*m.Height - w.Width*w.Height
		return max(d, -d)
	}
	for _, m := range modes {
		if !m.fits(w) {
			continue
		}
		if !found || dist(m) < dist(best) || (dist(m) == dist(best) && m.FPS > best.FPS) {
			best, found = m, true
		}
	}
	return best, found
}

// readTimeout is how long ReadAccessUnit waits for a buffer before it
// checks again for Close (and the camera's liveness). A camera that sends
// nothing for this long while streaming is reported, not waited on forever.
const readTimeout = 1 * time.Second

// stallTimeout is how long a streaming camera may deliver nothing before
// ReadAccessUnit gives up with an error: the call treats it as lost.
const stallTimeout = 5 * time.Second
