package h264enc_test

import (
	"errors"
	"image"
	"io"
	"testing"

	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/h264enc"
	"github.com/tuanju/tuanju/media/h264enc/h264enctest"
	"github.com/tuanju/tuanju/media/internal/h264cam"
	"github.com/tuanju/tuanju/media/synth"
)

func TestEncodeDecode(t *testing.T) {
	const w, h = 176, 144
	p, _ := h264enc.NewParams()
	p.BitRate, p.IntraPeriod = 200_000, 0 // only the first IDR, and forced ones
	enc, err := p.BuildVideoEncoder(h264enctest.Pictures(w, h), prop.Media{Video: prop.Video{Width: w, Height: h, FrameRate: 15}})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := h264dec.New()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	kf, ok := enc.Controller().(codec.KeyFrameController)
	if !ok {
		t.Fatal("the encoder offers no KeyFrameController")
	}
	if _, ok := enc.Controller().(codec.BitRateController); !ok {
		t.Fatal("the encoder offers no BitRateController")
	}
	for i := range 6 {
		if i == 4 {
			if err := kf.ForceKeyFrame(); err != nil {
				t.Fatal(err)
			}
		}
		au, release, err := enc.Read()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		release()
		if idr, want := h264cam.Inspect(au).IDR, i == 0 || i == 4; idr != want {
			t.Errorf("frame %d: IDR %v, want %v", i, idr, want)
		}
		img, err := dec.Decode(au)
		if err != nil {
			t.Fatalf("frame %d: decode: %v", i, err)
		}
		if img == nil || img.Rect != image.Rect(0, 0, w, h) {
			t.Fatalf("frame %d decoded to %v, want a %dx%d picture", i, img, w, h)
		}
	}
	if err := enc.Controller().(codec.BitRateController).SetBitRate(100_000); err != nil {
		t.Errorf("SetBitRate: %v", err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := enc.Read(); !errors.Is(err, io.EOF) {
		t.Errorf("Read after Close = %v, want io.EOF", err)
	}
	if err := enc.Controller().(codec.BitRateController).SetBitRate(100_000); !errors.Is(err, h264enc.ErrClosed) {
		t.Errorf("SetBitRate after Close = %v, want ErrClosed", err)
	}
	if err := enc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestBuildRejects(t *testing.T) {
	p, _ := h264enc.NewParams()
	for _, m := range []prop.Media{{}, {Video: prop.Video{Width: 176}}, {Video: prop.Video{Width: -2, Height: 144}}} {
		if enc, err := p.BuildVideoEncoder(h264enctest.Pictures(176, 144), m); err == nil {
			enc.Close()
			t.Errorf("built an encoder for %dx%d", m.Width, m.Height)
		}
	}
}

func TestReadErrors(t *testing.T) {
	p, _ := h264enc.NewParams()
	m := prop.Media{Video: prop.Video{Width: 176, Height: 144, FrameRate: 15}}
	boom := errors.New("camera gone")
	enc, err := p.BuildVideoEncoder(video.ReaderFunc(func() (image.Image, func(), error) {
		return nil, func() {}, boom
	}), m)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if _, _, err := enc.Read(); !errors.Is(err, boom) {
		t.Errorf("Read = %v, want the source's error", err)
	}
}

// TestTuning: every setting the profiles use builds an encoder whose
// pictures decode, and frame skipping is what it says: on by default (a
// starved rate on the realistic scene skips pictures), never when off.
func TestTuning(t *testing.T) {
	const w, h, fps = 320, 240, 15
	tests := []struct {
		name  string
		tune  func(*h264enc.Params)
		skips bool
	}{
		{"defaults", func(*h264enc.Params) {}, true},
		{"denoise, medium", func(p *h264enc.Params) { p.Denoise, p.Complexity = h264enc.SwitchOn, h264enc.ComplexityMedium }, true},
		{"all switched", func(p *h264enc.Params) {
			p.Complexity, p.BackgroundDetection, p.AdaptiveQuant, p.SceneChangeDetect = h264enc.ComplexityHigh, h264enc.SwitchOff, h264enc.SwitchOff, h264enc.SwitchOff
			p.MinQP, p.MaxQP, p.IDRBitRateRatio, p.MaxBitRateRatio = 10, 45, 300, 1.5
		}, true},
		{"no frame skip", func(p *h264enc.Params) { p.FrameSkip = h264enc.SwitchOff }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scene, err := synth.NewScene(synth.SceneOptions{Width: w, Height: h, FPS: fps})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			src := video.ReaderFunc(func() (image.Image, func(), error) { n++; return scene.Frame(n - 1), func() {}, nil })
			p, _ := h264enc.NewParams()
			p.BitRate = 25_000
			tt.tune(&p)
			enc, err := p.BuildVideoEncoder(src, prop.Media{Video: prop.Video{Width: w, Height: h, FrameRate: fps}})
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			dec, err := h264dec.New()
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			skipped := 0
			for i := range 2 * fps {
				if i == fps {
					if err := enc.(*h264enc.Encoder).SetFrameRate(10); err != nil {
						t.Fatal(err)
					}
				}
				au, release, err := enc.Read()
				if err != nil {
					t.Fatal(err)
				}
				if len(au) == 0 {
					skipped++
					release()
					continue
				}
				_, err = dec.Decode(au)
				release()
				if err != nil {
					t.Fatalf("frame %d: decode: %v", i, err)
				}
			}
			if (skipped > 0) != tt.skips {
				t.Errorf("%d of %d pictures skipped, want skipping %v", skipped, 2*fps, tt.skips)
			}
		})
	}
	enc, err := func() (*h264enc.Encoder, error) {
		p, _ := h264enc.NewParams()
		e, err := p.BuildVideoEncoder(h264enctest.Pictures(w, h), prop.Media{Video: prop.Video{Width: w, Height: h, FrameRate: fps}})
		if err != nil {
			return nil, err
		}
		return e.(*h264enc.Encoder), nil
	}()
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.SetFrameRate(0); err == nil {
		t.Error("SetFrameRate(0) succeeded")
	}
	enc.Close()
	if err := enc.SetFrameRate(10); !errors.Is(err, h264enc.ErrClosed) {
		t.Errorf("SetFrameRate after Close = %v, want ErrClosed", err)
	}
}

// TestOneSlicePerPicture: each coded picture under the size-limited
// slice's 12,800 bytes is one slice, at every profile's size, so it leaves
// as one RTP packet when it fits one (the packetizer sends each NAL unit
// apart): with openh264's automatic threads each was four here.
func TestOneSlicePerPicture(t *testing.T) {
	for _, tc := range []struct {
		w, h, bitrate, fps int
	}{
		{160, 120, 28_000, 10},
		{320, 240, 80_000, 15},
		{640, 480, 300_000, 15},
	} {
		p, _ := h264enc.NewParams()
		p.BitRate = tc.bitrate
		scene, err := synth.NewScene(synth.SceneOptions{Width: tc.w, Height: tc.h, FPS: tc.fps})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		src := video.ReaderFunc(func() (image.Image, func(), error) { n++; return scene.Frame(n - 1), func() {}, nil })
		enc, err := p.BuildVideoEncoder(src, prop.Media{Video: prop.Video{Width: tc.w, Height: tc.h, FrameRate: float32(tc.fps)}})
		if err != nil {
			t.Fatal(err)
		}
		coded := 0
		for i := range 45 {
			au, release, err := enc.Read()
			if err != nil {
				t.Fatal(err)
			}
			slices := 0
			for _, n := range h264cam.NALUnits(au) {
				if typ := h264cam.NALType(n); typ == h264cam.NALSlice || typ == h264cam.NALIDR {
					slices++
				}
			}
			release()
			if len(au) > 0 {
				coded++
				if want := max(1, (len(au)+12_799)/12_800); slices < 1 || slices > want {
					t.Errorf("%dx%d picture %d: %d slices in %d bytes, want 1 for each 12,800 bytes", tc.w, tc.h, i, slices, len(au))
				}
			}
		}
		enc.Close()
		if coded < 30 {
			t.Errorf("%dx%d: %d of 45 pictures coded", tc.w, tc.h, coded)
		}
	}
}
