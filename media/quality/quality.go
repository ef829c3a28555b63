// Package quality measures how close a received picture is to the one that
// was sent: PSNR and SSIM of the luma (Y) plane, the two figures video
// codecs are compared by. Colour is left out on purpose: at a call's
// bitrates the encoder spends most bits on luma, and the eye judges detail
// there.
//
// The definitions are the usual ones, so figures compare with other tools':
// PSNR-Y = 10·log10(255² / MSE) (+Inf for identical planes), and SSIM after
// Wang et al. 2004 with K1 = 0.01, K2 = 0.03 over 8×8 windows every 4 pixels,
// uniformly weighted (as libvpx, x264 and ffmpeg compute it, rather than the
// paper's 11×11 Gaussian: the figures differ in the third decimal).
package quality

import (
	"errors"
	"fmt"
	"image"
	"math"
)

// ErrMismatch is returned for pictures of different sizes.
var ErrMismatch = errors.New("quality: pictures differ in size")

func check(ref, got *image.YCbCr) error {
	if ref == nil || got == nil {
		return fmt.Errorf("quality: nil picture: %w", ErrMismatch)
	}
	if ref.Rect.Dx() != got.Rect.Dx() || ref.Rect.Dy() != got.Rect.Dy() {
		return fmt.Errorf("quality: %v against %v: %w", ref.Rect.Size(), got.Rect.Size(), ErrMismatch)
	}
	if ref.Rect.Empty() {
		return fmt.Errorf("quality: empty picture: %w", ErrMismatch)
	}
	return nil
}

// yRow is row y (0-based within the picture) of img's luma.
func yRow(img *image.YCbCr, y int) []uint8 {
	off := img.YOffset(img.Rect.Min.X, img.Rect.Min.Y+y)
	return img.Y[off : off+img.Rect.Dx()]
}

// MSE is the mean squared difference of the luma planes.
func MSE(ref, got *image.YCbCr) (float64, error) {
	if err := check(ref, got); err != nil {
		return 0, err
	}
	var sum uint64
	for y := range ref.Rect.Dy() {
		a, b := yRow(ref, y), yRow(got, y)
		for x := range a {
			d := int(a[x]) - int(b[x])
			sum += uint64(d * d)
		}
	}
	return float64(sum) / float64(ref.Rect.Dx()*ref.Rect.Dy()), nil
}

// PSNRFromMSE is 10·log10(255²/mse) in dB; +Inf for 0.
func PSNRFromMSE(mse float64) float64 {
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}

// PSNR is the luma PSNR of got against ref in dB; +Inf if they are equal.
func PSNR(ref, got *image.YCbCr) (float64, error) {
	mse, err := MSE(ref, got)
	if err != nil {
		return 0, err
	}
	return PSNRFromMSE(mse), nil
}

const (
	ssimWindow = 8
	ssimStep   = 4
	c1         = (0.01 * 255) * (0.01 * 255)
	c2         = (0.03 * 255) * (0.03 * 255)
)

// SSIM is the luma structural similarity of got against ref: 1 for equal
// pictures, lower the more structure is lost (it can go below 0). A picture
// smaller than one window is compared as a single window.
func SSIM(ref, got *image.YCbCr) (float64, error) {
	if err := check(ref, got); err != nil {
		return 0, err
	}
	w, h := ref.Rect.Dx(), ref.Rect.Dy()
	if w < ssimWindow || h < ssimWindow {
		return ssimOf(sumsOver(ref, got, 0, 0, w, h), w*h), nil
	}
	// Sums over 4×4 blocks, each computed once; a window is 2×2 blocks
	// (ffmpeg's and libvpx's way: 4× less work than summing every window).
	bw, bh := w/ssimStep, h/ssimStep
	blocks := make([]sums, bw*bh)
	for by := range bh {
		for bx := range bw {
			blocks[by*bw+bx] = sumsOver(ref, got, bx*ssimStep, by*ssimStep, ssimStep, ssimStep)
		}
	}
	var total float64
	n := 0
	for by := 0; by+1 < bh; by++ {
		for bx := 0; bx+1 < bw; bx++ {
			s := blocks[by*bw+bx]
			s.add(blocks[by*bw+bx+1])
			s.add(blocks[(by+1)*bw+bx])
			s.add(blocks[(by+1)*bw+bx+1])
			total += ssimOf(s, ssimWindow*ssimWindow)
			n++
		}
	}
	return total / float64(n), nil
}

// sums are the first and second moments of a window of both pictures.
type sums struct{ a, b, aa, bb, ab int }

func (s *sums) add(o sums) {
	s.a += o.a
	s.b += o.b
	s.aa += o.aa
	s.bb += o.bb
	s.ab += o.ab
}

func sumsOver(ref, got *image.YCbCr, x0, y0, ww, wh int) sums {
	var s sums
	for y := y0; y < y0+wh; y++ {
		a, b := yRow(ref, y)[x0:x0+ww], yRow(got, y)[x0:x0+ww]
		for x := range a {
			va, vb := int(a[x]), int(b[x])
			s.a += va
			s.b += vb
			s.aa += va * va
			s.bb += vb * vb
			s.ab += va * vb
		}
	}
	return s
}

// ssimOf is one window's SSIM from its sums over n pixels.
func ssimOf(s sums, n int) float64 {
	fn := float64(n)
	ma, mb := float64(s.a)/fn, float64(s.b)/fn
	// Population (co)variances, as the reference implementations use.
	va := float64(s.aa)/fn - ma*ma
	vb := float64(s.bb)/fn - mb*mb
	cov := float64(s.ab)/fn - ma*mb
	return (2*ma*mb + c1) * (2*cov + c2) / ((ma*ma + mb*mb + c1) * (va + vb + c2))
}

// Meter accumulates PSNR and SSIM over many frames of a stream.
type Meter struct {
	frames  int
	sumMSE  float64
	sumSSIM float64
	minPSNR float64
}

// Add compares one received picture with the one sent.
func (m *Meter) Add(ref, got *image.YCbCr) error {
	mse, err := MSE(ref, got)
	if err != nil {
		return err
	}
	ssim, err := SSIM(ref, got)
	if err != nil {
		return err
	}
	p := PSNRFromMSE(mse)
	if m.frames == 0 || p < m.minPSNR {
		m.minPSNR = p
	}
	m.frames++
	m.sumMSE += mse
	m.sumSSIM += ssim
	return nil
}

// Frames is how many pictures were compared.
func (m *Meter) Frames() int { return m.frames }

// PSNR is the stream's PSNR-Y from its mean squared error over all frames
// (as ffmpeg's "average"): a few bad frames weigh in as the eye sees them,
// and identical frames do not make it infinite. NaN before any frame.
func (m *Meter) PSNR() float64 {
	if m.frames == 0 {
		return math.NaN()
	}
	return PSNRFromMSE(m.sumMSE / float64(m.frames))
}

// MinPSNR is the worst frame's PSNR-Y. NaN before any frame.
func (m *Meter) MinPSNR() float64 {
	if m.frames == 0 {
		return math.NaN()
	}
	return m.minPSNR
}

// SSIM is the mean of the frames' SSIM. NaN before any frame.
func (m *Meter) SSIM() float64 {
	if m.frames == 0 {
		return math.NaN()
	}
	return m.sumSSIM / float64(m.frames)
}
