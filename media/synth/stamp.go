package synth

import "image"

// The frame stamp: the frame number drawn in the top-left corner as big
// black and white cells, so a receiver can tell which sent frame a decoded
// picture is, whatever frames the encoder skipped or the network lost, and
// without trusting RTP timestamps (the sender's clock, not its frame count).
//
// 24 bits (a 20-bit frame number in Gray code, so consecutive frames differ
// in one bit and the stamp costs the encoder almost nothing, and a 4-bit
// check) are each drawn as two cells, bright-dark for 1 and dark-bright for
// 0. A reader compares the two cells of a bit rather than one cell against
// a threshold, so exposure, compression and deblocking do not matter; a bit
// whose cells differ too little is unreadable, and the check catches what a
// damaged picture could still get wrong. Cells are 8×8 pixels on the 8-pixel
// grid, aligned with H.264's transform blocks, which at any bitrate keep
// their mean: 16 cells by 3 rows, 128×24 pixels.
const (
	stampCell  = 8
	stampCols  = 16
	stampRows  = 3
	stampBits  = stampCols * stampRows / 2
	stampFrame = 20 // bits of frame number
	stampMod   = 1 << stampFrame
	stampHigh  = 235
	stampLow   = 16
	// stampMargin is the least mean difference between a bit's two cells
	// that ReadStamp trusts: a quarter of the drawn contrast.
	stampMargin = (stampHigh - stampLow) / 4
)

// StampWidth and StampHeight are the stamp's size in pixels; a picture
// smaller than that carries none.
const (
	StampWidth  = stampCols * stampCell
	StampHeight = stampRows * stampCell
)

func stampCheck(g uint32) uint32 {
	return (g ^ g>>4 ^ g>>8 ^ g>>12 ^ g>>16 ^ 0b1010) & 0xf
}

// drawStamp draws frame n's stamp, if img is large enough.
func drawStamp(img *image.YCbCr, n int) {
	if img.Rect.Dx() < StampWidth || img.Rect.Dy() < StampHeight {
		return
	}
	u := uint32(n) % stampMod
	g := u ^ u>>1
	word := g | stampCheck(g)<<stampFrame
	for b := range stampBits {
		hi, lo := uint8(stampHigh), uint8(stampLow)
		if word>>b&1 == 0 {
			hi, lo = lo, hi
		}
		cellFill(img, 2*b, hi)
		cellFill(img, 2*b+1, lo)
	}
}

// cellOrigin is cell i's top-left pixel.
func cellOrigin(img *image.YCbCr, i int) (x, y int) {
	return img.Rect.Min.X + (i%stampCols)*stampCell, img.Rect.Min.Y + (i/stampCols)*stampCell
}

func cellFill(img *image.YCbCr, i int, v uint8) {
	x0, y0 := cellOrigin(img, i)
	for y := y0; y < y0+stampCell; y++ {
		row := img.Y[img.YOffset(x0, y):]
		for x := range stampCell {
			row[x] = v
		}
	}
	for y := y0; y < y0+stampCell; y += 2 {
		for x := x0; x < x0+stampCell; x += 2 {
			ci := img.COffset(x, y)
			img.Cb[ci], img.Cr[ci] = 128, 128
		}
	}
}

// cellMean is the mean luma of cell i's centre (4×4 of its 8×8 pixels: the
// edges are where compression and deblocking blur).
func cellMean(img *image.YCbCr, i int) int {
	x0, y0 := cellOrigin(img, i)
	sum := 0
	for y := y0 + 2; y < y0+stampCell-2; y++ {
		for x := x0 + 2; x < x0+stampCell-2; x++ {
			sum += int(img.Y[img.YOffset(x, y)])
		}
	}
	return sum / 16
}

// ReadStamp returns the frame number stamped in a Scene's picture (sent, or
// decoded at the other end of a call), modulo 2²⁰ (19 hours at 15 fps), and
// false if the picture carries no readable stamp.
func ReadStamp(img *image.YCbCr) (int, bool) {
	if img == nil || img.Rect.Dx() < StampWidth || img.Rect.Dy() < StampHeight {
		return 0, false
	}
	var word uint32
	for b := range stampBits {
		d := cellMean(img, 2*b) - cellMean(img, 2*b+1)
		switch {
		case d >= stampMargin:
			word |= 1 << b
		case d <= -stampMargin:
		default:
			return 0, false
		}
	}
	g := word & (stampMod - 1)
	if word>>stampFrame != stampCheck(g) {
		return 0, false
	}
	// Gray code back to binary.
	u := g
	for shift := uint32(1); shift < stampFrame; shift <<= 1 {
		u ^= u >> shift
	}
	return int(u), true
}
