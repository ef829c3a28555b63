package media

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/mediadevices"
	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/media/synth"
)

// Source names for CaptureConfig.Camera and CaptureConfig.Microphone.
const (
	SourceNone      = "none"
	SourceSynthetic = "synthetic" // the simulated board's camera or microphone
	SourceV4L2      = "v4l2"      // a real camera through mediadevices' V4L2 driver
	SourceALSA      = "alsa"      // a real microphone through device/alsa (media/internal/alsamic)
)

// streamID groups the terminal's audio and video in one MediaStream on the
// parent's phone (one <video> element plays both, in sync). mediadevices would
// invent a new random stream ID on every call.
const streamID = "tuanju"

// CaptureConfig says what to capture for a call.
type CaptureConfig struct {
	Profile Profile
	// Camera is SourceSynthetic, SourceV4L2 or SourceNone. It is ignored (no
	// camera is opened) when the profile has no video.
	Camera string
	// SyntheticSocket, if set, is the simulated board's camera socket
	// (unplug the synthetic camera to see the terminal's fault handling).
	SyntheticSocket *synth.Socket
	// CameraDevice picks a V4L2 camera by path (/dev/video0, a /dev/v4l/by-id
	// link) or mediadevices label; empty takes the first camera found.
	CameraDevice string
	// SoftwareEncode makes a V4L2 camera that offers H.264 itself go
	// through openh264 anyway (its raw or MJPEG modes), as if it had no
	// H.264: for a camera whose encoder misbehaves, and for comparing the
	// two paths. By default its own H.264 is passed through (passthrough.go).
	SoftwareEncode bool
	// Microphone is SourceSynthetic, SourceALSA or SourceNone. (ALSA goes
	// through our own kernel-ioctl driver, media/internal/alsamic: mediadevices'
	// malgo driver crashes static binaries and is deliberately not linked.)
	Microphone string
	// MicrophoneDevice picks the ALSA capture device: "hw:CARD,DEV[,SUB]"
	// with CARD an index or id ("hw:Loopback,1"), or "" / "default" for the
	// first card that can capture.
	MicrophoneDevice string
	Log              *slog.Logger
}

// Capture holds the local media of one call: sources, their mediadevices
// tracks and the encoders bound to peer connections.
type Capture struct {
	log      *slog.Logger
	profile  Profile
	encoders *encoderSet
	tracks   []mediadevices.Track
	synthCam *synth.Camera
	preview  atomic.Pointer[image.YCbCr] // v4l2 only; synthetic has its own
	pass     *passthrough                // the camera's own H.264, if sent as is
	once     sync.Once
	closing  atomic.Bool
	lost     chan error // one source's failure; see Lost

	// throttle lets camera frames through at the ABR's frame rate;
	// control sets the ABR's step on the live encoders (encoder_control.go).
	throttle *frameThrottle
	control  *encoderControl
	abrMu    sync.Mutex
	abr      *ABR // StartABR's, stopped by Close
}

// open opens the sources cfg names and wraps them in tracks whose encoders
// follow cfg.Profile. Encoding starts only when a track is bound to a peer
// connection (AddTrack, then SDP negotiation). ctx bounds the opening only;
// the Capture lives until Close. Unexported: Gate.Open is the only way in
// (gate.go).
func open(ctx context.Context, cfg CaptureConfig) (*Capture, error) {
	if err := cfg.Profile.Validate(); err != nil {
		return nil, err
	}
	c := newCapture(cfg.Profile, cfg.Log)
	selector, err := newCodecSelector(cfg.Profile, c.encoders)
	if err != nil {
		return nil, fmt.Errorf("media: codecs: %w", err)
	}
	if err := c.openCamera(ctx, cfg, selector); err != nil {
		c.Close()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("media: open: %w", err)
	}
	if err := c.openMicrophone(cfg, selector); err != nil {
		c.Close()
		return nil, err
	}
	if len(c.tracks) == 0 && c.pass == nil {
		c.log.Warn("capture has no tracks", "camera", cfg.Camera, "microphone", cfg.Microphone)
	}
	return c, nil
}

func newCapture(p Profile, log *slog.Logger) *Capture {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Capture{
		log:      log.With("component", "media", "profile", p.Name),
		profile:  p,
		encoders: &encoderSet{},
		lost:     make(chan error, 1),
		throttle: &frameThrottle{},
	}
	c.throttle.set(c.callFPS(), false)
	c.control = newEncoderControl(c.encoders, c.throttle)
	return c
}

