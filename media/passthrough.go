package media

import (
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/mediadevices"
	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/h264enc"
	"github.com/tuanju/tuanju/media/internal/h264cam"
)

// The passthrough path: a camera that encodes H.264 itself (a UVC H.264
// camera, see package h264cam) has its access units sent as they come — no
// decode, no re-encode, no CPU for video beyond packetizing. Open takes it
// whenever the camera offers H.264 near the profile's size and rate and its
// stream is constrained baseline.
//
// Why only constrained baseline: the terminal's offer has one H.264 entry,
// profile-level-id 42e01f (NewMediaEngine), which every browser decodes and
// which the terminal's own openh264 decoder handles for the phone's video in
// the other direction of the same m-line. A camera whose stream is High
// profile could be sent under a second payload type (Chrome decodes High),
// but that entry would also let the phone send High to the terminal; so a
// High camera is not passed through and Open falls back to the camera's raw
// or MJPEG modes and openh264, logging why. Most UVC H.264 cameras default
// to constrained baseline for exactly this reason (video calls).

// h264Source is the edge the passthrough reads: h264cam.Camera, or a fake.
type h264Source interface {
	ReadAccessUnit() ([]byte, error)
	ForceKeyFrame() error
	SetBitrate(bps int) (int, error)
	Close() error
}

const (
	// probeTimeout bounds the wait for the camera's first SPS at open: the
	// stream's profile decides whether it can be passed through.
	probeTimeout = 5 * time.Second
	// minKeyFrameGap rate-limits the peer's PLIs and FIRs: an IDR costs
	// several P pictures' worth of data, and a receiver repeats its PLI
	// until the picture arrives.
	minKeyFrameGap = 500 * time.Millisecond
	// previewEvery is how often an IDR picture is decoded for Preview.
	previewEvery = time.Second
	// maxLevelIDC is level 3.1, the level in the offered profile-level-id.
	maxLevelIDC = 31
)

// startCode precedes each NAL unit we prepend.
var startCode = []byte{0, 0, 0, 1}

// h264Capability is the one H.264 codec NewMediaEngine registers, so the
// passthrough track binds to the same payload type and fmtp as openh264's.
func h264Capability() (webrtc.RTPCodecCapability, error) {
	hp, err := h264enc.NewParams()
	if err != nil {
		return webrtc.RTPCodecCapability{}, err
	}
	c := hp.RTPCodec().RTPCodecCapability
	c.RTCPFeedback = rtcpFeedback
	return c, nil
}

// passthrough sends one H.264 camera's access units on one track.
type passthrough struct {
	log   *slog.Logger
	src   h264Source
	track *passthroughTrack
	fps   int
	what  string
	lose  func(error)
	// closing is the Capture's: a read error after Close is not a loss.
	closing *atomic.Bool

	mu       sync.Mutex
	sps, pps []byte // the latest parameter sets seen, for IDRs without them
	lastKey  time.Time

	keyUnsupported atomic.Bool // logged once
	preview        atomic.Pointer[image.YCbCr]
	sent, bytes    atomic.Int64
	start          time.Time
	done           chan struct{}
	dec            *h264dec.Decoder         // Preview's: probe's, then pump's
	readers        map[chan []byte]struct{} // NewEncodedReader's, under mu
	// tap, if set (tests), sees every access unit as it is written.
	tap func([]byte)
}

