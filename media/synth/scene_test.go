package synth

import (
	"bytes"
	"fmt"
	"image"
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/h264enc"
)

func newScene(tb testing.TB, o SceneOptions) *Scene {
	tb.Helper()
	s, err := NewScene(o)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestSceneDeterministic: frame n depends only on the options and n, not on
// the frames rendered before it, so a receiver can render what was sent.
func TestSceneDeterministic(t *testing.T) {
	o := SceneOptions{Width: 320, Height: 240, FPS: 15, Seed: 7}
	a, b := newScene(t, o), newScene(t, o)
	for range 5 {
		a.Frame(3)
	}
	for _, n := range []int{0, 1, 44, 1000} {
		if fa, fb := a.Frame(n), b.Frame(n); !bytes.Equal(fa.Y, fb.Y) || !bytes.Equal(fa.Cb, fb.Cb) || !bytes.Equal(fa.Cr, fb.Cr) {
			t.Errorf("frame %d differs between two scenes with the same options", n)
		}
	}
	o.Seed = 8
	if c := newScene(t, o); bytes.Equal(c.Frame(0).Y, a.Frame(0).Y) {
		t.Error("seeds 7 and 8 render the same frame")
	}
	if bytes.Equal(a.Frame(0).Y, a.Frame(1).Y) {
		t.Error("consecutive frames are identical")
	}
}

// TestSceneBehaves: over a minute the child sways, talks, blinks, looks
// about and waves, as the scene promises; encoders see all of that.
func TestSceneBehaves(t *testing.T) {
	for _, seed := range []uint64{0, 1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := newScene(t, SceneOptions{Width: 320, Height: 240, FPS: 15, Seed: seed})
			minX, maxX := math.Inf(1), math.Inf(-1)
			var maxMouth, maxLid, maxHand, minRY, maxRY float64
			minRY = math.Inf(1)
			gazes := map[float64]bool{}
			closedMouth := 0
			const frames = 60 * 15
			for n := range frames {
				p := s.pose(float64(n) / 15)
				minX, maxX = min(minX, p.cx), max(maxX, p.cx)
				minRY, maxRY = min(minRY, p.ry), max(maxRY, p.ry)
				maxMouth, maxLid, maxHand = max(maxMouth, p.mouth), max(maxLid, p.lid), max(maxHand, p.hand)
				gazes[p.gazeX] = true
				if p.mouth == 0 {
					closedMouth++
				}
			}
			if sway := (maxX - minX) / 320; sway < 0.05 {
				t.Errorf("head sways over %.1f%% of the width, want ≥ 5%%", 100*sway)
			}
			if lean := maxRY / minRY; lean < 1.08 {
				t.Errorf("head size varies ×%.2f, want leaning in (≥ ×1.08)", lean)
			}
			if maxMouth < 0.6 || closedMouth < frames/10 || closedMouth > frames*9/10 {
				t.Errorf("mouth: widest %.2f, shut in %d of %d frames: want talking and pauses", maxMouth, closedMouth, frames)
			}
			if maxLid < 0.9 {
				t.Errorf("eyes never shut (lid %.2f): no blinks", maxLid)
			}
			if len(gazes) < 20 {
				t.Errorf("gaze took %d directions in a minute, want ≥ 20", len(gazes))
			}
			if maxHand < 0.99 {
				t.Errorf("no wave in a minute (hand %.2f)", maxHand)
			}
		})
	}
}

// TestSceneLight: the exposure pass gives each light its mean and its noise.
func TestSceneLight(t *testing.T) {
	tests := []struct {
		light            Light
		mean, sigma, tol float64
	}{
		{Daylight, 128, 2.2, 0.3},
		{LowLight, 14 + 0.42*128, 5.5, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.light.String(), func(t *testing.T) {
			s := newScene(t, SceneOptions{Width: 320, Height: 240, FPS: 15, Light: tt.light})
			img := image.NewYCbCr(image.Rect(0, 0, 320, 240), image.YCbCrSubsampleRatio420)
			for i := range img.Y {
				img.Y[i] = 128
			}
			s.expose(img, 5)
			var sum, sq float64
			for _, v := range img.Y {
				sum += float64(v)
			}
			mean := sum / float64(len(img.Y))
			for _, v := range img.Y {
				sq += (float64(v) - mean) * (float64(v) - mean)
			}
			sigma := math.Sqrt(sq / float64(len(img.Y)))
			if math.Abs(mean-tt.mean) > 0.5 || math.Abs(sigma-tt.sigma) > tt.tol {
				t.Errorf("mid grey exposes to mean %.1f σ %.2f, want %.1f σ %.1f", mean, sigma, tt.mean, tt.sigma)
			}
		})
	}
	if _, err := NewScene(SceneOptions{Width: 320, Height: 240, FPS: 15, Light: 9}); err == nil {
		t.Error("an unknown light was accepted")
	}
}

