package media

import (
	"errors"
	"image"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/mediadevices/pkg/io/video"
)

// videoEncoderControl is what the ABR changes on a live H.264 encoder
// (h264enc.Encoder): its rate, the frame rate its rate control counts on,
// and the coded size (scaled down from the camera's by openh264).
type videoEncoderControl interface {
	SetRate(bitrate int) error
	SetFrameRate(fps float32) error
	SetSize(w, h int) error
}

// videoSetting is one step's video: encoder rate (bit/s), coded size and
// frame rate. Paused sends no video at all (the audio-only step).
type videoSetting struct {
	Rate          int
	Width, Height int
	FPS           float64
	Paused        bool
}

// encoderControl applies settings to every live encoder of a capture,
// including ones bound later (a peer connection's second Bind): each apply
// compares what every encoder was last given with what it should have.
type encoderControl struct {
	set      *encoderSet
	throttle *frameThrottle

	mu         sync.Mutex
	video      videoSetting
	audioRate  int
	videoGiven map[*trackedEncoder]videoSetting
	audioGiven map[*trackedEncoder]int
}

func newEncoderControl(set *encoderSet, t *frameThrottle) *encoderControl {
	return &encoderControl{set: set, throttle: t, videoGiven: map[*trackedEncoder]videoSetting{}, audioGiven: map[*trackedEncoder]int{}}
}

// setVideo makes v the video setting: frames are let through at v.FPS
// (none while paused) and every H.264 encoder gets v's rate, frame rate
// and size. An encoder leaving a pause is asked for a key frame: the
// receiver has had nothing to decode for a while.
func (c *encoderControl) setVideo(v videoSetting) error {
	c.mu.Lock()
	wasPaused := c.video.Paused
	c.video = v
	c.mu.Unlock()
	if c.throttle != nil {
		c.throttle.set(v.FPS, v.Paused)
	}
	err := c.apply()
	if wasPaused && !v.Paused {
		if _, kerr := c.set.forceKeyFrame(); kerr != nil {
			err = errors.Join(err, kerr)
		}
	}
	return err
}

// setAudioRate sets every Opus encoder's bitrate.
func (c *encoderControl) setAudioRate(bps int) error {
	c.mu.Lock()
	c.audioRate = bps
	c.mu.Unlock()
	return c.apply()
}

// apply brings every live encoder to the current settings, touching only
// what differs: a new size costs an IDR picture, so it is set once.
func (c *encoderControl) apply() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set.mu.Lock()
	encs := make([]*trackedEncoder, 0, len(c.set.encs))
	for t := range c.set.encs {
		encs = append(encs, t)
	}
	c.set.mu.Unlock()
	live := make(map[*trackedEncoder]bool, len(encs))
	var errs []error
	for _, t := range encs {
		live[t] = true
		if v, ok := t.ReadCloser.(videoEncoderControl); ok {
			errs = append(errs, c.applyVideo(t, v))
			continue
		}
		if c.audioRate > 0 && c.audioGiven[t] != c.audioRate {
			if b, ok := t.Controller().(codec.BitRateController); ok {
				if err := b.SetBitRate(c.audioRate); err != nil {
					errs = append(errs, err)
					continue
				}
				c.audioGiven[t] = c.audioRate
			}
		}
	}
	for t := range c.videoGiven {
		if !live[t] {
			delete(c.videoGiven, t)
		}
	}
	for t := range c.audioGiven {
		if !live[t] {
			delete(c.audioGiven, t)
		}
	}
	return errors.Join(errs...)
}

func (c *encoderControl) applyVideo(t *trackedEncoder, e videoEncoderControl) error {
	want, had := c.video, c.videoGiven[t]
	if want.Rate <= 0 {
		return nil // nothing set yet
	}
	if want.Width > 0 && (want.Width != had.Width || want.Height != had.Height) {
		if err := e.SetSize(want.Width, want.Height); err != nil {
			return err
		}
		had.Width, had.Height = want.Width, want.Height
	}
	if want.FPS > 0 && want.FPS != had.FPS {
		if err := e.SetFrameRate(float32(want.FPS)); err != nil {
			return err
		}
		had.FPS = want.FPS
	}
	if want.Rate != had.Rate {
		if err := e.SetRate(want.Rate); err != nil {
			return err
		}
		had.Rate = want.Rate
	}
	c.videoGiven[t] = had
	return nil
}

// frameThrottle sits between the camera and the encoders and lets frames
// through at most at a set rate, or none (the audio-only step). It is the
// cheapest way to lower the frame rate of a live capture: the camera keeps
// its mode (reopening a V4L2 camera mid-call takes hundreds of
// milliseconds and may fail), the frames not wanted are never encoded, and
// the RTP timestamps, taken from the clock at each frame, stay right.
//
// It works on credit: time earns credit at the set rate, a frame is let
// through for one credit, so 10 fps from a 15 fps camera is two
// frames of every three, evenly, and a late frame does not cost the next.
type frameThrottle struct {
	fps    atomic.Uint64 // math.Float64bits; 0 lets everything through
	paused atomic.Bool
	// passed and dropped count frames, for tests and logs.
	passed, dropped atomic.Int64
	// now is the clock frames are timed by; nil is time.Now (tests set it).
	now func() time.Time
}

func (f *frameThrottle) set(fps float64, paused bool) {
	f.fps.Store(math.Float64bits(max(fps, 0)))
	f.paused.Store(paused)
}

// transform wraps a video source: mediadevices' VideoTrack.Transform.
func (f *frameThrottle) transform(r video.Reader) video.Reader {
	var last time.Time
	credit := 1.0
	return video.ReaderFunc(func() (image.Image, func(), error) {
		for {
			img, release, err := r.Read()
			if err != nil {
				return img, release, err
			}
			now := time.Now()
			if f.now != nil {
				now = f.now()
			}
			fps := math.Float64frombits(f.fps.Load())
			if f.paused.Load() {
				release()
				f.dropped.Add(1)
				last, credit = now, 1 // the first frame after a pause goes at once
				continue
			}
			if fps <= 0 {
				f.passed.Add(1)
				return img, release, nil
			}
			if !last.IsZero() {
				credit = min(credit+now.Sub(last).Seconds()*fps, 1.5)
			}
			last = now
			// A frame a little early still goes (credit may dip just
			// below zero): camera timing wobbles, and half of 15 fps must
			// not become 5. The credit is kept, so the rate stays exact.
			if credit >= 0.95 {
				credit--
				f.passed.Add(1)
				return img, release, nil
			}
			release()
			f.dropped.Add(1)
		}
	})
}
