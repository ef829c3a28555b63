package h264dec_test

import (
	"bytes"
	"image"
	"testing"

	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/h264enc"
	"github.com/tuanju/tuanju/media/h264enc/h264enctest"
	"github.com/tuanju/tuanju/media/internal/h264cam"
)

// maxPicture bounds what a decoded picture may claim: level 5.1's largest
// frame is 36864 macroblocks (e.g. 4096×2304); openh264 refuses more.
const maxPicture = 36864 * 256

var startCode = []byte{0, 0, 0, 1}

// encodeUnits makes n access units of a small moving picture: an IDR (with
// SPS and PPS) and n-1 P pictures, as a parent's phone would send.
func encodeUnits(tb testing.TB, n int) [][]byte {
	tb.Helper()
	p, _ := h264enc.NewParams()
	p.BitRate, p.IntraPeriod = 150_000, 0
	enc, err := p.BuildVideoEncoder(h264enctest.Pictures(64, 48), prop.Media{Video: prop.Video{Width: 64, Height: 48, FrameRate: 15}})
	if err != nil {
		tb.Fatal(err)
	}
	defer enc.Close()
	var out [][]byte
	for range n {
		au, release, err := enc.Read()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, append([]byte(nil), au...))
		release()
	}
	return out
}

func annexB(nals ...[]byte) []byte {
	var b []byte
	for _, n := range nals {
		b = append(append(b, startCode...), n...)
	}
	return b
}

// FuzzDecode feeds malformed NAL units to the decoder entry point the
// receiver uses for the parent's stream (Decoder.Decode). With primed set,
// a genuine IDR access unit is decoded first, so mutated P slices meet real
// reference pictures and parameter sets rather than being dropped early.
// Nothing may crash; a picture that does come out must be consistent.
//
// Go's fuzzer sees coverage of Go code only, not of openh264's C: the
// mutations are blind inside the decoder. The seeds carry it: a real stream
// cut into its NAL units, truncated and corrupted.
func FuzzDecode(f *testing.F) {
	units := encodeUnits(f, 3)
	idr := units[0]
	nals := h264cam.NALUnits(idr)
	var sps, pps, slice []byte
	for _, n := range nals {
		switch h264cam.NALType(n) {
		case h264cam.NALSPS:
			sps = n
		case h264cam.NALPPS:
			pps = n
		case h264cam.NALIDR:
			slice = n
		}
	}
	if sps == nil || pps == nil || slice == nil {
		f.Fatalf("the encoder's first unit lacks SPS, PPS or IDR slice: %d NAL units", len(nals))
	}
	flip := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		c[at%len(c)] ^= 0xff
		return c
	}
	seeds := [][]byte{
		idr, units[1], units[2],
		annexB(sps), annexB(pps), annexB(sps, pps),
		annexB(sps, pps, slice[:len(slice)/2]),         // truncated slice
		annexB(sps[:len(sps)/2], pps, slice),           // truncated SPS
		annexB(sps, pps[:1], slice),                    // PPS header only
		annexB(flip(sps, 3), pps, slice),               // corrupted SPS (profile/level/size)
		annexB(sps, flip(pps, 1), slice),               // corrupted PPS
		annexB(sps, pps, flip(slice, 1)),               // corrupted slice header
		annexB(sps, pps, flip(slice, len(slice)/2)),    // corrupted slice data
		annexB(sps, sps, pps, pps, slice, slice),       // repeated units
		append(annexB(sps, pps), 0, 0, 0, 1),           // empty NAL at the end
		bytes.Repeat(startCode, 8),                     // start codes only
		{0, 0, 3, 0, 0, 3, 0, 0, 1, 0x65, 0, 0, 3},     // emulation prevention bytes
		{0x65, 0x88, 0x84},                             // no start code
		annexB([]byte{0x7f, 0xff, 0xff}, []byte{0x1f}), // forbidden bit, reserved types
	}
	for _, s := range seeds {
		f.Add(false, s)
		f.Add(true, s)
	}
	f.Fuzz(func(t *testing.T, primed bool, data []byte) {
		d, err := h264dec.New()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if primed {
			if _, err := d.Decode(idr); err != nil {
				t.Fatalf("decoding the genuine IDR unit: %v", err)
			}
		}
		img, err := d.Decode(data)
		if err != nil || img == nil {
			return // refused, or no picture: both fine
		}
		checkPicture(t, img)
	})
}

func checkPicture(t *testing.T, img *image.YCbCr) {
	t.Helper()
	w, h := img.Rect.Dx(), img.Rect.Dy()
	if w <= 0 || h <= 0 || w*h > maxPicture {
		t.Fatalf("decoded a %dx%d picture", w, h)
	}
	if img.SubsampleRatio != image.YCbCrSubsampleRatio420 || len(img.Y) < w*h || len(img.Cb) < (w+1)/2*((h+1)/2) || len(img.Cr) != len(img.Cb) {
		t.Fatalf("inconsistent %dx%d picture: ratio %v, planes %d/%d/%d", w, h, img.SubsampleRatio, len(img.Y), len(img.Cb), len(img.Cr))
	}
}