// startPassthrough checks src's stream and starts sending it. It returns
// (nil, reason) when the stream cannot be passed through (no SPS within
// probeTimeout, not constrained baseline): the caller closes src and
// encodes in software. Otherwise src belongs to the passthrough.
func (c *Capture) startPassthrough(src h264Source, what string) (*passthrough, error) {
	p := c.profile
	capability, err := h264Capability()
	if err != nil {
		return nil, fmt.Errorf("media: h264 params: %w", err)
	}
	pt := &passthrough{
		log: c.log.With("camera", what, "path", "h264-passthrough"), src: src, fps: max(p.FPS, 1), what: what,
		lose: c.lose, closing: &c.closing, done: make(chan struct{}),
	}
	sps, err := pt.probe()
	if err != nil {
		return nil, err
	}
	if !sps.ConstrainedBaseline() {
		return nil, fmt.Errorf("media: %s streams H.264 profile-level-id %s, not constrained baseline (42e01f is what the call offers)", what, sps.ProfileLevelID())
	}
	// The phone's answer says it takes up to level 3.1 (the "1f"); the
	// modes Open picks (near the profile's size) stay far below.
	if sps.LevelIDC > maxLevelIDC {
		return nil, fmt.Errorf("media: %s streams H.264 level %d.%d, above the 3.1 the call offers", what, sps.LevelIDC/10, sps.LevelIDC%10)
	}
	track, err := webrtc.NewTrackLocalStaticSample(capability, "video", streamID)
	if err != nil {
		return nil, fmt.Errorf("media: passthrough track: %w", err)
	}
	pt.track = &passthroughTrack{TrackLocalStaticSample: track, p: pt}
	switch got, err := src.SetBitrate(p.VideoBitrate); {
	case errors.Is(err, h264cam.ErrUnsupported):
		pt.log.Warn("camera bitrate not controllable: the call's video rate is the camera's own", "want_bps", p.VideoBitrate)
	case err != nil:
		pt.log.Warn("camera bitrate", "want_bps", p.VideoBitrate, "err", err)
	default:
		pt.log.Info("camera bitrate set", "want_bps", p.VideoBitrate, "got_bps", got)
	}
	pt.log.Info("camera H.264 passed through", "profile_level_id", sps.ProfileLevelID(), "width", sps.Width, "height", sps.Height)
	pt.start = time.Now()
	go pt.pump()
	return pt, nil
}

// probe reads access units until one carries an SPS, caching the
// parameter sets; what it reads before a track is bound goes nowhere.
func (pt *passthrough) probe() (h264cam.SPS, error) {
	deadline := time.Now().Add(probeTimeout)
	for time.Now().Before(deadline) {
		au, err := pt.src.ReadAccessUnit()
		if err != nil {
			return h264cam.SPS{}, fmt.Errorf("media: %s: read first H.264 access units: %w", pt.what, err)
		}
		_, idr := pt.withParameterSets(au)
		pt.mu.Lock()
		sps := pt.sps
		pt.mu.Unlock()
		if sps != nil {
			if idr {
				pt.updatePreview(au) // so Preview has a picture from the start
			}
			s, err := h264cam.ParseSPS(sps)
			if err != nil {
				return h264cam.SPS{}, fmt.Errorf("media: %s: %w", pt.what, err)
			}
			return s, nil
		}
	}
	return h264cam.SPS{}, fmt.Errorf("media: %s: no SPS in the camera's H.264 within %v", pt.what, probeTimeout)
}

// withParameterSets caches the SPS/PPS au carries and, if au is an IDR
// without them, returns it with the cached ones in front: many cameras send
// them once, at stream start, and a receiver that missed that (every peer
// bound later) could never decode. It also says whether au is an IDR.
func (pt *passthrough) withParameterSets(au []byte) ([]byte, bool) {
	info := h264cam.Inspect(au)
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if info.SPS != nil {
		pt.sps = append(pt.sps[:0], info.SPS...)
	}
	if info.PPS != nil {
		pt.pps = append(pt.pps[:0], info.PPS...)
	}
	if !info.IDR || (info.SPS != nil && info.PPS != nil) || pt.sps == nil || pt.pps == nil {
		return au, info.IDR
	}
	out := make([]byte, 0, 2*len(startCode)+len(pt.sps)+len(pt.pps)+len(au))
	if info.SPS == nil {
		out = append(append(out, startCode...), pt.sps...)
	}
	if info.PPS == nil {
		out = append(append(out, startCode...), pt.pps...)
	}
	return append(out, au...), true
}

