package quality

import (
	"errors"
	"image"
	"math"
	"math/rand/v2"
	"testing"
)

// picture is a w×h I420 picture with luma f(x, y).
func picture(w, h int, f func(x, y int) uint8) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := range h {
		for x := range w {
			img.Y[y*img.YStride+x] = f(x, y)
		}
	}
	return img
}

func flat(v uint8) func(x, y int) uint8 { return func(int, int) uint8 { return v } }

// texture is a picture with detail at every scale, kept within 40..215 so
// added noise never clips.
func texture(x, y int) uint8 {
	return uint8(128 + 40*math.Sin(float64(x)/3) + 30*math.Cos(float64(y)/7) + 17*math.Sin(float64(x*y)/50))
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestPSNRAndSSIM(t *testing.T) {
	const w, h = 64, 48
	rng := rand.New(rand.NewPCG(1, 2))
	gauss := func(sigma float64) func(x, y int) uint8 {
		return func(x, y int) uint8 {
			return uint8(math.Round(float64(texture(x, y)) + sigma*rng.NormFloat64()))
		}
	}
	tests := []struct {
		name       string
		ref, got   func(x, y int) uint8
		psnr, ptol float64
		ssim, stol float64
		infiniteDB bool
		ssimAtMost float64 // when set, SSIM must be below it instead
	}{
		{name: "identical", ref: texture, got: texture, infiniteDB: true, ssim: 1, stol: 0},
		{
			// ±3 everywhere: MSE 9, PSNR 10·log10(255²/9).
			name: "±3 checkerboard", ref: flat(128),
			got: func(x, y int) uint8 {
				if (x+y)%2 == 0 {
					return 131
				}
				return 125
			},
			// The flat reference has no variance, the noise 9: SSIM is the
			// contrast term alone, C2 / (9 + C2).
			psnr: 10 * math.Log10(255*255/9.0), ptol: 1e-9,
			ssim: c2 / (9 + c2), stol: 1e-12,
		},
		{
			// A flat offset has no structure to lose: SSIM is the luminance
			// term alone, (2·100·110 + C1) / (100² + 110² + C1).
			name: "flat offset", ref: flat(100), got: flat(110),
			psnr: 10 * math.Log10(255*255/100.0), ptol: 1e-9,
			ssim: (2*100*110 + c1) / (100*100 + 110*110 + c1), stol: 1e-12,
		},
		{
			// Same means and variances, opposite structure: the structure
			// term is −1, so SSIM = (−2σ² + C2) / (2σ² + C2) with σ² = 625.
			name: "inverted checkerboard",
			ref: func(x, y int) uint8 {
				if (x+y)%2 == 0 {
					return 100
				}
				return 150
			},
			got: func(x, y int) uint8 {
				if (x+y)%2 == 0 {
					return 150
				}
				return 100
			},
			psnr: 10 * math.Log10(255*255/2500.0), ptol: 1e-9,
			ssim: (-2*625 + c2) / (2*625 + c2), stol: 1e-12,
		},
		{
			// Gaussian noise of σ 5: PSNR ≈ 20·log10(255/5) = 34.15 dB.
			name: "gaussian σ5", ref: texture, got: gauss(5),
			psnr: 20 * math.Log10(255/5.0), ptol: 0.3, ssimAtMost: 0.99,
		},
		{
			name: "gaussian σ2", ref: texture, got: gauss(2),
			psnr: 20 * math.Log10(255/2.0), ptol: 0.3, ssimAtMost: 0.999,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, got := picture(w, h, tt.ref), picture(w, h, tt.got)
			p, err := PSNR(ref, got)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.infiniteDB && !math.IsInf(p, 1):
				t.Errorf("PSNR = %v, want +Inf", p)
			case !tt.infiniteDB && !near(p, tt.psnr, tt.ptol):
				t.Errorf("PSNR = %.4f dB, want %.4f ± %g", p, tt.psnr, tt.ptol)
			}
			s, err := SSIM(ref, got)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.ssimAtMost != 0 && (s >= tt.ssimAtMost || s <= 0):
				t.Errorf("SSIM = %.5f, want in (0, %g)", s, tt.ssimAtMost)
			case tt.ssimAtMost == 0 && !near(s, tt.ssim, tt.stol):
				t.Errorf("SSIM = %.12f, want %.12f", s, tt.ssim)
			}
		})
	}
}

