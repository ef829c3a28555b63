// Package opusdec decodes Opus packets with libopus.
//
// It links nothing itself: the import of mediadevices' opus package puts its
// bundled static libopus (which contains the decoder as well as the encoder)
// on the final link line, so both share one copy of the library. The four
// declarations below are libopus' stable public ABI (unchanged since 1.0), so
// no headers are copied. See package h264dec for the linking details.
package opusdec

/*
#include <stdint.h>
typedef struct OpusDecoder OpusDecoder;
OpusDecoder *opus_decoder_create(int32_t Fs, int channels, int *error);
int opus_decode(OpusDecoder *st, const unsigned char *data, int32_t len, int16_t *pcm, int frame_size, int decode_fec);
void opus_decoder_destroy(OpusDecoder *st);
const char *opus_strerror(int error);
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	// Brings libopus' archive onto the link line; see the package doc.
	_ "github.com/pion/mediadevices/pkg/codec/opus"
)

// MaxFrameSamples is the longest Opus packet (120 ms) at 48 kHz, per channel:
// a PCM buffer of MaxFrameSamples*channels always suffices.
const MaxFrameSamples = 5760

// ErrClosed is returned by Decode after Close.
var ErrClosed = errors.New("opusdec: decoder closed")

// Decoder holds one libopus decoder. It is not safe for concurrent use.
type Decoder struct {
	d        *C.OpusDecoder
	channels int
}

// New creates a decoder producing interleaved 16-bit PCM at sampleRate (8000,
// 12000, 16000, 24000 or 48000) with the given channel count (1 or 2),
// whatever the sender encoded.
func New(sampleRate, channels int) (*Decoder, error) {
	var e C.int
	d := C.opus_decoder_create(C.int32_t(sampleRate), C.int(channels), &e)
	if e != 0 || d == nil {
		return nil, fmt.Errorf("opusdec: create decoder: %s", C.GoString(C.opus_strerror(e)))
	}
	return &Decoder{d: d, channels: channels}, nil
}

// Decode decodes one packet into pcm (interleaved) and returns the samples per
// channel. A nil packet asks libopus to conceal one lost packet.
func (d *Decoder) Decode(packet []byte, pcm []int16) (int, error) {
	if d.d == nil {
		return 0, ErrClosed
	}
	frame := len(pcm) / d.channels
	if frame == 0 {
		return 0, errors.New("opusdec: decode: empty PCM buffer")
	}
	var data *C.uchar
	if len(packet) > 0 {
		data = (*C.uchar)(unsafe.Pointer(&packet[0]))
	}
	n := C.opus_decode(d.d, data, C.int32_t(len(packet)), (*C.int16_t)(unsafe.Pointer(&pcm[0])), C.int(frame), 0)
	if n < 0 {
		return 0, fmt.Errorf("opusdec: decode: %s", C.GoString(C.opus_strerror(n)))
	}
	return int(n), nil
}

// Close frees the decoder. It is safe to call more than once.
func (d *Decoder) Close() {
	if d.d != nil {
		C.opus_decoder_destroy(d.d)
		d.d = nil
	}
}
