package fb

import (
	"errors"
	"image"
	"image/color"
	"math/rand/v2"
	"testing"
)

// rgbToYCbCr is the BT.601 matrix in either range: the inverse of what
// Canvas applies, written from the definition rather than from its tables.
func rgbToYCbCr(r Range, c [3]uint8) (y, cb, cr uint8) {
	if r == FullRange {
		return color.RGBToYCbCr(c[0], c[1], c[2])
	}
	R, G, B := float64(c[0]), float64(c[1]), float64(c[2])
	yy := 16 + 219*(0.299*R+0.587*G+0.114*B)/255
	u := 128 + 224*(-0.168736*R-0.331264*G+0.5*B)/255
	v := 128 + 224*(0.5*R-0.418688*G-0.081312*B)/255
	return uint8(yy + 0.5), uint8(u + 0.5), uint8(v + 0.5)
}

// quadrantColours are the test picture's: red, green / blue, white.
var quadrantColours = [4][3]uint8{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}}

// Quadrants returns a w×h YCbCr picture of four flat quadrants.
func quadrants(w, h int, ratio image.YCbCrSubsampleRatio, r Range) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), ratio)
	for y := range h {
		for x := range w {
			q := quadrantColours[2*(2*y/h)+2*x/w]
			Y, cb, cr := rgbToYCbCr(r, q)
			img.Y[img.YOffset(x, y)] = Y
			img.Cb[img.COffset(x, y)] = cb
			img.Cr[img.COffset(x, y)] = cr
		}
	}
	return img
}

func newTestCanvas(t testing.TB, size image.Point, f Format, r Range) (*Canvas, []byte, int) {
	t.Helper()
	// A stride with padding, as drivers that align rows have.
	stride := size.X*f.BytesPerPixel() + 32
	pix := make([]byte, stride*size.Y)
	c, err := NewCanvas(pix, stride, size, f, r)
	if err != nil {
		t.Fatal(err)
	}
	return c, pix, stride
}

// The picture lands where Fit says, each quadrant in its colour in every
// format, and everything outside it is exactly black, including what a
// previous picture of another shape left there.
func TestCanvasQuadrants(t *testing.T) {
	screens := []image.Point{{480, 320}, {800, 480}, {240, 320}, {320, 240}}
	for _, n := range named {
		for _, screen := range screens {
			t.Run(n.name+"/"+image.Rectangle{Max: screen}.Size().String(), func(t *testing.T) {
				c, pix, stride := newTestCanvas(t, screen, n.f, VideoRange)
				white := image.NewRGBA(image.Rect(0, 0, 64, 16))
				for i := range white.Pix {
					white.Pix[i] = 0xff
				}
				if err := c.Draw(white); err != nil {
					t.Fatal(err)
				}
				src := quadrants(320, 240, image.YCbCrSubsampleRatio420, VideoRange)
				if err := c.Draw(src); err != nil {
					t.Fatal(err)
				}
				place := Fit(src.Rect.Size(), screen)
				if got := c.Placement(); got != place {
					t.Fatalf("Placement() = %v, want %v", got, place)
				}
				checkQuadrants(t, n.f, pix, stride, screen, place, n.f)
			})
		}
	}
}

// checkQuadrants asserts the quadrant colours at the centre of each
// quadrant of place (within one step of the format's coarsest field, plus
// chroma rounding), and black everywhere outside place.
func checkQuadrants(t *testing.T, f Format, pix []byte, stride int, screen image.Point, place image.Rectangle, _ Format) {
	t.Helper()
	bpp := f.BytesPerPixel()
	tol := 256>>min(f.Red.Length, f.Green.Length, f.Blue.Length) + 3
	for q, want := range quadrantColours {
		x := place.Min.X + place.Dx()*(1+2*(q%2))/4
		y := place.Min.Y + place.Dy()*(1+2*(q/2))/4
		r, g, b := f.Pixel(pix, y*stride+x*bpp)
		got := [3]uint8{r, g, b}
		for i := range got {
			if absDiff(got[i], want[i]) > tol {
				t.Errorf("quadrant %d at (%d,%d) is %v, want %v ±%d", q, x, y, got, want, tol)
				break
			}
		}
	}
	for y := range screen.Y {
		for x := range screen.X {
			if image.Pt(x, y).In(place) {
				continue
			}
			if r, g, b := f.Pixel(pix, y*stride+x*bpp); r|g|b != 0 {
				t.Fatalf("bar pixel (%d,%d) outside %v is %d,%d,%d, want black", x, y, place, r, g, b)
			}
		}
	}
}

