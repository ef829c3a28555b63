// Package h264enc encodes video to H.264 (constrained baseline, Annex B) with
// openh264, as a mediadevices video encoder.
//
// It replaces mediadevices' pkg/codec/openh264, which links a prebuilt
// OpenH264 2.1.1 archive bundled in its module unless built with the tag
// "dynamic" (and then includes <openh264/codec_api.h>, a path Debian does not
// install). A build that forgot the tag would silently link the old library
// again, decoder included (CVE-2025-27091, see package h264dec). This package
// links the system's libopenh264 through pkg-config in every build, so no
// import of ours can bring the bundled archive back.
//
// The encoder settings start from mediadevices' defaults: camera real-time
// usage, bitrate rate control with frame skipping, one size-limited slice of
// at most 12800 bytes; Params exposes the few others the profiles were
// measured with (package media's TestVideoSweep). Unlike mediadevices it
// encodes on one thread: openh264's automatic threads (iMultipleThreadIdc 0,
// mediadevices' setting) cut each picture into slices, four on this 2-core
// machine, and the RTP packetizer sends each slice as a packet of
// its own: at the low profile's 15 pictures a second, 45 more packets a
// second each way, ~60 bytes of headers each (22 kbit/s, a sixth of the
// call's 1 MB a minute), and slice edges that predict nothing across them.
// TestOneSlicePerPicture.
package h264enc

