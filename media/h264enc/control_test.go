package h264enc_test

import (
	"image"
	"testing"

	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/h264enc"
	"github.com/tuanju/tuanju/media/h264enc/h264enctest"
	"github.com/tuanju/tuanju/media/internal/h264cam"
	"github.com/tuanju/tuanju/media/synth"
)

func TestSetSize(t *testing.T) {
	const w, h = 320, 240
	p, _ := h264enc.NewParams()
	p.BitRate, p.IntraPeriod = 200_000, 0
	enc, err := p.BuildVideoEncoder(h264enctest.Pictures(w, h), prop.Media{Video: prop.Video{Width: w, Height: h, FrameRate: 15}})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	e := enc.(*h264enc.Encoder)
	dec, err := h264dec.New()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	sizes := []image.Point{{w, h}, {w, h}, {160, 120}, {160, 120}, {160, 120}, {w, h}, {w, h}, {240, 180}, {240, 180}}
	for i, want := range sizes {
		if i > 0 && want != sizes[i-1] {
			if err := e.SetSize(want.X, want.Y); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
		}
		if i == 3 {
			if err := e.SetFrameRate(7.5); err != nil {
				t.Fatal(err)
			}
		}
		if i == 4 || i == 8 {
			if err := e.SetRate(150_000); err != nil {
				t.Fatal(err)
			}
		}
		au, release, err := enc.Read()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		release()
		img, err := dec.Decode(au)
		if err != nil {
			t.Fatalf("frame %d: decode: %v", i, err)
		}
		if img == nil || img.Rect.Size() != want {
			var got image.Point
			if img != nil {
				got = img.Rect.Size()
			}
			t.Fatalf("frame %d decoded to %v, want %v", i, got, want)
		}
		t.Logf("frame %d: %v, %d bytes, idr %v", i, img.Rect.Size(), len(au), h264cam.Inspect(au).IDR)
	}
}

// TestSetRateFollows: the target set at run time is what comes out, also
// after a size or frame-rate change (openh264 shares the target out per
// picture, so a wrong frame rate would miss it by the ratio).
func TestSetRateFollows(t *testing.T) {
	const w, h, fps = 320, 240, 15
	cam, err := synth.NewCamera(synth.CameraOptions{Width: w, Height: h, FPS: fps, Unpaced: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	p, _ := h264enc.NewParams()
	p.BitRate, p.IntraPeriod = 300_000, 0
	enc, err := p.BuildVideoEncoder(cam, prop.Media{Video: prop.Video{Width: w, Height: h, FrameRate: fps}})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	e := enc.(*h264enc.Encoder)
	for _, ph := range []struct {
		rate int
		size image.Point
		fps  float32
		skip int // pictures encoded but not sent (frame rate below the camera's)
	}{
		{300_000, image.Pt(w, h), fps, 1},
		{100_000, image.Pt(w, h), fps, 1},
		{60_000, image.Pt(w, h), 7.5, 2},
		{60_000, image.Pt(160, 120), 7.5, 2},
		{250_000, image.Pt(w, h), fps, 1},
	} {
		if err := e.SetRate(ph.rate); err != nil {
			t.Fatal(err)
		}
		if err := e.SetFrameRate(ph.fps); err != nil {
			t.Fatal(err)
		}
		if err := e.SetSize(ph.size.X, ph.size.Y); err != nil {
			t.Fatal(err)
		}
		// 2 s to settle, 6 s measured.
		settle, measure := int(2*ph.fps), int(6*ph.fps)
		bytes := 0
		for i := range (settle + measure) * ph.skip {
			if ph.skip > 1 && i%ph.skip != 0 {
				if _, _, err := cam.Read(); err != nil { // dropped before the encoder
					t.Fatal(err)
				}
				continue
			}
			au, release, err := enc.Read()
			if err != nil {
				t.Fatal(err)
			}
			release()
			if i/ph.skip >= settle {
				bytes += len(au)
			}
		}
		got := float64(bytes*8) * float64(ph.fps) / float64(measure)
		t.Logf("target %d at %v, %v fps: %.0f bit/s", ph.rate, ph.size, ph.fps, got)
		if got > 1.25*float64(ph.rate) || got < 0.5*float64(ph.rate) {
			t.Errorf("target %d at %v, %v fps: got %.0f bit/s", ph.rate, ph.size, ph.fps, got)
		}
	}
}
