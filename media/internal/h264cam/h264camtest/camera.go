// Package h264camtest has a fake H.264 camera for tests of the passthrough
// path: the same methods as h264cam.Camera, fed from a list of access units.
package h264camtest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tuanju/tuanju/media/internal/h264cam"
)

// Camera delivers AUs in order, one per Interval (none: at once). With Loop
// it starts over at the end; otherwise it then returns Err, or blocks until
// Close if Err is nil. Set the fields before the first call.
type Camera struct {
	AUs      [][]byte
	Interval time.Duration
	Loop     bool
	Err      error
	// KeyFrameErr and BitrateErr are what ForceKeyFrame and SetBitrate
	// answer (h264cam.ErrUnsupported for a camera without the control).
	KeyFrameErr, BitrateErr error

	once      sync.Once
	closeOnce sync.Once
	closed    chan struct{}
	next      int
	keyFrames atomic.Int64
	bitrate   atomic.Int64
}

func (c *Camera) init() { c.once.Do(func() { c.closed = make(chan struct{}) }) }

// ReadAccessUnit returns a copy of the next access unit.
func (c *Camera) ReadAccessUnit() ([]byte, error) {
	c.init()
	if c.Interval > 0 {
		select {
		case <-time.After(c.Interval):
		case <-c.closed:
			return nil, h264cam.ErrClosed
		}
	}
	select {
	case <-c.closed:
		return nil, h264cam.ErrClosed
	default:
	}
	if c.next >= len(c.AUs) {
		if c.Loop && len(c.AUs) > 0 {
			c.next = 0
		} else if c.Err != nil {
			return nil, c.Err
		} else {
			<-c.closed
			return nil, h264cam.ErrClosed
		}
	}
	au := append([]byte(nil), c.AUs[c.next]...)
	c.next++
	return au, nil
}

// ForceKeyFrame counts the request (unless KeyFrameErr is set).
func (c *Camera) ForceKeyFrame() error {
	if c.KeyFrameErr != nil {
		return c.KeyFrameErr
	}
	c.keyFrames.Add(1)
	return nil
}

// KeyFrames is how many key frames were asked for.
func (c *Camera) KeyFrames() int { return int(c.keyFrames.Load()) }

// SetBitrate records bps (unless BitrateErr is set).
func (c *Camera) SetBitrate(bps int) (int, error) {
	if c.BitrateErr != nil {
		return 0, c.BitrateErr
	}
	c.bitrate.Store(int64(bps))
	return bps, nil
}

// Bitrate is the last bitrate set, 0 if none.
func (c *Camera) Bitrate() int { return int(c.bitrate.Load()) }

// Close ends a pending or later ReadAccessUnit with h264cam.ErrClosed.
func (c *Camera) Close() error {
	c.init()
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}
