// Package h264dec decodes H.264 (Annex B access units) with the openh264 decoder.
//
// It links the system's libopenh264 through pkg-config, never the prebuilt
// 2.1.1 archive bundled in mediadevices: the decoder runs on the parent's
// stream, untrusted input, and OpenH264 <= 2.5.0 has a decoder heap overflow
// (CVE-2025-27091). Debian 12's libopenh264-dev 2.3.1+dfsg-3+deb12u1 and later
// carry the fix and ship a static libopenh264.a, which the static build links;
// Version reports what was linked and its test holds the floor.
//
// libopenh264 is C++ inside: a static link needs libstdc++ and libm after it,
// which openh264.pc lists only under Libs.private (cgo never asks pkg-config
// for --static). They are named here; a dynamic link (go test) ignores them
// as harmless.
package h264dec

/*
#cgo pkg-config: openh264
#cgo LDFLAGS: -lstdc++ -lm
#include <stdlib.h>
#include <string.h>
#include <wels/codec_api.h>

static long dec_new(ISVCDecoder **out) {
	ISVCDecoder *d = NULL;
	long rv = WelsCreateDecoder(&d);
	if (rv != 0 || d == NULL) return rv ? rv : -1;
	int quiet = WELS_LOG_QUIET;
	(*d)->SetOption(d, DECODER_OPTION_TRACE_LEVEL, &quiet);
	SDecodingParam p;
	memset(&p, 0, sizeof p);
	p.sVideoProperty.eVideoBsType = VIDEO_BITSTREAM_AVC;
	// No concealment: a damaged picture is reported as an error (the caller
	// asks for a keyframe) instead of being shown smeared.
	p.eEcActiveIdc = ERROR_CON_DISABLE;
	rv = (*d)->Initialize(d, &p);
	if (rv != 0) { WelsDestroyDecoder(d); return rv; }
	*out = d;
	return 0;
}

static void dec_free(ISVCDecoder *d) {
	(*d)->Uninitialize(d);
	WelsDestroyDecoder(d);
}

static int dec_decode(ISVCDecoder *d, const unsigned char *src, int n,
                      unsigned char **planes, SBufferInfo *info) {
	memset(info, 0, sizeof *info);
	return (int)(*d)->DecodeFrameNoDelay(d, src, n, planes, info);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"unsafe"
)

// ErrClosed is returned by Decode after Close.
var ErrClosed = errors.New("h264dec: decoder closed")

// Decoder holds one openh264 decoder. It is not safe for concurrent use: give
// each remote track its own.
type Decoder struct {
	d *C.ISVCDecoder
}

// New creates a decoder for an AVC (Annex B) stream.
func New() (*Decoder, error) {
	var d *C.ISVCDecoder
	if rv := C.dec_new(&d); rv != 0 {
		return nil, fmt.Errorf("h264dec: create decoder: openh264 error %d", int(rv))
	}
	return &Decoder{d: d}, nil
}

// Decode decodes one Annex B access unit. It returns (nil, nil) when the unit
// carried no picture (for example SPS/PPS only). The image is a copy that the
// caller owns, because openh264 reuses its output buffers on the next call.
func (d *Decoder) Decode(au []byte) (*image.YCbCr, error) { return d.DecodeInto(au, nil) }

// DecodeInto is Decode writing the picture into dst when dst is an I420
// picture of the decoded size (and returning dst), into a new one when it
// is not (nil, or the stream changed size): a receiver that hands its
// pictures to no one recycles one instead of allocating 115 KB a frame.
func (d *Decoder) DecodeInto(au []byte, dst *image.YCbCr) (*image.YCbCr, error) {
	if d.d == nil {
		return nil, ErrClosed
	}
	if len(au) == 0 {
		return nil, nil
	}
	var planes [3]*C.uchar
	var info C.SBufferInfo
	// cgo lets C read Go memory for the duration of the call; openh264 copies
	// what it keeps.
	state := C.dec_decode(d.d, (*C.uchar)(unsafe.Pointer(&au[0])), C.int(len(au)), &planes[0], &info)
	if state != 0 {
		return nil, fmt.Errorf("h264dec: decode: openh264 state %#x", int(state))
	}
	if info.iBufferStatus != 1 {
		return nil, nil
	}
	sys := (*C.SSysMEMBuffer)(unsafe.Pointer(&info.UsrData))
	w, h := int(sys.iWidth), int(sys.iHeight)
	ys, cs := int(sys.iStride[0]), int(sys.iStride[1])
	if w <= 0 || h <= 0 || ys < w || cs < (w+1)/2 || planes[0] == nil || planes[1] == nil || planes[2] == nil {
		// A corrupt parameter set can give openh264 a picture with no
		// width (FuzzDecode found one 0×8): there is nothing to copy, and
		// a receiver must not take it for a picture.
		return nil, fmt.Errorf("h264dec: decode: openh264 gave a %dx%d picture (strides %d, %d)", w, h, ys, cs)
	}
	img := dst
	if img == nil || img.Rect != image.Rect(0, 0, w, h) || img.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		img = image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	}
	copyPlane(img.Y, img.YStride, planes[0], ys, w, h)
	copyPlane(img.Cb, img.CStride, planes[1], cs, (w+1)/2, (h+1)/2)
	copyPlane(img.Cr, img.CStride, planes[2], cs, (w+1)/2, (h+1)/2)
	return img, nil
}

func copyPlane(dst []byte, dstStride int, src *C.uchar, srcStride, w, h int) {
	s := unsafe.Slice((*byte)(unsafe.Pointer(src)), srcStride*(h-1)+w)
	for y := range h {
		copy(dst[y*dstStride:y*dstStride+w], s[y*srcStride:y*srcStride+w])
	}
}

// Close frees the decoder. It is safe to call more than once.
func (d *Decoder) Close() {
	if d.d != nil {
		C.dec_free(d.d)
		d.d = nil
	}
}