// TestSSIMOrdersNoise: more noise, lower SSIM: the metric ranks damage.
func TestSSIMOrdersNoise(t *testing.T) {
	ref := picture(64, 48, texture)
	prev := 1.0
	for _, sigma := range []float64{1, 3, 8, 20} {
		rng := rand.New(rand.NewPCG(3, 4))
		got := picture(64, 48, func(x, y int) uint8 {
			return uint8(min(255, max(0, math.Round(float64(texture(x, y))+sigma*rng.NormFloat64()))))
		})
		s, err := SSIM(ref, got)
		if err != nil {
			t.Fatal(err)
		}
		if s >= prev {
			t.Errorf("σ %g: SSIM %.4f not below the previous %.4f", sigma, s, prev)
		}
		prev = s
	}
}

// TestSubImage: a picture cut out of a larger one (non-zero origin, wider
// stride) compares by its own pixels.
func TestSubImage(t *testing.T) {
	big := picture(96, 64, texture)
	sub := big.SubImage(image.Rect(16, 8, 80, 56)).(*image.YCbCr)
	own := picture(64, 48, func(x, y int) uint8 { return texture(x+16, y+8) })
	if p, err := PSNR(own, sub); err != nil || !math.IsInf(p, 1) {
		t.Errorf("PSNR of a sub-image against its copy = %v, %v; want +Inf", p, err)
	}
	if s, err := SSIM(own, sub); err != nil || s != 1 {
		t.Errorf("SSIM of a sub-image against its copy = %v, %v; want 1", s, err)
	}
}

func TestMismatch(t *testing.T) {
	a, b := picture(64, 48, texture), picture(64, 50, texture)
	if _, err := PSNR(a, b); !errors.Is(err, ErrMismatch) {
		t.Errorf("PSNR of different sizes: %v, want ErrMismatch", err)
	}
	if _, err := SSIM(a, nil); !errors.Is(err, ErrMismatch) {
		t.Errorf("SSIM against nil: %v, want ErrMismatch", err)
	}
	var m Meter
	if err := m.Add(a, b); !errors.Is(err, ErrMismatch) || m.Frames() != 0 {
		t.Errorf("Meter.Add of different sizes: %v, %d frames; want ErrMismatch and none counted", err, m.Frames())
	}
	if !math.IsNaN(m.PSNR()) || !math.IsNaN(m.SSIM()) || !math.IsNaN(m.MinPSNR()) {
		t.Error("an empty Meter reports figures")
	}
	tiny := picture(4, 4, texture) // smaller than a window: one window
	if s, err := SSIM(tiny, tiny); err != nil || s != 1 {
		t.Errorf("SSIM of a 4×4 picture with itself = %v, %v; want 1", s, err)
	}
}

// TestMeter: the stream's PSNR comes from the mean MSE, its SSIM is the
// mean of the frames'.
func TestMeter(t *testing.T) {
	ref := picture(32, 32, flat(128))
	noisy := picture(32, 32, func(x, y int) uint8 {
		if (x+y)%2 == 0 {
			return 131
		}
		return 125
	})
	var m Meter
	for _, got := range []*image.YCbCr{ref, noisy} {
		if err := m.Add(ref, got); err != nil {
			t.Fatal(err)
		}
	}
	ssimNoisy, _ := SSIM(ref, noisy)
	if m.Frames() != 2 || !near(m.PSNR(), 10*math.Log10(255*255/4.5), 1e-9) ||
		!near(m.MinPSNR(), 10*math.Log10(255*255/9.0), 1e-9) || !near(m.SSIM(), (1+ssimNoisy)/2, 1e-12) {
		t.Errorf("Meter: %d frames, PSNR %.4f (min %.4f), SSIM %.4f", m.Frames(), m.PSNR(), m.MinPSNR(), m.SSIM())
	}
}

func BenchmarkSSIM(b *testing.B) {
	ref := picture(320, 240, texture)
	got := picture(320, 240, func(x, y int) uint8 { return texture(x, y) + uint8((x^y)&3) })
	for b.Loop() {
		if _, err := SSIM(ref, got); err != nil {
			b.Fatal(err)
		}
	}
}
