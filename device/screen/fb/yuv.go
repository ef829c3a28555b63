package fb

// Range is how YCbCr values map to RGB.
type Range int

const (
	// VideoRange is ITU-R BT.601 with Y in 16..235 and Cb/Cr in 16..240:
	// what cameras, browsers and H.264 encoders produce. The default.
	VideoRange Range = iota
	// FullRange is JPEG/JFIF's 0..255 (image/color's YCbCrToRGB): for
	// pictures made with color.RGBToYCbCr.
	FullRange
)

func (r Range) String() string {
	if r == FullRange {
		return "full"
	}
	return "video"
}

// yuvTables turns the YCbCr → RGB matrix into five table look-ups and
// three additions per pixel. Entries are in 16.16 fixed point; yTab has the
// rounding half added.
type yuvTables struct {
	y, rCr, gCb, gCr, bCb [256]int32
}

// fix converts a coefficient to 16.16 fixed point.
func fix(f float64) int32 {
	if f < 0 {
		return int32(f*65536 - 0.5)
	}
	return int32(f*65536 + 0.5)
}

func newYUVTables(r Range) *yuvTables {
	// BT.601: R = Y + 1.402 Cr', G = Y - 0.344136 Cb' - 0.714136 Cr',
	// B = Y + 1.772 Cb' (full range); video range stretches Y by 255/219 and
	// the chroma by 255/224.
	ys, yoff, cs := 1.0, 0, 1.0
	if r == VideoRange {
		ys, yoff, cs = 255.0/219, 16, 255.0/224
	}
	t := new(yuvTables)
	for i := range 256 {
		c := float64(i - 128)
		t.y[i] = fix(ys*float64(i-yoff)) + 1<<15
		t.rCr[i] = fix(1.402 * cs * c)
		t.gCb[i] = fix(-0.344136 * cs * c)
		t.gCr[i] = fix(-0.714136 * cs * c)
		t.bCb[i] = fix(1.772 * cs * c)
	}
	return t
}

var yuvTablesFor = [...]*yuvTables{VideoRange: newYUVTables(VideoRange), FullRange: newYUVTables(FullRange)}

// clampTab saturates the integer part of a 16.16 component to 0..255: index
// (v>>16 + clampBias) & clampMask. The sums above stay within -300..600, so
// the mask never wraps a real value, and it lets the compiler drop the
// bounds check. A table beats two compares per component in the pixel loop.
var clampTab = func() (t [1024]uint8) {
	for i := range t {
		t[i] = uint8(min(max(i-clampBias, 0), 255))
	}
	return t
}()

const (
	clampBias = 384
	clampMask = 1023
)

// clamp8 takes a 16.16 value to 0..255.
func clamp8(v int32) uint8 { return clampTab[(v>>16+clampBias)&clampMask] }

// rgb converts one YCbCr sample.
func (t *yuvTables) rgb(y, cb, cr uint8) (r, g, b uint8) {
	yy := t.y[y]
	return clamp8(yy + t.rCr[cr]), clamp8(yy + t.gCb[cb] + t.gCr[cr]), clamp8(yy + t.bCb[cb])
}

// packTables fold clamping and packing into one look-up per component: a
// pixel of the canvas's format is r[i] | g[j] | b[k] (alpha, if any, is in
// r), with the indices taken from 16.16 sums as clamp8 does.
type packTables struct {
	r, g, b [clampMask + 1]uint32
}

func newPackTables(pk packer) *packTables {
	t := new(packTables)
	for i := range t.r {
		v := clampTab[i]
		t.r[i] = pk.pack(v, 0, 0)
		t.g[i] = pk.pack(0, v, 0) &^ pk.alpha
		t.b[i] = pk.pack(0, 0, v) &^ pk.alpha
	}
	return t
}

// rgb converts one YCbCr sample to a packed pixel. It is small enough to be
// inlined into the pixel loops.
func (p *packTables) rgb(t *yuvTables, y, cb, cr uint8) uint32 {
	yy := t.y[y]
	return p.r[((yy+t.rCr[cr])>>16+clampBias)&clampMask] |
		p.g[((yy+t.gCb[cb]+t.gCr[cr])>>16+clampBias)&clampMask] |
		p.b[((yy+t.bCb[cb])>>16+clampBias)&clampMask]
}
