// Package synth provides the simulated board's camera and microphone.
//
// They exist so that the demo terminal and the tests push realistic media
// through mediadevices' real encoders: a picture that behaves like a camera
// pointed at a child at home (Scene: a moving, talking face, a textured
// room, sensor noise, by day or in low light) so that H.264 rate control
// and the quality benchmarks have something honest to work with.
// mediadevices' own videotest driver emits full-frame noise that needs
// ~7 Mbit/s and says nothing about what a call costs; a few flat shapes on a
// flat wall (this package's first camera) encode at 43 dB at any bitrate
// and say nothing about quality.
package synth

import (
	"errors"
	"fmt"
	"image"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CameraOptions configure a synthetic camera.
type CameraOptions struct {
	Width, Height int // even, as I420 needs
	FPS           int
	// SentFPS, if set below FPS, is how many of the FPS pictures a second
	// the camera makes: the first, then SentFPS of every FPS ticks, evenly;
	// the other ticks pass with no picture. A call asks the camera for more
	// than it sends (media.Profile.CaptureFPS) and drops the rest before
	// the encoder. A board's camera hands a picture over for the price of
	// a copy; painting this scene costs far more (BenchmarkScene), and
	// painting pictures nobody sends would count that against the
	// simulated terminal's CPU (BenchmarkTerminalCallCPU). Frame numbers
	// (and stamps) count ticks, so the scene keeps FPS's time.
	SentFPS int
	// Unpaced makes Read return the next frame at once instead of waiting for
	// the next tick: for tests and benchmarks that encode faster than real time.
	Unpaced bool
	// Socket, if set, is the simulated socket the camera is plugged into.
	Socket *Socket
	// Seed and Light choose the scene (see SceneOptions); the zero values
	// are seed 0 by daylight, what Capture's synthetic camera shows.
	Seed  uint64
	Light Light
}

// Camera is a synthetic camera. It implements mediadevices' VideoSource
// (video.Reader plus ID and Close), so it is wrapped with
// mediadevices.NewVideoTrack like any other source.
type Camera struct {
	opts  CameraOptions
	scene *Scene
	pace  *pacer
	frame int

	latest atomic.Pointer[image.YCbCr]
	frames atomic.Int64
}

// ErrUnplugged is what a synthetic camera says while its socket is empty.
var ErrUnplugged = errors.New("synth: camera unplugged")

// Socket is where a simulated board's camera plugs in: Unplug makes the
// cameras opened on it fail their Read with ErrUnplugged, as a USB camera's
// does when it is pulled out mid-call, and NewCamera fails until Replug. The
// zero value is a socket with its camera in.
type Socket struct{ out atomic.Bool }

// Unplug pulls the camera out.
func (s *Socket) Unplug() { s.out.Store(true) }

// Replug puts it back.
func (s *Socket) Replug() { s.out.Store(false) }

// Plugged reports whether the camera is in. A nil Socket always is.
func (s *Socket) Plugged() bool { return s == nil || !s.out.Load() }

// NewCamera returns a camera producing opts.Width×opts.Height I420 frames.
func NewCamera(opts CameraOptions) (*Camera, error) {
	if !opts.Socket.Plugged() {
		return nil, ErrUnplugged
	}
	scene, err := sharedScene(opts.SceneOptions())
	if err != nil {
		return nil, fmt.Errorf("synth: camera: %w", err)
	}
	c := &Camera{
		opts:  opts,
		scene: scene,
		pace:  newPacer(time.Second/time.Duration(opts.FPS), opts.Unpaced),
	}
	return c, nil
}

// sceneCache keeps the scenes of the cameras opened last. A scene is the
// room in front of the camera, there before the camera opens; preparing one
// (background, textures, noise tables) takes ~6 ms at 320×240, which a
// call's camera would otherwise add to the wait for its first picture
// (BenchmarkNewCamera). A scene is read-only once made, so cameras share
// it. A terminal uses a size or two (its profile's, the self-test's), so a
// few are kept.
var sceneCache struct {
	sync.Mutex
	recent []*Scene // newest last, at most keptScenes
}

const keptScenes = 4

// sharedScene returns the scene of o, made now or kept from before.
func sharedScene(o SceneOptions) (*Scene, error) {
	sceneCache.Lock()
	defer sceneCache.Unlock()
	for i, s := range sceneCache.recent {
		if s.o == o {
			sceneCache.recent = append(slices.Delete(sceneCache.recent, i, i+1), s)
			return s, nil
		}
	}
	s, err := NewScene(o)
	if err != nil {
		return nil, err
	}
	if len(sceneCache.recent) == keptScenes {
		sceneCache.recent = slices.Delete(sceneCache.recent, 0, 1)
	}
	sceneCache.recent = append(sceneCache.recent, s)
	return s, nil
}

// SceneOptions are the options of the scene such a camera shows: a receiver
// renders the frames it should have got with NewScene(opts.SceneOptions()).
func (o CameraOptions) SceneOptions() SceneOptions {
	return SceneOptions{Width: o.Width, Height: o.Height, FPS: o.FPS, Seed: o.Seed, Light: o.Light}
}

// ID implements mediadevices.Source.
func (c *Camera) ID() string { return "synthetic-camera" }

// Close ends the stream: a blocked or later Read returns io.EOF.
func (c *Camera) Close() error {
	c.pace.close()
	return nil
}

// Read returns the next frame, waiting for its time unless Unpaced. Each frame
// is a new image that is never written again, so it may be shared freely
// (encoder, preview). Read is called by one goroutine at a time (mediadevices'
// broadcaster serialises it).
func (c *Camera) Read() (image.Image, func(), error) {
	for {
		if !c.pace.wait() {
			return nil, func() {}, io.EOF
		}
		if !c.opts.Socket.Plugged() {
			return nil, func() {}, ErrUnplugged
		}
		n := c.frame
		c.frame++
		if !c.makes(n) {
			continue
		}
		img := c.scene.Frame(n)
		c.latest.Store(img)
		c.frames.Add(1)
		return img, func() {}, nil
	}
}

// makes reports whether tick n gets a picture (see SentFPS).
func (c *Camera) makes(n int) bool {
	sent, fps := c.opts.SentFPS, c.opts.FPS
	if n == 0 || sent <= 0 || sent >= fps {
		return true
	}
	return n*sent/fps != (n-1)*sent/fps
}

// Latest returns the last frame produced, or nil before the first: the device
// panel's preview.
func (c *Camera) Latest() image.Image {
	if img := c.latest.Load(); img != nil {
		return img
	}
	return nil
}

// Frames returns how many frames have been produced.
func (c *Camera) Frames() int64 { return c.frames.Load() }