// At the picture's own size Canvas shows what image/color says each pixel
// is: every subsampling ratio, and a sub-image whose odd origin shifts the
// chroma grid (what COffset gets right and naive indexing does not).
func TestCanvasMatchesAt(t *testing.T) {
	ratios := []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ratio := range ratios {
		whole := image.NewYCbCr(image.Rect(0, 0, 67, 45), ratio)
		for _, p := range [][]byte{whole.Y, whole.Cb, whole.Cr} {
			for i := range p {
				p[i] = uint8(rng.IntN(256))
			}
		}
		for _, img := range []*image.YCbCr{whole, whole.SubImage(image.Rect(3, 5, 60, 43)).(*image.YCbCr)} {
			t.Run(ratio.String()+"/"+img.Rect.String(), func(t *testing.T) {
				size := img.Rect.Size()
				c, pix, stride := newTestCanvas(t, size, ABGR8888, FullRange)
				if err := c.Draw(img); err != nil {
					t.Fatal(err)
				}
				for y := range size.Y {
					for x := range size.X {
						want := color.RGBAModel.Convert(img.At(img.Rect.Min.X+x, img.Rect.Min.Y+y)).(color.RGBA)
						r, g, b := ABGR8888.Pixel(pix, y*stride+x*4)
						if absDiff(r, want.R) > 1 || absDiff(g, want.G) > 1 || absDiff(b, want.B) > 1 {
							t.Fatalf("pixel (%d,%d) = %d,%d,%d; At says %v", x, y, r, g, b, want)
						}
					}
				}
			})
		}
	}
}

// opaque hides an image's concrete type, forcing the generic At path.
type opaque struct{ image.Image }

// The RGBA fast path and the generic path sample the same pixels.
func TestCanvasRGBAFastPathMatchesGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := image.NewRGBA(image.Rect(10, 20, 10+123, 20+77))
	for i := range src.Pix {
		src.Pix[i] = uint8(rng.IntN(256))
	}
	for i := 3; i < len(src.Pix); i += 4 {
		src.Pix[i] = 255 // opaque, so premultiplied values are valid
	}
	for _, f := range []Format{RGB565, RGB888, XRGB8888} {
		fast, fastPix, _ := newTestCanvas(t, image.Pt(480, 320), f, VideoRange)
		slow, slowPix, _ := newTestCanvas(t, image.Pt(480, 320), f, VideoRange)
		if err := fast.Draw(src); err != nil {
			t.Fatal(err)
		}
		if err := slow.Draw(opaque{src}); err != nil {
			t.Fatal(err)
		}
		for i := range fastPix {
			if fastPix[i] != slowPix[i] {
				t.Fatalf("%v: byte %d differs: RGBA path %#x, At path %#x", f, i, fastPix[i], slowPix[i])
			}
		}
	}
}

