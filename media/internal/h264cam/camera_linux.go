//go:build linux

package h264cam

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blackjack/webcam"
	"golang.org/x/sys/unix"
)

// V4L2 constants (linux/videodev2.h, linux/v4l2-controls.h).
const (
	pixFmtH264       = webcam.PixelFormat('H' | '2'<<8 | '6'<<16 | '4'<<24)
	cidCodecBase     = 0x00990000 | 0x900
	cidBitrate       = webcam.ControlID(cidCodecBase + 207) // V4L2_CID_MPEG_VIDEO_BITRATE
	cidForceKeyFrame = webcam.ControlID(cidCodecBase + 229) // V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME
	bufferCount      = 4
)

// Camera is an open V4L2 camera streaming H.264. ReadAccessUnit is for one
// goroutine; ForceKeyFrame, SetBitrate and Close may be called from others.
type Camera struct {
	path string
	mode Mode
	cam  *webcam.Webcam
	// readMu is held by ReadAccessUnit while it uses the device, so Close
	// does not close the descriptor under it.
	readMu sync.Mutex
	closed atomic.Bool
	ctlMu  sync.Mutex
}

// Modes lists the H.264 sizes (and best rate for each) the camera at path
// offers, ErrNoH264 if none.
func Modes(path string) ([]Mode, error) {
	cam, err := webcam.Open(path)
	if err != nil {
		return nil, openError(path, err)
	}
	defer cam.Close()
	return modes(cam, path, Want{})
}

// modes lists discrete sizes as they are and a stepwise range by its ends
// plus, if want is set, want's size clamped into the range and onto its
// steps (what S_FMT would give).
func modes(cam *webcam.Webcam, path string, want Want) ([]Mode, error) {
	if _, ok := cam.GetSupportedFormats()[pixFmtH264]; !ok {
		return nil, fmt.Errorf("h264cam: %s: %w", path, ErrNoH264)
	}
	var out []Mode
	for _, s := range cam.GetSupportedFrameSizes(pixFmtH264) {
		// Discrete sizes have min == max; a stepwise range is listed by its
		// ends (the wanted size is clamped into it by the driver on S_FMT).
		sizes := [][2]uint32{{s.MinWidth, s.MinHeight}, {s.MaxWidth, s.MaxHeight}}
		if want.Width > 0 && (s.MinWidth != s.MaxWidth || s.MinHeight != s.MaxHeight) {
			sizes = append(sizes, [2]uint32{clampStep(uint32(want.Width), s.MinWidth, s.MaxWidth, s.StepWidth),
				clampStep(uint32(want.Height), s.MinHeight, s.MaxHeight, s.StepHeight)})
		}
		for _, wh := range sizes {
			m := Mode{Width: int(wh[0]), Height: int(wh[1])}
			for _, r := range cam.GetSupportedFramerates(pixFmtH264, wh[0], wh[1]) {
				// A frame interval num/den: the shortest interval is the
				// highest rate.
				if r.MinNumerator > 0 {
					m.FPS = max(m.FPS, float64(r.MaxDenominator)/float64(r.MinNumerator))
				}
			}
			if len(out) == 0 || out[len(out)-1] != m {
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("h264cam: %s lists H.264 but no sizes: %w", path, ErrNoUsableMode)
	}
	return out, nil
}

// openError: webcam.Open fails with an errno from the kernel, or with a
// plain error for a node that is no streaming capture device (a UVC
// camera's metadata node): that one has no H.264 to offer, it is not broken.
func openError(path string, err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return fmt.Errorf("h264cam: open %s: %w", path, err)
	}
	return fmt.Errorf("h264cam: %s: %v: %w", path, err, ErrNoH264)
}

func clampStep(v, lo, hi, step uint32) uint32 {
	v = min(max(v, lo), hi)
	if step > 1 {
		v = lo + (v-lo)/step*step
	}
	return v
}

// Open opens the camera at path in its H.264 mode nearest want and starts
// streaming (mmap). ErrNoH264 and ErrNoUsableMode say the camera cannot do
// it, so the caller should encode in software; any other error is a fault.
func Open(path string, want Want) (*Camera, error) {
	cam, err := webcam.Open(path)
	if err != nil {
		return nil, openError(path, err)
	}
	ok := false
	defer func() {
		if !ok {
			cam.Close()
		}
	}()
	ms, err := modes(cam, path, want)
	if err != nil {
		return nil, err
	}
	m, found := ChooseMode(ms, want)
	if !found {
		return nil, fmt.Errorf("h264cam: %s offers %v, none near %dx%d@%d: %w", path, ms, want.Width, want.Height, want.FPS, ErrNoUsableMode)
	}
	f, _, _, err := cam.SetImageFormat(pixFmtH264, uint32(m.Width), uint32(m.Height))
	if err != nil {
		return nil, fmt.Errorf("h264cam: %s: set H.264 %dx%d: %w", path, m.Width, m.Height, err)
	}
	if f != pixFmtH264 {
		return nil, fmt.Errorf("h264cam: %s: asked H.264, driver set %#x: %w", path, uint32(f), ErrNoH264)
	}
	// The camera's rate: the profile's where the camera can lower it, else
	// what it has (the GOP and bitrate are the camera's either way).
	if want.FPS > 0 && (m.FPS == 0 || m.FPS > float64(want.FPS)) {
		if err := cam.SetFramerate(float32(want.FPS)); err == nil {
			if got, err := cam.GetFramerate(); err == nil && got > 0 && !math.IsInf(float64(got), 0) {
				m.FPS = float64(got)
			}
		}
	}
	if err := cam.SetBufferCount(bufferCount); err != nil {
		return nil, fmt.Errorf("h264cam: %s: %w", path, err)
	}
	if err := cam.StartStreaming(); err != nil {
		return nil, fmt.Errorf("h264cam: %s: start streaming: %w", path, err)
	}
	ok = true
	return &Camera{path: path, mode: m, cam: cam}, nil
}

// Mode is the mode the camera streams in (its rate as the driver reports
// it, 0 if unknown).
func (c *Camera) Mode() Mode { return c.mode }

// Path is the device the camera was opened at.
func (c *Camera) Path() string { return c.path }

// ReadAccessUnit blocks for the camera's next buffer and returns a copy of
// it: one H.264 access unit in Annex B. After Close it returns ErrClosed; a
// camera unplugged mid-stream gives the kernel's ENODEV (wrapped), and one
// that stops delivering for stallTimeout an error too — both mean the
// camera is gone for this call.
func (c *Camera) ReadAccessUnit() ([]byte, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	deadline := time.Now().Add(stallTimeout)
	for {
		if c.closed.Load() {
			return nil, ErrClosed
		}
		err := c.cam.WaitForFrame(uint32(readTimeout / time.Second))
		var timeout *webcam.Timeout
		switch {
		case errors.As(err, &timeout):
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("h264cam: %s: no picture for %v", c.path, stallTimeout)
			}
			continue
		case err != nil:
			return nil, fmt.Errorf("h264cam: %s: wait: %w", c.path, err)
		}
		buf, index, err := c.cam.GetFrame()
		if errors.Is(err, errAgain) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("h264cam: %s: dequeue: %w", c.path, err)
		}
		// A buffer filled to its last byte is not an access unit: either
		// the driver had to cut one that did not fit, or it is a buffer
		// nobody wrote since REQBUFS (v4l2loopback reports those as full).
		full := len(buf) == cap(buf)
		// Zero padding after the last NAL unit (trailing_zero_8bits, or a
		// driver's) would only be sent over the parent's metered link.
		au := bytes.Clone(bytes.TrimRight(buf, "\x00"))
		if err := c.cam.ReleaseFrame(index); err != nil {
			return nil, fmt.Errorf("h264cam: %s: requeue: %w", c.path, err)
		}
		if full || len(au) == 0 {
			continue
		}
		return au, nil
	}
}