func (c *Capture) openCamera(ctx context.Context, cfg CaptureConfig, selector *mediadevices.CodecSelector) error {
	p := cfg.Profile
	if !p.Video {
		return nil
	}
	switch cfg.Camera {
	case SourceNone, "":
		return nil
	case SourceSynthetic:
		cam, err := synth.NewCamera(synth.CameraOptions{Width: p.Width, Height: p.Height, FPS: p.CaptureFPS(), SentFPS: p.FPS, Socket: cfg.SyntheticSocket})
		if err != nil {
			return fmt.Errorf("media: open camera: %w", err)
		}
		c.synthCam = cam
		track := mediadevices.NewVideoTrack(cam, selector)
		smallRing(track)
		c.guardVideo(track, "synthetic camera")
		c.throttleVideo(track)
		c.tracks = append(c.tracks, track)
		c.log.Info("camera open", "source", SourceSynthetic, "width", p.Width, "height", p.Height, "fps", p.CaptureFPS(), "sent_fps", p.FPS)
		return nil
	case SourceV4L2:
		if c.openPassthrough(cfg) {
			return nil
		}
		track, err := openV4L2(ctx, cfg.CameraDevice, p, selector, c.log)
		if err != nil {
			return fmt.Errorf("media: open camera: %w", err)
		}
		if vt, ok := track.(*mediadevices.VideoTrack); ok {
			vt.Transform(c.previewTap(time.Second))
		}
		c.guardVideo(track, "camera "+cfg.CameraDevice)
		c.throttleVideo(track)
		c.tracks = append(c.tracks, track)
		c.log.Info("camera open", "source", SourceV4L2, "device", cfg.CameraDevice, "id", track.ID())
		return nil
	default:
		return fmt.Errorf("media: open camera %q: %w", cfg.Camera, ErrUnknownSource)
	}
}

func (c *Capture) openMicrophone(cfg CaptureConfig, selector *mediadevices.CodecSelector) error {
	switch cfg.Microphone {
	case SourceNone, "":
		return nil
	case SourceSynthetic:
		// Chunks of the call's Opus frame, as the ALSA microphone's periods.
		mic, err := synth.NewMicrophone(synth.MicrophoneOptions{Chunk: c.profile.AudioFrame})
		if err != nil {
			return fmt.Errorf("media: open microphone: %w", err)
		}
		track := mediadevices.NewAudioTrack(mic, selector)
		audioRing(track, c.profile.AudioFrame)
		c.tracks = append(c.tracks, track)
		c.log.Info("microphone open", "source", SourceSynthetic)
		return nil
	case SourceALSA:
		track, err := openALSAMicrophone(cfg.MicrophoneDevice, c.profile.AudioFrame, selector, c.log)
		if err != nil {
			return fmt.Errorf("media: open microphone: %w", err)
		}
		audioRing(track, c.profile.AudioFrame)
		c.tracks = append(c.tracks, track)
		c.log.Info("microphone open", "source", SourceALSA, "device", cfg.MicrophoneDevice, "id", track.ID())
		return nil
	default:
		return fmt.Errorf("media: open microphone %q: %w", cfg.Microphone, ErrUnknownSource)
	}
}

// Profile returns the profile the encoders follow.
func (c *Capture) Profile() Profile { return c.profile }

// Tracks returns the tracks to add to a peer connection (pc.AddTrack). They
// are mediadevices tracks: on Bind each starts its own encoder and answers
// the peer's PLI/FIR by forcing a key frame.
func (c *Capture) Tracks() []webrtc.TrackLocal {
	out := make([]webrtc.TrackLocal, 0, len(c.tracks))
	if c.pass != nil {
		out = append(out, c.pass.track)
	}
	for _, t := range c.tracks {
		out = append(out, streamTrack{t})
	}
	return out
}

// Passthrough reports whether the camera's own H.264 is sent as it is
// (no openh264 on the board's CPU): for the self-test and the logs.
func (c *Capture) Passthrough() bool { return c.pass != nil }

// HasVideo reports whether a camera track is open.
func (c *Capture) HasVideo() bool {
	if c.pass != nil {
		return true
	}
	for _, t := range c.tracks {
		if t.Kind() == webrtc.RTPCodecTypeVideo {
			return true
		}
	}
	return false
}

// RequestKeyFrame makes every running video encoder send an IDR picture next.
// Call it when the peer connection reaches "connected": encoders start at
// Bind, before DTLS/SRTP is up, so the first key frame is usually dropped and
// the far side would otherwise wait for a PLI round trip or the periodic one.
// It returns how many encoders were asked (0 before any track is bound). A
// camera whose own H.264 is passed through counts as one encoder when it
// has a key-frame control (and was not asked within the last 500 ms);
// without one it is logged once and counts 0.
func (c *Capture) RequestKeyFrame() (int, error) {
	n, err := c.encoders.forceKeyFrame()
	if err != nil {
		return n, fmt.Errorf("media: request key frame: %w", err)
	}
	if c.pass != nil {
		asked, err := c.pass.forceKeyFrame()
		if err != nil {
			return n, fmt.Errorf("media: request key frame: %w", err)
		}
		if asked {
			n++
		}
	}
	return n, nil
}

// Preview returns a recent camera picture for the device panel, or nil. For
// the synthetic camera it is the latest frame; for V4L2 a copy taken about
// once a second (V4L2 frames may share buffers, copying every one costs);
// for a camera's own H.264, an IDR picture decoded about once a second.
func (c *Capture) Preview() image.Image {
	if c.synthCam != nil {
		return c.synthCam.Latest()
	}
	if c.pass != nil {
		if img := c.pass.preview.Load(); img != nil {
			return img
		}
		return nil
	}
	if img := c.preview.Load(); img != nil {
		return img
	}
	return nil
}