func TestStamp(t *testing.T) {
	s := newScene(t, SceneOptions{Width: 320, Height: 240, FPS: 15, Light: LowLight})
	for _, n := range []int{0, 1, 2, 3, 255, 256, 99_999, stampMod - 1, stampMod, stampMod + 5} {
		got, ok := ReadStamp(s.Frame(n))
		if want := n % stampMod; !ok || got != want {
			t.Errorf("stamp of frame %d read as %d, %v; want %d", n, got, ok, want)
		}
	}

	flat := image.NewYCbCr(image.Rect(0, 0, 320, 240), image.YCbCrSubsampleRatio420)
	if _, ok := ReadStamp(flat); ok {
		t.Error("a flat picture has a stamp")
	}
	if _, ok := ReadStamp(image.NewYCbCr(image.Rect(0, 0, 64, 64), image.YCbCrSubsampleRatio420)); ok {
		t.Error("a picture smaller than a stamp has one")
	}
	if _, ok := ReadStamp(nil); ok {
		t.Error("nil has a stamp")
	}
	// One bit flipped (its two cells swapped) fails the check; a bit whose
	// cells are alike is unreadable.
	img := s.Frame(1234)
	hi, lo := cellMean(img, 0), cellMean(img, 1)
	cellFill(img, 0, uint8(lo))
	cellFill(img, 1, uint8(hi))
	if n, ok := ReadStamp(img); ok {
		t.Errorf("a stamp with a flipped bit read as %d", n)
	}
	cellFill(img, 0, 120)
	cellFill(img, 1, 130)
	if n, ok := ReadStamp(img); ok {
		t.Errorf("a stamp with an unreadable bit read as %d", n)
	}
}

// TestStampSurvivesH264: every picture openh264 makes of the scene at a
// starved bitrate still tells its frame number.
func TestStampSurvivesH264(t *testing.T) {
	for _, tt := range []struct{ w, h, fps, bitrate int }{{320, 240, 15, 60_000}, {160, 120, 10, 30_000}} {
		t.Run(fmt.Sprintf("%dx%d@%dk", tt.w, tt.h, tt.bitrate/1000), func(t *testing.T) {
			s := newScene(t, SceneOptions{Width: tt.w, Height: tt.h, FPS: tt.fps, Light: LowLight})
			n := 0
			src := video.ReaderFunc(func() (image.Image, func(), error) {
				n++
				return s.Frame(n - 1), func() {}, nil
			})
			p, err := h264enc.NewParams()
			if err != nil {
				t.Fatal(err)
			}
			p.BitRate = tt.bitrate
			enc, err := p.BuildVideoEncoder(src, prop.Media{Video: prop.Video{Width: tt.w, Height: tt.h, FrameRate: float32(tt.fps)}})
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			dec, err := h264dec.New()
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			decoded := 0
			for i := range 4 * tt.fps {
				au, release, err := enc.Read()
				if err != nil {
					t.Fatal(err)
				}
				if len(au) == 0 {
					release()
					continue // skipped by rate control
				}
				img, err := dec.Decode(au)
				release()
				if err != nil {
					t.Fatalf("decode frame %d: %v", i, err)
				}
				if img == nil {
					continue
				}
				decoded++
				if got, ok := ReadStamp(img); !ok || got != i {
					t.Fatalf("decoded frame %d: stamp read as %d, %v", i, got, ok)
				}
			}
			if decoded < 2*tt.fps {
				t.Errorf("only %d of %d frames decoded", decoded, 4*tt.fps)
			}
		})
	}
}

// processCPU is the CPU time this process has used: on a busy machine a
// fairer measure than wall-clock ns/op.
func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScene is what the synthetic camera costs per frame: core-%@15fps
// is the share of one core it takes at 15 fps, from CPU time (on the
// boards, a few times this machine's figure).
func BenchmarkScene(b *testing.B) {
	for _, size := range []image.Point{{320, 240}, {640, 480}} {
		for _, light := range []Light{Daylight, LowLight} {
			b.Run(fmt.Sprintf("%dx%d/%s", size.X, size.Y, light), func(b *testing.B) {
				s := newScene(b, SceneOptions{Width: size.X, Height: size.Y, FPS: 15, Light: light})
				n := 0
				b.ReportAllocs()
				cpu0 := processCPU(b)
				for b.Loop() {
					s.Frame(n)
					n++
				}
				b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N)*15/1e7, "core-%@15fps")
			})
		}
	}
}