// Video frames after the first allocate nothing.
func TestCanvasDrawAllocatesNothing(t *testing.T) {
	c, _, _ := newTestCanvas(t, image.Pt(480, 320), RGB565, VideoRange)
	frames := []*image.YCbCr{
		quadrants(320, 240, image.YCbCrSubsampleRatio420, VideoRange),
		quadrants(320, 240, image.YCbCrSubsampleRatio420, VideoRange),
	}
	i := 0
	allocs := testing.AllocsPerRun(20, func() {
		if err := c.Draw(frames[i%2]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("Draw allocates %.1f times per frame, want 0", allocs)
	}
}

func TestCanvasFill(t *testing.T) {
	tests := []struct {
		name string
		c    color.Color
		want [3]uint8
	}{
		{"opaque orange", color.RGBA{255, 128, 0, 255}, [3]uint8{255, 128, 0}},
		{"half-transparent white is grey over black", color.NRGBA{255, 255, 255, 128}, [3]uint8{128, 128, 128}},
		{"transparent is black", color.Transparent, [3]uint8{0, 0, 0}},
	}
	for _, tt := range tests {
		c, pix, stride := newTestCanvas(t, image.Pt(31, 7), XRGB8888, VideoRange)
		c.Fill(tt.c)
		for y := range 7 {
			for x := range 31 {
				if r, g, b := XRGB8888.Pixel(pix, y*stride+x*4); [3]uint8{r, g, b} != tt.want {
					t.Fatalf("%s: pixel (%d,%d) = %d,%d,%d, want %v", tt.name, x, y, r, g, b, tt.want)
				}
			}
		}
		if !c.Placement().Empty() {
			t.Errorf("%s: Placement after Fill = %v, want empty", tt.name, c.Placement())
		}
	}
}

func TestCanvasBadInput(t *testing.T) {
	c, _, _ := newTestCanvas(t, image.Pt(48, 32), RGB565, VideoRange)
	for name, img := range map[string]image.Image{
		"nil":       nil,
		"typed nil": (*image.YCbCr)(nil),
		"empty":     image.NewYCbCr(image.Rect(0, 0, 0, 10), image.YCbCrSubsampleRatio420),
	} {
		if err := c.Draw(img); !errors.Is(err, ErrBadImage) {
			t.Errorf("Draw(%s) = %v, want ErrBadImage", name, err)
		}
	}
	tests := []struct {
		name   string
		pix    int
		stride int
		size   image.Point
		f      Format
		r      Range
	}{
		{"8 bpp", 100, 10, image.Pt(10, 10), Format{BitsPerPixel: 8}, VideoRange},
		{"zero size", 100, 10, image.Pt(0, 10), RGB565, VideoRange},
		{"stride too small", 1000, 10, image.Pt(10, 10), RGB565, VideoRange},
		{"buffer too small", 199, 20, image.Pt(10, 10), RGB565, VideoRange},
		{"unknown range", 200, 20, image.Pt(10, 10), RGB565, Range(7)},
	}
	for _, tt := range tests {
		if _, err := NewCanvas(make([]byte, tt.pix), tt.stride, tt.size, tt.f, tt.r); err == nil {
			t.Errorf("NewCanvas(%s) succeeded", tt.name)
		}
	}
}

// The video path, whichever of its shortcuts it takes (repeated rows,
// converted-once lines when upscaling, direct sampling when downscaling),
// writes exactly what converting each output pixel's nearest source pixel
// on its own gives.
func TestCanvasVideoMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	whole := image.NewYCbCr(image.Rect(0, 0, 322, 242), image.YCbCrSubsampleRatio420)
	for _, p := range [][]byte{whole.Y, whole.Cb, whole.Cr} {
		for i := range p {
			p[i] = uint8(rng.IntN(256))
		}
	}
	src := whole.SubImage(image.Rect(1, 1, 321, 241)).(*image.YCbCr)
	for _, screen := range []image.Point{{480, 320}, {800, 480}, {320, 240}, {160, 120}, {300, 100}, {101, 333}} {
		for _, f := range []Format{RGB565, BGR888, XRGB8888} {
			t.Run(f.String()+"/"+screen.String(), func(t *testing.T) {
				c, pix, stride := newTestCanvas(t, screen, f, VideoRange)
				if err := c.Draw(src); err != nil {
					t.Fatal(err)
				}
				place := Fit(src.Rect.Size(), screen)
				xs, ys := make([]int32, place.Dx()), make([]int32, place.Dy())
				samplePositions(xs, src.Rect.Dx(), len(xs))
				samplePositions(ys, src.Rect.Dy(), len(ys))
				pk, bpp, want := newPacker(f), f.BytesPerPixel(), make([]byte, 4)
				for j, sy := range ys {
					for i, sx := range xs {
						x, y := src.Rect.Min.X+int(sx), src.Rect.Min.Y+int(sy)
						r, g, b := yuvTablesFor[VideoRange].rgb(src.Y[src.YOffset(x, y)], src.Cb[src.COffset(x, y)], src.Cr[src.COffset(x, y)])
						put(want, bpp, pk.pack(r, g, b))
						o := (place.Min.Y+j)*stride + (place.Min.X+i)*bpp
						if got := pix[o : o+bpp]; string(got) != string(want[:bpp]) {
							t.Fatalf("output pixel (%d,%d) from source (%d,%d) = % x, want % x",
								place.Min.X+i, place.Min.Y+j, x, y, got, want[:bpp])
						}
					}
				}
			})
		}
	}
}