// pump sends access units until the camera fails (Lost) or is closed.
func (pt *passthrough) pump() {
	defer close(pt.done)
	defer func() {
		if pt.dec != nil {
			pt.dec.Close()
		}
	}()
	var last, lastPreview time.Time
	for {
		au, err := pt.src.ReadAccessUnit()
		if err != nil {
			if pt.closing.Load() || errors.Is(err, h264cam.ErrClosed) {
				return
			}
			pt.lose(fmt.Errorf("media: %s lost: %w: %w", pt.what, ErrSourceLost, err))
			return
		}
		au, idr := pt.withParameterSets(au)
		// RTP time follows the camera's delivery: the nominal frame time
		// for the first, the measured gap after (bounded, so a stall does
		// not make the far side's jitter buffer wait).
		now := time.Now()
		d := time.Second / time.Duration(pt.fps)
		if !last.IsZero() {
			d = min(max(now.Sub(last), time.Millisecond), time.Second)
		}
		last = now
		if err := pt.track.WriteSample(pionmedia.Sample{Data: au, Duration: d}); err != nil {
			pt.log.Debug("write sample", "err", err)
		}
		pt.sent.Add(1)
		pt.bytes.Add(int64(len(au)))
		if pt.tap != nil {
			pt.tap(au)
		}
		pt.mu.Lock()
		for ch := range pt.readers {
			select {
			case ch <- au:
			default: // a slow reader misses units; the call does not wait
			}
		}
		pt.mu.Unlock()
		if idr && now.Sub(lastPreview) >= previewEvery {
			lastPreview = now
			pt.updatePreview(au)
		}
	}
}

// updatePreview decodes an IDR picture for Preview: about one a second, a
// few milliseconds of a core at LowData's size. A fresh IDR needs no
// earlier pictures, so the decoder sees nothing else.
func (pt *passthrough) updatePreview(au []byte) {
	if pt.dec == nil {
		dec, err := h264dec.New()
		if err != nil {
			pt.log.Debug("preview decoder", "err", err)
			return
		}
		pt.dec = dec
	}
	img, err := pt.dec.Decode(au)
	if err != nil || img == nil {
		pt.log.Debug("preview decode", "err", err)
		return
	}
	pt.preview.Store(img)
}

// forceKeyFrame asks the camera for an IDR unless one was asked within
// minKeyFrameGap; it reports whether the camera was asked. A camera without
// the control is logged once and left to its own GOP.
func (pt *passthrough) forceKeyFrame() (bool, error) {
	if pt.keyUnsupported.Load() {
		return false, nil
	}
	pt.mu.Lock()
	now := time.Now()
	if now.Sub(pt.lastKey) < minKeyFrameGap {
		pt.mu.Unlock()
		return false, nil
	}
	pt.lastKey = now
	pt.mu.Unlock()
	err := pt.src.ForceKeyFrame()
	switch {
	case errors.Is(err, h264cam.ErrUnsupported):
		if !pt.keyUnsupported.Swap(true) {
			pt.log.Warn("camera cannot be asked for a key frame: the far side waits for the camera's own GOP after a loss", "err", err)
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("media: %s: %w", pt.what, err)
	}
	return true, nil
}

// close stops the camera and waits for the pump to end.
func (pt *passthrough) close() error {
	err := pt.src.Close()
	<-pt.done
	secs := time.Since(pt.start).Seconds()
	pt.log.Info("camera H.264 passthrough closed", "access_units", pt.sent.Load(), "bytes", pt.bytes.Load(),
		"kbps", int(float64(pt.bytes.Load())*8/1000/max(secs, 0.001)))
	if err != nil {
		return fmt.Errorf("media: close %s: %w", pt.what, err)
	}
	return nil
}

// passthroughTrack is pion's sample track plus what mediadevices' tracks do
// on Bind: read the peer's RTCP and answer PLI/FIR with a key frame.
type passthroughTrack struct {
	*webrtc.TrackLocalStaticSample
	p *passthrough
}

func (t *passthroughTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, err := t.TrackLocalStaticSample.Bind(ctx)
	if err != nil {
		return codec, err
	}
	go t.readRTCP(ctx.RTCPReader())
	return codec, nil
}

// readRTCP ends when the sender stops (its reader then fails).
func (t *passthroughTrack) readRTCP(r interceptor.RTCPReader) {
	buf := make([]byte, 1500)
	for {
		n, _, err := r.Read(buf, interceptor.Attributes{})
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if _, err := t.p.forceKeyFrame(); err != nil {
					t.p.log.Warn("force key frame", "err", err)
				}
			}
		}
	}
}

