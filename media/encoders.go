package media

import (
	"fmt"
	"sync"

	"github.com/pion/mediadevices"
	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/mediadevices/pkg/io/audio"
	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/media/h264enc"
	"github.com/tuanju/tuanju/media/opusenc"
)

// h264Builder is openh264 with the frame rate filled in.
//
// mediadevices detects the input's properties from a single frame, so the
// encoder is built with FrameRate 0, which openh264 takes as 1 fps: its rate
// control then ignores the bitrate target (every target gave ~535 kbit/s at
// 320×240). Setting the real frame rate here makes targets hold within a few
// percent. It also records every encoder it builds so Capture can force key
// frames (and, later, set bitrates) on all of them.
type h264Builder struct {
	h264enc.Params
	fps      float32
	encoders *encoderSet
}

func (b *h264Builder) BuildVideoEncoder(r video.Reader, p prop.Media) (codec.ReadCloser, error) {
	p.FrameRate = b.fps
	enc, err := b.Params.BuildVideoEncoder(r, p)
	if err != nil {
		return nil, err
	}
	return b.encoders.add(enc), nil
}

// opusBuilder records the Opus encoders it builds, for the same reasons.
type opusBuilder struct {
	opusenc.Params
	encoders *encoderSet
}

func (b *opusBuilder) BuildAudioEncoder(r audio.Reader, p prop.Media) (codec.ReadCloser, error) {
	enc, err := b.Params.BuildAudioEncoder(r, p)
	if err != nil {
		return nil, err
	}
	return b.encoders.add(enc), nil
}

// Codec settings every profile shares, chosen by measurement (TestVideoSweep
// and TestAudioSweep, TUANJU_SWEEP=video,audio; BenchmarkOpusEncode and
// BenchmarkEncode for CPU).
const (
	// h264Denoise: openh264's denoiser gave +0.5 dB PSNR-Y by day and
	// +0.7 dB in low light at 100 kbit/s, and stopped the low-light sensor
	// noise from setting off its scene-change detector (52 IDR pictures a
	// minute instead of 6), for ~0.25 ms more per 320×240 frame.
	h264Denoise = h264enc.SwitchOn
	// h264Complexity: medium motion search, +0.25–0.4 dB for ~12% more
	// encoding time; high gave nothing more.
	h264Complexity = h264enc.ComplexityMedium
	// opusFEC and opusExpectedLoss: in-band FEC, sized for 10% loss until a
	// controller reports the real figure (opusenc.Encoder.SetPacketLoss). It
	// comes out of the bitrate target, not on top of it.
	opusFEC          = true
	opusExpectedLoss = 10
	// opusDTX: no packets in the pauses. On a voice with a third pauses,
	// 16 kbit/s in 40 ms frames fell from 24 to 18 kbit/s on the wire.
	opusDTX = true
)

// newCodecSelector returns the encoders for p. A track builds one encoder per
// peer connection it is bound to; set sees all of them.
func newCodecSelector(p Profile, set *encoderSet) (*mediadevices.CodecSelector, error) {
	hb, err := newH264Builder(p, set)
	if err != nil {
		return nil, err
	}
	_, op, err := CodecParams(p)
	if err != nil {
		return nil, err
	}
	return mediadevices.NewCodecSelector(
		mediadevices.WithVideoEncoders(hb),
		mediadevices.WithAudioEncoders(&opusBuilder{Params: op, encoders: set}),
	), nil
}

func newH264Builder(p Profile, set *encoderSet) (*h264Builder, error) {
	hp, _, err := CodecParams(p)
	if err != nil {
		return nil, err
	}
	return &h264Builder{Params: hp, fps: float32(p.FPS), encoders: set}, nil
}

// CodecParams are the encoder settings a call in profile p uses: for the
// capture's tracks, and for references measured outside the pipeline
// (BenchmarkBytesPerMinute's raw codecs). The H.264 encoder also needs the
// frame rate, p.FPS, in the prop.Media it is built with.
func CodecParams(p Profile) (h264enc.Params, opusenc.Params, error) {
	hp, err := h264enc.NewParams()
	if err != nil {
		return hp, opusenc.Params{}, fmt.Errorf("media: h264 params: %w", err)
	}
	hp.BitRate = p.VideoBitrate
	hp.Denoise, hp.Complexity = h264Denoise, h264Complexity
	// openh264 counts the intra period in frames.
	hp.IntraPeriod = uint(max(1, int(float64(p.FPS)*p.keyFrameInterval().Seconds())))
	op, err := opusenc.NewParams()
	if err != nil {
		return hp, op, fmt.Errorf("media: opus params: %w", err)
	}
	op.BitRate = p.AudioBitrate
	op.Latency = p.AudioFrame
	op.FEC, op.PacketLoss, op.DTX = opusFEC, opusExpectedLoss, opusDTX
	return hp, op, nil
}

// encoderSet tracks live encoders.
type encoderSet struct {
	mu   sync.Mutex
	encs map[*trackedEncoder]struct{}
}

func (s *encoderSet) add(enc codec.ReadCloser) codec.ReadCloser {
	t := &trackedEncoder{ReadCloser: enc, set: s}
	s.mu.Lock()
	if s.encs == nil {
		s.encs = make(map[*trackedEncoder]struct{})
	}
	s.encs[t] = struct{}{}
	s.mu.Unlock()
	return t
}

func (s *encoderSet) remove(t *trackedEncoder) {
	s.mu.Lock()
	delete(s.encs, t)
	s.mu.Unlock()
}

// forceKeyFrame asks every live video encoder for an IDR picture and reports
// how many it asked.
func (s *encoderSet) forceKeyFrame() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for t := range s.encs {
		if k, ok := t.Controller().(codec.KeyFrameController); ok {
			if err := k.ForceKeyFrame(); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

type trackedEncoder struct {
	codec.ReadCloser
	set *encoderSet
}

func (t *trackedEncoder) Close() error {
	t.set.remove(t)
	return t.ReadCloser.Close()
}
