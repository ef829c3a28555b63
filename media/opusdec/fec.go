package opusdec

/*
#include <opus.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// DecodeFEC rebuilds the packet lost just before packet from the in-band
// forward error correction packet carries (an Opus encoder with FEC on
// sends a coarse copy of each frame in the next packet), filling exactly
// len(pcm)/channels samples: the lost packet's duration. A packet without
// FEC data gives the decoder's concealment instead, as Decode(nil) would.
func (d *Decoder) DecodeFEC(packet []byte, pcm []int16) (int, error) {
	if d.d == nil {
		return 0, ErrClosed
	}
	frame := len(pcm) / d.channels
	if frame == 0 || len(packet) == 0 {
		return 0, errors.New("opusdec: decode fec: empty packet or PCM buffer")
	}
	n := C.opus_decode(d.d, (*C.uchar)(unsafe.Pointer(&packet[0])), C.opus_int32(len(packet)),
		(*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(frame), 1)
	if n < 0 {
		return 0, fmt.Errorf("opusdec: decode fec: %s", C.GoString(C.opus_strerror(n)))
	}
	return int(n), nil
}

// PacketSamples is how many samples per channel packet holds at the
// decoder's rate (its frames' total duration), read from its header
// without decoding.
func (d *Decoder) PacketSamples(packet []byte) (int, error) {
	if d.d == nil {
		return 0, ErrClosed
	}
	if len(packet) == 0 {
		return 0, errors.New("opusdec: packet samples: empty packet")
	}
	n := C.opus_decoder_get_nb_samples(d.d, (*C.uchar)(unsafe.Pointer(&packet[0])), C.opus_int32(len(packet)))
	if n < 0 {
		return 0, fmt.Errorf("opusdec: packet samples: %s", C.GoString(C.opus_strerror(n)))
	}
	return int(n), nil
}