// openPassthrough opens the V4L2 camera cfg names in its own H.264 and
// starts sending it, if it has a usable mode and stream (true). Otherwise it
// leaves the camera to openV4L2's software path (false) — silently when the
// camera simply has no H.264, with a warning saying why when it has one that
// cannot be used. With no device named, the first camera's other nodes are
// tried too (siblingNodes).
func (c *Capture) openPassthrough(cfg CaptureConfig) bool {
	if cfg.SoftwareEncode {
		return false
	}
	path, err := v4l2Path(cfg.CameraDevice)
	if err != nil {
		return false // openV4L2 reports the missing camera
	}
	nodes := []string{path}
	if cfg.CameraDevice == "" {
		nodes = append(nodes, siblingNodes(path)...)
	}
	p := cfg.Profile
	for _, node := range nodes {
		cam, err := h264cam.Open(node, h264cam.Want{Width: p.Width, Height: p.Height, FPS: p.FPS})
		switch {
		case errors.Is(err, h264cam.ErrNoH264):
			c.log.Debug("camera node has no H.264 of its own", "device", node)
			continue
		case err != nil:
			c.log.Warn("camera's own H.264 not usable: encoding in software", "device", node, "err", err)
			continue
		}
		pt, err := c.startPassthrough(cam, "camera "+node)
		if err != nil {
			_ = cam.Close()
			c.log.Warn("camera's own H.264 not usable: encoding in software", "device", node, "err", err)
			continue
		}
		c.pass = pt
		m := cam.Mode()
		c.log.Info("camera open", "source", SourceV4L2, "device", node, "format", "h264-passthrough",
			"width", m.Width, "height", m.Height, "fps", m.FPS)
		return true
	}
	return false
}

// NewEncodedReader hands out the camera's next access units as they are
// sent, as a mediadevices track's encoded reader would (the technician's
// self-test reads one frame this way). Only H.264 is on offer.
func (t *passthroughTrack) NewEncodedReader(mime string) (mediadevices.EncodedReadCloser, error) {
	if !strings.EqualFold(mime, "H264") && !strings.EqualFold(mime, webrtc.MimeTypeH264) {
		return nil, fmt.Errorf("media: camera's own H.264 cannot be read as %s", mime)
	}
	ch := make(chan []byte, 4)
	pt := t.p
	pt.mu.Lock()
	if pt.readers == nil {
		pt.readers = make(map[chan []byte]struct{})
	}
	pt.readers[ch] = struct{}{}
	pt.mu.Unlock()
	return &encodedReader{pt: pt, ch: ch, closed: make(chan struct{})}, nil
}

type encodedReader struct {
	pt     *passthrough
	ch     chan []byte
	once   sync.Once
	closed chan struct{}
}

// Read blocks for the next access unit; io.EOF once the camera stops or the
// reader is closed.
func (r *encodedReader) Read() (mediadevices.EncodedBuffer, func(), error) {
	select {
	case <-r.closed:
		return mediadevices.EncodedBuffer{}, func() {}, io.EOF
	default:
	}
	select {
	case au := <-r.ch:
		return mediadevices.EncodedBuffer{Data: au, Samples: uint32(90000 / r.pt.fps)}, func() {}, nil
	case <-r.pt.done:
	case <-r.closed:
	}
	return mediadevices.EncodedBuffer{}, func() {}, io.EOF
}

func (r *encodedReader) Close() error {
	r.once.Do(func() {
		r.pt.mu.Lock()
		delete(r.pt.readers, r.ch)
		r.pt.mu.Unlock()
		close(r.closed)
	})
	return nil
}

// Controller: the camera's controls are reached through Capture
// (RequestKeyFrame), not through the reader.
func (r *encodedReader) Controller() codec.EncoderController { return nil }
