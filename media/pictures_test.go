package media

import (
	"bytes"
	"image"
	"math/rand/v2"
	"testing"

	"github.com/tuanju/tuanju/media/h264dec"
)

// TestPictureSlot: a picture handed out is never given back as a buffer to
// decode into (LatestFrame's promise), whatever the order of decodes,
// failures and takes; and a call nobody watches decodes into two pictures.
func TestPictureSlot(t *testing.T) {
	for _, tc := range []struct {
		name      string
		takeEvery int // 0: nobody takes
		maxPics   int // distinct pictures allocated over the run, 0: no bound
	}{
		{"nobody watches", 0, 2},
		{"a screen takes every picture", 1, 0},
		{"a preview takes now and then", 7, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			var p pictureSlot
			handed := map[*image.YCbCr]bool{}
			allocated := 0
			for i := range 500 {
				buf := p.buffer()
				if handed[buf] {
					t.Fatalf("decode %d: a picture handed out came back as a buffer", i)
				}
				if rng.IntN(10) == 0 { // the unit held no picture, or did not decode
					p.giveBack(buf)
					continue
				}
				img := buf
				if img == nil {
					img = image.NewYCbCr(image.Rect(0, 0, 4, 4), image.YCbCrSubsampleRatio420)
					allocated++
				}
				img.Y[0] = byte(i)
				p.put(img)
				if tc.takeEvery > 0 && i%tc.takeEvery == 0 {
					got := p.take().(*image.YCbCr)
					if got != img {
						t.Fatalf("decode %d: took another picture than the latest", i)
					}
					handed[got] = true
				}
			}
			if tc.maxPics > 0 && allocated > tc.maxPics {
				t.Errorf("%d pictures allocated, want at most %d", allocated, tc.maxPics)
			}
			t.Logf("%d pictures allocated for 500 decodes, %d handed out", allocated, len(handed))
		})
	}
}

// TestDecodeIntoReuses: decoding into a recycled picture gives the same
// pixels as a fresh one, in the same picture.
func TestDecodeIntoReuses(t *testing.T) {
	aus := encodeVideo(t, Low, 2*Low.FPS)
	fresh, err := h264dec.New()
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	reuse, err := h264dec.New()
	if err != nil {
		t.Fatal(err)
	}
	defer reuse.Close()
	var buf *image.YCbCr
	frames := 0
	for i, au := range aus {
		want, err := fresh.Decode(au)
		if err != nil {
			t.Fatalf("unit %d: %v", i, err)
		}
		got, err := reuse.DecodeInto(au, buf)
		if err != nil {
			t.Fatalf("unit %d: %v", i, err)
		}
		if (want == nil) != (got == nil) {
			t.Fatalf("unit %d: a picture from one decoder only", i)
		}
		if got == nil {
			continue
		}
		if buf != nil && got != buf {
			t.Errorf("unit %d: a new picture though the buffer was the right size", i)
		}
		if !bytes.Equal(got.Y, want.Y) || !bytes.Equal(got.Cb, want.Cb) || !bytes.Equal(got.Cr, want.Cr) {
			t.Fatalf("unit %d: the recycled picture differs from a fresh one", i)
		}
		buf = got
		frames++
	}
	if frames < len(aus)/2 {
		t.Errorf("%d pictures of %d units", frames, len(aus))
	}
	// A buffer of another size is not written: a new picture comes back.
	small := image.NewYCbCr(image.Rect(0, 0, 16, 16), image.YCbCrSubsampleRatio420)
	got, err := reuse.DecodeInto(aus[0], small)
	if err != nil || got == nil || got == small || got.Rect.Dx() != Low.Width {
		t.Errorf("DecodeInto a 16×16 buffer: %v (the buffer itself: %v), %v", got != nil, got == small, err)
	}
}
