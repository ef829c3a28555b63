package media

import (
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pion/mediadevices"
	"github.com/pion/mediadevices/pkg/io/video"
)

// guardVideo reports a camera that fails while the capture is open — a USB
// camera pulled out mid-call — on Lost, and keeps the track alive: after the
// failure it sends black pictures at the profile's rate until Close. An
// error would end mediadevices' track, and a track ended that way can make
// its Unbind (hence pc.Close) hang forever (v0.9.4).
func (c *Capture) guardVideo(t mediadevices.Track, what string) {
	vt, ok := t.(*mediadevices.VideoTrack)
	if !ok {
		return
	}
	every := time.Second / time.Duration(max(c.profile.FPS, 1))
	vt.Transform(func(r video.Reader) video.Reader {
		var failed bool
		var black *image.YCbCr
		size := image.Rect(0, 0, c.profile.Width, c.profile.Height)
		return video.ReaderFunc(func() (image.Image, func(), error) {
			if !failed {
				img, release, err := r.Read()
				if err == nil {
					size = img.Bounds()
					return img, release, nil
				}
				if errors.Is(err, io.EOF) || c.closing.Load() {
					return nil, func() {}, io.EOF
				}
				failed = true
				c.lose(fmt.Errorf("media: %s lost: %w: %w", what, ErrSourceLost, err))
			}
			if c.closing.Load() {
				return nil, func() {}, io.EOF
			}
			time.Sleep(every)
			if black == nil || black.Rect != size {
				black = blackPicture(size)
			}
			return black, func() {}, nil
		})
	})
}

func (c *Capture) lose(err error) {
	c.log.Error("source lost mid-call", "err", err)
	select {
	case c.lost <- err:
	default: // one loss is enough to end the call
	}
}

// blackPicture is an I420 picture of video black (Y 16, Cb Cr 128).
func blackPicture(r image.Rectangle) *image.YCbCr {
	img := image.NewYCbCr(r, image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = 16
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = 128, 128
	}
	return img
}

// Lost delivers the first source failure of an open capture (wrapping
// ErrSourceLost): the call cannot go on without its camera. It delivers
// nothing after Close.
func (c *Capture) Lost() <-chan error { return c.lost }

// CameraPresent reports whether the camera cfg names is there (nil) or not
// (ErrNoCamera): the terminal shows "needs repair" while a camera it needs is
// missing, and checks this to see it come back. It only looks (a device node,
// the simulated socket); it opens nothing.
func CameraPresent(cfg CaptureConfig) error {
	if !cfg.Profile.Video {
		return nil
	}
	switch cfg.Camera {
	case SourceSynthetic:
		if !cfg.SyntheticSocket.Plugged() {
			return fmt.Errorf("media: synthetic camera: %w", ErrNoCamera)
		}
		return nil
	case SourceV4L2:
		return v4l2Present(cfg.CameraDevice)
	}
	return nil
}

// v4l2Present: a named device node exists, or (no name) any /dev/video*.
func v4l2Present(device string) error {
	if device != "" {
		if _, err := os.Stat(device); err != nil {
			return fmt.Errorf("media: camera %s: %w", device, ErrNoCamera)
		}
		return nil
	}
	if nodes, _ := filepath.Glob("/dev/video*"); len(nodes) == 0 {
		return fmt.Errorf("media: no /dev/video*: %w", ErrNoCamera)
	}
	return nil
}