// Detach takes the capture's tracks off pc's senders. Call it before
// pc.Close: pion's Close stops each sender first, which makes a call that
// never connected fail its next RTP write, and mediadevices' Unbind then
// waits forever for a sending goroutine that has already quit (a race in
// mediadevices v0.9.4's bind/unbind). Taken off while the sender still
// runs, the goroutine is told to stop in the ordinary way and does.
//
// The ABR stops first and lets every frame through: a paused video track
// (the audio-only step) would otherwise keep its encoder waiting for a
// frame, and mediadevices' Unbind waits for that encoder's goroutine.
func (c *Capture) Detach(pc *webrtc.PeerConnection) {
	c.stopABR()
	for _, s := range pc.GetSenders() {
		if s.Track() == nil {
			continue
		}
		if err := s.ReplaceTrack(nil); err != nil {
			c.log.Warn("detach track", "kind", s.Track().Kind().String(), "err", err)
		}
	}
}

// Close stops every source (and the ABR); bound encoders then end on their
// own. Detach and close the peer connection first.
func (c *Capture) Close() error {
	var errs []error
	c.abrMu.Lock()
	c.closing.Store(true)
	c.abrMu.Unlock()
	c.stopABR()
	c.once.Do(func() {
		if c.pass != nil {
			if err := c.pass.close(); err != nil {
				errs = append(errs, err)
			}
		}
		for _, t := range c.tracks {
			if err := t.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("media: close capture: %w", err)
	}
	return nil
}

// stopABR stops the ABR, if one runs, and lets the call's rate through again.
func (c *Capture) stopABR() {
	c.abrMu.Lock()
	abr := c.abr
	c.abrMu.Unlock()
	if abr != nil {
		abr.Stop()
	}
	c.throttle.set(c.callFPS(), false)
}

// callFPS is what the throttle lets through without an ABR: the profile's
// rate from a camera asked for more (Profile.CaptureFPS), or every frame.
func (c *Capture) callFPS() float64 {
	if c.profile.CaptureFPS() > c.profile.FPS {
		return float64(c.profile.FPS)
	}
	return 0
}

// throttleVideo puts the ABR's frame throttle last before the encoders,
// after the preview tap and the failure guard, which see every frame.
func (c *Capture) throttleVideo(t mediadevices.Track) {
	if vt, ok := t.(*mediadevices.VideoTrack); ok {
		vt.Transform(c.throttle.transform)
	}
}

// previewTap keeps a private copy of a frame every interval.
func (c *Capture) previewTap(every time.Duration) video.TransformFunc {
	return func(r video.Reader) video.Reader {
		var last time.Time
		return video.ReaderFunc(func() (image.Image, func(), error) {
			img, release, err := r.Read()
			if err != nil {
				return img, release, err
			}
			if now := time.Now(); now.Sub(last) >= every {
				if y, ok := img.(*image.YCbCr); ok {
					last = now
					c.preview.Store(cloneYCbCr(y))
				}
			}
			return img, release, nil
		})
	}
}

func cloneYCbCr(src *image.YCbCr) *image.YCbCr {
	dst := &image.YCbCr{
		Y:              append([]byte(nil), src.Y...),
		Cb:             append([]byte(nil), src.Cb...),
		Cr:             append([]byte(nil), src.Cr...),
		YStride:        src.YStride,
		CStride:        src.CStride,
		SubsampleRatio: src.SubsampleRatio,
		Rect:           src.Rect,
	}
	return dst
}

// streamTrack gives a mediadevices track a stable stream ID, and reads the
// RTCP of a track mediadevices does not read; everything else (Unbind, ID,
// Kind) is the track's own.
type streamTrack struct{ mediadevices.Track }

func (streamTrack) StreamID() string { return streamID }

// Bind binds the track and, for an encoder with no key-frame control
// (Opus), reads its sender's RTCP until the connection closes.
// mediadevices reads a sender's RTCP only to answer PLIs, so nothing
// read the audio sender's: pion routes feedback to the sender of the SSRC
// it names, and congestion control, NACK and report interceptors see
// RTCP only as it is read. With video paused (the ABR's audio-only step)
// the peer's transport-wide feedback names the audio SSRC, and the
// estimate stopped where it was, never to climb back.
func (t streamTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	p, err := t.Track.Bind(ctx)
	if err != nil {
		return p, err
	}
	if t.Kind() == webrtc.RTPCodecTypeAudio {
		go drainRTCP(ctx.RTCPReader())
	}
	return p, nil
}

// drainRTCP reads r until it fails (the sender stopped).
func drainRTCP(r interceptor.RTCPReader) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := r.Read(buf, interceptor.Attributes{}); err != nil {
			return
		}
	}
}
