// Package opusenc encodes audio to Opus with libopus, as a mediadevices audio
// encoder.
//
// It replaces mediadevices' pkg/codec/opus, which links a prebuilt libopus
// archive bundled in its module unless built with the tag "dynamic"; this
// package links the system's libopus (Debian's libopus-dev, security
// maintained) through pkg-config in every build. See package h264enc.
package opusenc

/*
#cgo pkg-config: opus
#cgo LDFLAGS: -lm
#include <opus.h>

static int enc_set_bitrate(OpusEncoder *e, opus_int32 bitrate) {
	return opus_encoder_ctl(e, OPUS_SET_BITRATE(bitrate));
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/mediadevices/pkg/io/audio"
	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/mediadevices/pkg/wave"
	"github.com/pion/mediadevices/pkg/wave/mixer"

	"github.com/tuanju/tuanju/media/internal/cobj"
)

// maxPacket is libopus' recommended output buffer: enough for any packet.
const maxPacket = 4000

// Params configures the encoder; it is a mediadevices AudioEncoderBuilder.
type Params struct {
	// BitRate is the target in bit/s; 0 means 32 kbit/s.
	codec.BaseParams
	// Latency is the frame (and RTP packet) duration: 2.5, 5, 10, 20, 40 or
	// 60 ms.
	Latency time.Duration
}

// NewParams returns the defaults: 32 kbit/s in 20 ms frames. It mirrors
// mediadevices' opus.NewParams (whose error is always nil).
func NewParams() (Params, error) {
	return Params{Latency: 20 * time.Millisecond}, nil
}

// RTPCodec is Opus at 48 kHz as mediadevices describes it, with the frame
// duration the track paces its samples by.
func (p *Params) RTPCodec() *codec.RTPCodec {
	c := codec.NewRTPOpusCodec(48000)
	c.Latency = p.Latency
	return c
}

func validLatency(d time.Duration) bool {
	switch d {
	case 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
		20 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond:
		return true
	}
	return false
}

// BuildAudioEncoder builds an encoder for r's samples at m's sample rate and
// channel count, in the VOIP application mode.
func (p *Params) BuildAudioEncoder(r audio.Reader, m prop.Media) (codec.ReadCloser, error) {
	if m.SampleRate == 0 {
		return nil, errors.New("opusenc: build: sample rate is required")
	}
	if !validLatency(p.Latency) {
		return nil, fmt.Errorf("opusenc: build: unsupported frame duration %v", p.Latency)
	}
	channels := max(m.ChannelCount, 1)
	var cerr C.int
	e := C.opus_encoder_create(C.opus_int32(m.SampleRate), C.int(channels), C.OPUS_APPLICATION_VOIP, &cerr)
	if cerr != C.OPUS_OK || e == nil {
		return nil, fmt.Errorf("opusenc: create encoder: %s", C.GoString(C.opus_strerror(cerr)))
	}
	samples := int(p.Latency * time.Duration(m.SampleRate) / time.Second)
	enc := &Encoder{
		e: cobj.New(e, func(e *C.OpusEncoder) { C.opus_encoder_destroy(e) }),
		r: audio.NewChannelMixer(channels, &mixer.MonoMixer{})(audio.NewBuffer(samples)(r)),
	}
	bitrate := p.BitRate
	if bitrate <= 0 {
		bitrate = 32000
	}
	if err := enc.SetBitRate(bitrate); err != nil {
		enc.Close()
		return nil, err
	}
	return enc, nil
}

// ErrClosed is returned by SetBitRate after Close.
var ErrClosed = errors.New("opusenc: encoder closed")

// Encoder is one libopus encoder reading samples from an audio.Reader.
type Encoder struct {
	r audio.Reader
	e *cobj.Guard[*C.OpusEncoder]
}

// Read encodes the next frame into one Opus packet.
func (enc *Encoder) Read() ([]byte, func(), error) {
	buf, _, err := enc.r.Read()
	if err != nil {
		return nil, func() {}, err
	}
	out := make([]byte, maxPacket)
	var n C.opus_int32
	err = enc.e.Do(io.EOF, func(e *C.OpusEncoder) error {
		switch b := buf.(type) {
		case *wave.Int16Interleaved:
			if len(b.Data) == 0 {
				return errors.New("opusenc: encode: empty frame")
			}
			n = C.opus_encode(e, (*C.opus_int16)(&b.Data[0]), C.int(b.ChunkInfo().Len),
				(*C.uchar)(&out[0]), C.opus_int32(len(out)))
		case *wave.Float32Interleaved:
			if len(b.Data) == 0 {
				return errors.New("opusenc: encode: empty frame")
			}
			n = C.opus_encode_float(e, (*C.float)(&b.Data[0]), C.int(b.ChunkInfo().Len),
				(*C.uchar)(&out[0]), C.opus_int32(len(out)))
		default:
			return fmt.Errorf("opusenc: encode: unsupported samples %T", buf)
		}
		if n < 0 {
			return fmt.Errorf("opusenc: encode: %s", C.GoString(C.opus_strerror(C.int(n))))
		}
		return nil
	})
	if err != nil {
		return nil, func() {}, err
	}
	return out[:n:n], func() {}, nil
}

// SetBitRate changes the target bitrate (bit/s).
func (enc *Encoder) SetBitRate(bitrate int) error {
	return enc.e.Do(ErrClosed, func(e *C.OpusEncoder) error {
		if rv := C.enc_set_bitrate(e, C.opus_int32(bitrate)); rv != C.OPUS_OK {
			return fmt.Errorf("opusenc: set bitrate %d: %s", bitrate, C.GoString(C.opus_strerror(rv)))
		}
		return nil
	})
}

// Controller offers codec.BitRateController.
func (enc *Encoder) Controller() codec.EncoderController { return enc }

// Close frees the encoder; it is safe to call more than once.
func (enc *Encoder) Close() error { return enc.e.Close() }
