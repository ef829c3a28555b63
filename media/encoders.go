package media

import (
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

// newCodecSelector returns the encoders for p. A track builds one encoder per
// peer connection it is bound to; set sees all of them.
func newCodecSelector(p Profile, set *encoderSet) (*mediadevices.CodecSelector, error) {
	hb, err := newH264Builder(p, set)
	if err != nil {
		return nil, err
	}
	op, err := opusenc.NewParams()
	if err != nil {
		return nil, err
	}
	op.BitRate = p.AudioBitrate
	op.Latency = p.AudioFrame
	return mediadevices.NewCodecSelector(
		mediadevices.WithVideoEncoders(hb),
		mediadevices.WithAudioEncoders(&opusBuilder{Params: op, encoders: set}),
	), nil
}

func newH264Builder(p Profile, set *encoderSet) (*h264Builder, error) {
	hp, err := h264enc.NewParams()
	if err != nil {
		return nil, err
	}
	hp.BitRate = p.VideoBitrate
	// openh264 counts the intra period in frames.
	hp.IntraPeriod = uint(max(1, p.FPS) * int(keyFrameInterval.Seconds()))
	return &h264Builder{Params: hp, fps: float32(p.FPS), encoders: set}, nil
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
