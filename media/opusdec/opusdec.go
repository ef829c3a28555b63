// Package opusdec decodes Opus packets with libopus.
//
// It links the system's libopus through pkg-config (Debian's libopus-dev,
// whose libopus.a the static build takes), never the prebuilt archive bundled
// in mediadevices: the decoder runs on the parent's stream, untrusted input,
// so it must come from a library that gets security updates. LibraryVersion
// reports what was linked.
package opusdec

/*
#cgo pkg-config: opus
#cgo LDFLAGS: -lm
#include <opus.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
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
	d := C.opus_decoder_create(C.opus_int32(sampleRate), C.int(channels), &e)
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
	n := C.opus_decode(d.d, data, C.opus_int32(len(packet)), (*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(frame), 0)
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