/*
#cgo pkg-config: openh264
#cgo LDFLAGS: -lstdc++ -lm
#include <string.h>
#include <wels/codec_api.h>

typedef struct {
	int width, height;
	int bitrate, max_bitrate;
	float fps;
	unsigned int intra_period;
	// -1 leaves openh264's default.
	int complexity, denoise, background, adaptive_quant, scene_change, frame_skip, min_qp, max_qp, idr_ratio, num_ref;
} enc_opts;

static int enc_new(ISVCEncoder **out, enc_opts o) {
	ISVCEncoder *e = NULL;
	int rv = WelsCreateSVCEncoder(&e);
	if (rv != 0 || e == NULL) return rv ? rv : -1;
	int quiet = WELS_LOG_QUIET;
	(*e)->SetOption(e, ENCODER_OPTION_TRACE_LEVEL, &quiet);
	SEncParamExt p;
	memset(&p, 0, sizeof p);
	rv = (*e)->GetDefaultParams(e, &p);
	if (rv != 0) { WelsDestroySVCEncoder(e); return rv; }
	p.iUsageType = CAMERA_VIDEO_REAL_TIME;
	p.iPicWidth = o.width;
	p.iPicHeight = o.height;
	p.iTargetBitrate = o.bitrate;
	p.iMaxBitrate = o.max_bitrate;
	p.iRCMode = RC_BITRATE_MODE;
	p.fMaxFrameRate = o.fps;
	p.bEnableFrameSkip = o.frame_skip != 0; // on unless switched off
	p.uiIntraPeriod = o.intra_period;
	// One thread, so one slice a picture (see the package comment).
	p.iMultipleThreadIdc = 1;
	p.sSpatialLayers[0].iVideoWidth = o.width;
	p.sSpatialLayers[0].iVideoHeight = o.height;
	p.sSpatialLayers[0].fFrameRate = o.fps;
	p.sSpatialLayers[0].iSpatialBitrate = o.bitrate;
	p.sSpatialLayers[0].iMaxSpatialBitrate = o.max_bitrate;
	if (o.complexity >= 0) p.iComplexityMode = (ECOMPLEXITY_MODE)o.complexity;
	if (o.denoise >= 0) p.bEnableDenoise = o.denoise;
	if (o.background >= 0) p.bEnableBackgroundDetection = o.background;
	if (o.adaptive_quant >= 0) p.bEnableAdaptiveQuant = o.adaptive_quant;
	if (o.scene_change >= 0) p.bEnableSceneChangeDetect = o.scene_change;
	if (o.min_qp >= 0) p.iMinQp = o.min_qp;
	if (o.max_qp >= 0) p.iMaxQp = o.max_qp;
	if (o.idr_ratio >= 0) p.iIdrBitrateRatio = o.idr_ratio;
	if (o.num_ref >= 0) p.iNumRefFrame = o.num_ref;
	p.sSpatialLayers[0].sSliceArgument.uiSliceNum = 1;
	p.sSpatialLayers[0].sSliceArgument.uiSliceMode = SM_SIZELIMITED_SLICE;
	p.sSpatialLayers[0].sSliceArgument.uiSliceSizeConstraint = 12800;
	rv = (*e)->InitializeExt(e, &p);
	if (rv != 0) { WelsDestroySVCEncoder(e); return rv; }
	*out = e;
	return 0;
}

static void enc_free(ISVCEncoder *e) {
	(*e)->Uninitialize(e);
	WelsDestroySVCEncoder(e);
}

static int enc_set_bitrate(ISVCEncoder *e, int bitrate, int max_bitrate) {
	SEncParamExt p;
	int rv = (*e)->GetOption(e, ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, &p);
	if (rv != 0) return rv;
	p.iTargetBitrate = bitrate;
	p.iMaxBitrate = max_bitrate;
	p.sSpatialLayers[0].iSpatialBitrate = bitrate;
	p.sSpatialLayers[0].iMaxSpatialBitrate = max_bitrate;
	return (*e)->SetOption(e, ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, &p);
}

static int enc_encode(ISVCEncoder *e, int force_idr, int w, int h,
                      unsigned char *y, unsigned char *u, unsigned char *v,
                      int ystride, int cstride, SFrameBSInfo *info) {
	if (force_idr) (*e)->ForceIntraFrame(e, true);
	SSourcePicture pic;
	memset(&pic, 0, sizeof pic);
	memset(info, 0, sizeof *info);
	pic.iPicWidth = w;
	pic.iPicHeight = h;
	pic.iColorFormat = videoFormatI420;
	pic.iStride[0] = ystride;
	pic.iStride[1] = pic.iStride[2] = cstride;
	pic.pData[0] = y;
	pic.pData[1] = u;
	pic.pData[2] = v;
	return (*e)->EncodeFrame(e, &pic, info);
}

// layer_size is the bytes of layer i's NAL units, which openh264 stores
// back to back from pBsBuf.
static int layer_size(const SFrameBSInfo *info, int i) {
	int n = 0;
	for (int k = 0; k < info->sLayerInfo[i].iNalCount; k++)
		n += info->sLayerInfo[i].pNalLengthInByte[k];
	return n;
}

static unsigned char *layer_buf(const SFrameBSInfo *info, int i) {
	return info->sLayerInfo[i].pBsBuf;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"io"
	"sync/atomic"
	"unsafe"

	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/media/internal/cobj"
)

// Params configures the encoder; it is a mediadevices VideoEncoderBuilder.
// The zero value of every field but BitRate leaves openh264's default.
type Params struct {
	// BitRate is the target in bit/s; 0 means 100 kbit/s.
	codec.BaseParams
	// IntraPeriod is the distance between IDR pictures in frames; 0 means
	// only the first (and those forced).
	IntraPeriod uint
	// MaxBitRateRatio is openh264's short-term rate cap as a multiple of
	// BitRate (iMaxBitrate, what it skips frames to keep under); 0 means 1,
	// the target itself, the strictest cap.
	MaxBitRateRatio float64
	// Complexity is openh264's complexity mode (motion search effort).
	Complexity Complexity
	// Denoise, BackgroundDetection, AdaptiveQuant and SceneChangeDetect
	// switch openh264's pre-processing: a denoising filter (off by
	// default), detection of still background to spend fewer bits on (on),
	// quantisation adapted to each macroblock's texture (on), and an IDR
	// picture where the scene changes (on).
	Denoise, BackgroundDetection, AdaptiveQuant, SceneChangeDetect Switch
	// FrameSkip lets rate control drop a picture (an empty access unit) to
	// hold the bitrate, as a call wants; on by default. Off, every picture
	// is coded, as a camera's own encoder does, overshooting instead.
	FrameSkip Switch
	// MinQP and MaxQP bound the quantiser (0 leaves openh264's 0..51).
	MinQP, MaxQP int
	// IDRBitRateRatio is the share of an average frame's bits an IDR picture
	// is given, in percent (openh264's iIdrBitrateRatio; 0 leaves its
	// default, 400).
	IDRBitRateRatio int
}

// Complexity is openh264's ECOMPLEXITY_MODE.
type Complexity int

// ComplexityDefault leaves openh264's default (low); the others set it.
const (
	ComplexityDefault Complexity = iota
	ComplexityLow
	ComplexityMedium
	ComplexityHigh
)

// Switch turns an openh264 feature on or off, or leaves its default.
type Switch int

const (
	SwitchDefault Switch = iota
	SwitchOn
	SwitchOff
)

func (s Switch) c() C.int {
	switch s {
	case SwitchOn:
		return 1
	case SwitchOff:
		return 0
	}
	return -1
}

func orDefault(v int) C.int {
	if v <= 0 {
		return -1
	}
	return C.int(v)
}

func (p *Params) maxBitRate(bitrate int) int {
	if p.MaxBitRateRatio <= 1 {
		return bitrate
	}
	return int(float64(bitrate) * p.MaxBitRateRatio)
}

// NewParams returns the defaults: 100 kbit/s, an IDR every 30 frames. It
// mirrors mediadevices' openh264.NewParams (whose error is always nil).
func NewParams() (Params, error) {
	return Params{BaseParams: codec.BaseParams{BitRate: 100_000}, IntraPeriod: 30}, nil
}

// RTPCodec is H.264 constrained baseline 42e01f, packetization mode 1, at
// 90 kHz: mediadevices' own description, so tracks, the media engine and the
// passthrough camera all agree on payload type and fmtp.
func (p *Params) RTPCodec() *codec.RTPCodec {
	return codec.NewRTPH264Codec(90000)
}

// BuildVideoEncoder builds an encoder for r's pictures at m's size; m's
// FrameRate drives rate control (openh264 takes 0 as 1 fps).
func (p *Params) BuildVideoEncoder(r video.Reader, m prop.Media) (codec.ReadCloser, error) {
	if m.Width <= 0 || m.Height <= 0 {
		return nil, fmt.Errorf("h264enc: build: size %dx%d", m.Width, m.Height)
	}
	bitrate := p.BitRate
	if bitrate <= 0 {
		bitrate = 100_000
	}
	var e *C.ISVCEncoder
	rv := C.enc_new(&e, C.enc_opts{
		width:          C.int(m.Width),
		height:         C.int(m.Height),
		bitrate:        C.int(bitrate),
		max_bitrate:    C.int(p.maxBitRate(bitrate)),
		fps:            C.float(m.FrameRate),
		intra_period:   C.uint(p.IntraPeriod),
		complexity:     C.int(int(p.Complexity) - 1),
		denoise:        p.Denoise.c(),
		background:     p.BackgroundDetection.c(),
		adaptive_quant: p.AdaptiveQuant.c(),
		scene_change:   p.SceneChangeDetect.c(),
		frame_skip:     p.FrameSkip.c(),
		min_qp:         orDefault(p.MinQP),
		max_qp:         orDefault(p.MaxQP),
		idr_ratio:      orDefault(p.IDRBitRateRatio),
		num_ref:        -1,
	})
	if rv != 0 {
		return nil, fmt.Errorf("h264enc: create encoder: openh264 error %d", int(rv))
	}
	return &Encoder{e: cobj.New(e, func(e *C.ISVCEncoder) { C.enc_free(e) }), r: video.ToI420(r), maxRatio: p.MaxBitRateRatio}, nil
}

// ErrClosed is returned by Read after Close.
var ErrClosed = errors.New("h264enc: encoder closed")

// Encoder is one openh264 encoder reading pictures from a video.Reader. Read
// and Close may be called from different goroutines; ForceKeyFrame and
// SetBitRate from any.
type Encoder struct {
	r        video.Reader
	forceIDR atomic.Bool
	e        *cobj.Guard[*C.ISVCEncoder]
	maxRatio float64 // Params.MaxBitRateRatio, kept by SetBitRate
}

// Read encodes the next picture into one Annex B access unit. A picture the
// rate control skipped gives an empty unit.
func (enc *Encoder) Read() ([]byte, func(), error) {
	img, release, err := enc.r.Read()
	if err != nil {
		return nil, func() {}, err
	}
	defer release()
	yuv, ok := img.(*image.YCbCr)
	if !ok || yuv.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		return nil, func() {}, fmt.Errorf("h264enc: encode: %T is not I420", img)
	}
	b := yuv.Bounds()
	if b.Empty() {
		return nil, func() {}, errors.New("h264enc: encode: empty picture")
	}
	y := yuv.Y[yuv.YOffset(b.Min.X, b.Min.Y):]
	c := yuv.COffset(b.Min.X, b.Min.Y)

	au := []byte{}
	err = enc.e.Do(io.EOF, func(e *C.ISVCEncoder) error {
		force := C.int(0)
		if enc.forceIDR.Swap(false) {
			force = 1
		}
		var info C.SFrameBSInfo
		// The planes are Go memory that C only reads during the call.
		rv := C.enc_encode(e, force, C.int(b.Dx()), C.int(b.Dy()),
			(*C.uchar)(&y[0]), (*C.uchar)(&yuv.Cb[c]), (*C.uchar)(&yuv.Cr[c]),
			C.int(yuv.YStride), C.int(yuv.CStride), &info)
		if rv != 0 {
			return fmt.Errorf("h264enc: encode: openh264 error %d", int(rv))
		}
		for i := range int(info.iLayerNum) {
			n := C.layer_size(&info, C.int(i))
			if n > 0 {
				au = append(au, C.GoBytes(unsafe.Pointer(C.layer_buf(&info, C.int(i))), n)...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, func() {}, err
	}
	return au, func() {}, nil
}

// ForceKeyFrame makes the next picture an IDR.
func (enc *Encoder) ForceKeyFrame() error {
	enc.forceIDR.Store(true)
	return nil
}

// SetBitRate changes the target bitrate (bit/s) from the next picture on;
// the short-term cap keeps its ratio to it (Params.MaxBitRateRatio).
func (enc *Encoder) SetBitRate(bitrate int) error {
	maxRate := (&Params{MaxBitRateRatio: enc.maxRatio}).maxBitRate(bitrate)
	return enc.e.Do(ErrClosed, func(e *C.ISVCEncoder) error {
		if rv := C.enc_set_bitrate(e, C.int(bitrate), C.int(maxRate)); rv != 0 {
			return fmt.Errorf("h264enc: set bitrate %d: openh264 error %d", bitrate, int(rv))
		}
		return nil
	})
}

// Controller offers codec.KeyFrameController and codec.BitRateController.
func (enc *Encoder) Controller() codec.EncoderController { return enc }

// Close frees the encoder; it is safe to call more than once.
func (enc *Encoder) Close() error { return enc.e.Close() }
