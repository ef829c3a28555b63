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

static int enc_set_complexity(OpusEncoder *e, opus_int32 v) {
	return opus_encoder_ctl(e, OPUS_SET_COMPLEXITY(v));
}

static int enc_set_fec(OpusEncoder *e, opus_int32 v) {
	return opus_encoder_ctl(e, OPUS_SET_INBAND_FEC(v));
}

static int enc_set_loss(OpusEncoder *e, opus_int32 v) {
	return opus_encoder_ctl(e, OPUS_SET_PACKET_LOSS_PERC(v));
}

static int enc_set_dtx(OpusEncoder *e, opus_int32 v) {
	return opus_encoder_ctl(e, OPUS_SET_DTX(v));
}

static int enc_set_max_bandwidth(OpusEncoder *e, opus_int32 v) {
	return opus_encoder_ctl(e, OPUS_SET_MAX_BANDWIDTH(v));
}

static int enc_set_signal_voice(OpusEncoder *e) {
	return opus_encoder_ctl(e, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
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
// Start from NewParams: the zero value of Complexity is libopus' cheapest.
type Params struct {
	// BitRate is the target in bit/s; 0 means 32 kbit/s.
	codec.BaseParams
	// Latency is the frame (and RTP packet) duration: 2.5, 5, 10, 20, 40 or
	// 60 ms.
	Latency time.Duration
	// Complexity is libopus' effort, 0..10: CPU against quality.
	Complexity int
	// FEC turns on in-band forward error correction: each packet carries a
	// coarse copy of the one before, which a receiver that lost that one
	// decodes instead (Chromium does). libopus adds it only when it expects
	// loss, PacketLoss percent of packets, and pays for it out of BitRate.
	FEC        bool
	PacketLoss int
	// DTX (discontinuous transmission) stops sending while there is only
	// silence or background noise: a packet every 400 ms instead of every
	// frame, the receiver filling in comfort noise. A call is half
	// listening, so this roughly halves a voice's packets.
	DTX bool
	// MaxBandwidth caps the audio bandwidth libopus may code; 0 leaves it
	// free (it picks by bitrate).
	MaxBandwidth Bandwidth
}

// Bandwidth is an Opus audio bandwidth.
type Bandwidth int

// The Opus bandwidths, by their upper audio frequency.
const (
	BandwidthAuto      Bandwidth = 0
	BandwidthNarrow    Bandwidth = C.OPUS_BANDWIDTH_NARROWBAND    // 4 kHz
	BandwidthMedium    Bandwidth = C.OPUS_BANDWIDTH_MEDIUMBAND    // 6 kHz
	BandwidthWide      Bandwidth = C.OPUS_BANDWIDTH_WIDEBAND      // 8 kHz
	BandwidthSuperWide Bandwidth = C.OPUS_BANDWIDTH_SUPERWIDEBAND // 12 kHz
	BandwidthFull      Bandwidth = C.OPUS_BANDWIDTH_FULLBAND      // 20 kHz
)

// DefaultComplexity is NewParams' complexity. libopus' own default is 9
// (10 in older releases); 5 costs a bit over half its CPU (1.06% against
// 1.9% of a core for 16 kbit/s, BenchmarkOpusEncode in package media) at
// the same bitrate and a log-spectral distance within 0.15 dB on a voice
// (TestAudioSweep), and a board's CPU is the scarcer. WebRTC picks 5 on
// phones for the same reason.
const DefaultComplexity = 5

// NewParams returns the defaults: 32 kbit/s in 20 ms frames at complexity
// DefaultComplexity, without FEC or DTX. It mirrors mediadevices'
// opus.NewParams (whose error is always nil).
func NewParams() (Params, error) {
	return Params{Latency: 20 * time.Millisecond, Complexity: DefaultComplexity}, nil
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
		e:   cobj.New(e, func(e *C.OpusEncoder) { C.opus_encoder_destroy(e) }),
		r:   audio.NewChannelMixer(channels, &mixer.MonoMixer{})(audio.NewBuffer(samples)(r)),
		dtx: p.DTX,
	}
	bitrate := p.BitRate
	if bitrate <= 0 {
		bitrate = 32000
	}
	if err := enc.configure(p, bitrate); err != nil {
		enc.Close()
		return nil, err
	}
	return enc, nil
}

func (enc *Encoder) configure(p *Params, bitrate int) error {
	if p.Complexity < 0 || p.Complexity > 10 {
		return fmt.Errorf("opusenc: complexity %d outside 0..10", p.Complexity)
	}
	if err := enc.SetBitRate(bitrate); err != nil {
		return err
	}
	if err := enc.SetPacketLoss(p.PacketLoss); err != nil {
		return err
	}
	b := func(v bool) C.opus_int32 {
		if v {
			return 1
		}
		return 0
	}
	return enc.e.Do(ErrClosed, func(e *C.OpusEncoder) error {
		for _, s := range []struct {
			what string
			rv   C.int
		}{
			{"complexity", C.enc_set_complexity(e, C.opus_int32(p.Complexity))},
			{"fec", C.enc_set_fec(e, b(p.FEC))},
			{"dtx", C.enc_set_dtx(e, b(p.DTX))},
			{"signal", C.enc_set_signal_voice(e)},
		} {
			if s.rv != C.OPUS_OK {
				return fmt.Errorf("opusenc: set %s: %s", s.what, C.GoString(C.opus_strerror(s.rv)))
			}
		}
		if p.MaxBandwidth != BandwidthAuto {
			if rv := C.enc_set_max_bandwidth(e, C.opus_int32(p.MaxBandwidth)); rv != C.OPUS_OK {
				return fmt.Errorf("opusenc: set max bandwidth %d: %s", p.MaxBandwidth, C.GoString(C.opus_strerror(rv)))
			}
		}
		return nil
	})
}

// ErrClosed is returned by SetBitRate after Close.
var ErrClosed = errors.New("opusenc: encoder closed")

// Encoder is one libopus encoder reading samples from an audio.Reader.
type Encoder struct {
	r   audio.Reader
	e   *cobj.Guard[*C.OpusEncoder]
	dtx bool
}

// Read encodes the next frame into one Opus packet. With DTX, a frame that
// need not be sent (libopus' packet of 2 bytes or less) is an empty packet:
// mediadevices' packetizer sends nothing for it and moves the RTP
// timestamp on, which is how a receiver sees a DTX gap.
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
	if enc.dtx && n <= 2 {
		return []byte{}, func() {}, nil
	}
	return out[:n:n], func() {}, nil
}

// SetPacketLoss tells libopus how many packets in a hundred it should
// expect lost, which sizes its in-band FEC (with FEC on); a congestion
// controller that reads the receiver's reports keeps it current.
func (enc *Encoder) SetPacketLoss(percent int) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("opusenc: packet loss %d%% outside 0..100", percent)
	}
	return enc.e.Do(ErrClosed, func(e *C.OpusEncoder) error {
		if rv := C.enc_set_loss(e, C.opus_int32(percent)); rv != C.OPUS_OK {
			return fmt.Errorf("opusenc: set packet loss %d: %s", percent, C.GoString(C.opus_strerror(rv)))
		}
		return nil
	})
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
