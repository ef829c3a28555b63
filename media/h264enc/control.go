package h264enc

/*
#include <string.h>
#include <wels/codec_api.h>

static int enc_set_frame_rate(ISVCEncoder *e, float fps) {
	return (*e)->SetOption(e, ENCODER_OPTION_FRAME_RATE, &fps);
}

// enc_set_rate changes the target and maximum bitrate through the options
// made for it, which touch nothing else. (A round trip through
// ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, as enc_set_bitrate makes, reads back
// the layer's size rounded up to whole macroblocks and, after SetSize to a
// size that is not, restarts the stream at that size: 160x120 became
// 160x128.) The maximum is raised first and lowered last, as openh264
// refuses a target above the maximum.
static int enc_set_rate(ISVCEncoder *e, int bitrate) {
	SBitrateInfo t = {SPATIAL_LAYER_0, bitrate};
	SBitrateInfo m = {SPATIAL_LAYER_0, bitrate};
	SBitrateInfo cur = {SPATIAL_LAYER_0, 0};
	int rv = (*e)->GetOption(e, ENCODER_OPTION_BITRATE, &cur);
	if (rv != 0) return rv;
	if (bitrate > cur.iBitrate) {
		rv = (*e)->SetOption(e, ENCODER_OPTION_MAX_BITRATE, &m);
		if (rv != 0) return rv;
		return (*e)->SetOption(e, ENCODER_OPTION_BITRATE, &t);
	}
	rv = (*e)->SetOption(e, ENCODER_OPTION_BITRATE, &t);
	if (rv != 0) return rv;
	return (*e)->SetOption(e, ENCODER_OPTION_MAX_BITRATE, &m);
}

// enc_set_layer_size changes the size of the coded picture while the input
// keeps its size (iPicWidth): openh264 scales each input picture down to
// the layer itself, and a new size restarts the stream with an IDR and new
// parameter sets.
static int enc_set_layer_size(ISVCEncoder *e, int w, int h) {
	SEncParamExt p;
	int rv = (*e)->GetOption(e, ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, &p);
	if (rv != 0) return rv;
	if (w > p.iPicWidth || h > p.iPicHeight) return -1;
	p.sSpatialLayers[0].iVideoWidth = w;
	p.sSpatialLayers[0].iVideoHeight = h;
	return (*e)->SetOption(e, ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, &p);
}
*/
import "C"

import "fmt"

// SetFrameRate tells the rate control how many pictures a second it now
// gets (1..30). openh264 shares the bitrate out per picture, so a caller
// that drops pictures before the encoder must say so, or the stream comes
// out at a fraction of its target.
func (enc *Encoder) SetFrameRate(fps float32) error {
	if fps < 1 || fps > 30 {
		return fmt.Errorf("h264enc: set frame rate %v: outside 1..30", fps)
	}
	return enc.e.Do(ErrClosed, func(e *C.ISVCEncoder) error {
		if rv := C.enc_set_frame_rate(e, C.float(fps)); rv != 0 {
			return fmt.Errorf("h264enc: set frame rate %v: openh264 error %d", fps, int(rv))
		}
		return nil
	})
}

// SetRate changes the target bitrate (bit/s) from the next picture on, as
// SetBitRate does, without touching the encoder's other parameters: use it
// on an encoder whose size SetSize changed.
func (enc *Encoder) SetRate(bitrate int) error {
	if bitrate <= 0 {
		return fmt.Errorf("h264enc: set rate %d: not positive", bitrate)
	}
	return enc.e.Do(ErrClosed, func(e *C.ISVCEncoder) error {
		if rv := C.enc_set_rate(e, C.int(bitrate)); rv != 0 {
			return fmt.Errorf("h264enc: set rate %d: openh264 error %d", bitrate, int(rv))
		}
		return nil
	})
}

// SetSize makes the encoder code its input pictures at w×h from the next
// picture on; the input keeps the size the encoder was built for, and
// openh264 scales it down itself (the board pays nothing in Go for it).
// w and h must be even and no larger than the input. The next picture is an
// IDR carrying the new size.
func (enc *Encoder) SetSize(w, h int) error {
	if w < 16 || h < 16 || w%2 != 0 || h%2 != 0 {
		return fmt.Errorf("h264enc: set size %dx%d: want even sizes of at least 16x16", w, h)
	}
	return enc.e.Do(ErrClosed, func(e *C.ISVCEncoder) error {
		if rv := C.enc_set_layer_size(e, C.int(w), C.int(h)); rv != 0 {
			return fmt.Errorf("h264enc: set size %dx%d: openh264 error %d", w, h, int(rv))
		}
		return nil
	})
}