// ForceKeyFrame asks the camera's encoder for an IDR picture next.
// ErrUnsupported if the driver has no such control.
func (c *Camera) ForceKeyFrame() error {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	if err := c.cam.SetControl(cidForceKeyFrame, 1); err != nil {
		if isNoControl(err) {
			return fmt.Errorf("h264cam: %s: force key frame: %w", c.path, ErrUnsupported)
		}
		return fmt.Errorf("h264cam: %s: force key frame: %w", c.path, err)
	}
	return nil
}

// SetBitrate sets the camera encoder's target (bits per second, clamped to
// the control's range) and returns what the driver reports back.
// ErrUnsupported if there is no bitrate control: then the stream's rate is
// the camera's own.
func (c *Camera) SetBitrate(bps int) (int, error) {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if c.closed.Load() {
		return 0, ErrClosed
	}
	ctl, ok := c.cam.GetControls()[cidBitrate]
	if !ok {
		return 0, fmt.Errorf("h264cam: %s: bitrate: %w", c.path, ErrUnsupported)
	}
	v := int32(min(max(bps, int(ctl.Min)), int(ctl.Max)))
	if err := c.cam.SetControl(cidBitrate, v); err != nil {
		return 0, fmt.Errorf("h264cam: %s: set bitrate %d: %w", c.path, v, err)
	}
	got, err := c.cam.GetControl(cidBitrate)
	if err != nil {
		return int(v), nil
	}
	return int(got), nil
}

// Close stops streaming and closes the device. It waits for a pending
// ReadAccessUnit to notice (up to readTimeout). Safe to call twice.
func (c *Camera) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if err := c.cam.Close(); err != nil {
		return fmt.Errorf("h264cam: close %s: %w", c.path, err)
	}
	return nil
}
