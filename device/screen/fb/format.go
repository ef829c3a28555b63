package fb

import (
	"fmt"
)

// Bitfield is where one colour component sits in a pixel: Length bits
// starting at bit Offset of the pixel value (the kernel's struct
// fb_bitfield, without msb_right, which no driver Canvas supports sets).
type Bitfield struct {
	Offset, Length uint32
}

// Format is a packed true-colour pixel layout: BitsPerPixel bits per pixel,
// stored in memory as a little-endian integer (the byte order of every board
// the terminal runs on), with each component at its Bitfield. A zero Transp
// means there is no alpha; if there is one, Canvas writes it fully opaque.
type Format struct {
	BitsPerPixel     int
	Red, Green, Blue Bitfield
	Transp           Bitfield
}

// The layouts small LCDs and fbdev emulation use. They are examples, not a
// closed list: Canvas packs from the bitfields of whatever the driver
// reports.
var (
	// RGB565 is what SPI panels (ILI9341, ST7789, ...) under fbtft or
	// tinydrm use.
	RGB565 = Format{BitsPerPixel: 16, Red: Bitfield{11, 5}, Green: Bitfield{5, 6}, Blue: Bitfield{0, 5}}
	// BGR565 is RGB565 with red and blue swapped: vfb's 16 bpp mode, and
	// panels wired BGR.
	BGR565 = Format{BitsPerPixel: 16, Red: Bitfield{0, 5}, Green: Bitfield{5, 6}, Blue: Bitfield{11, 5}}
	// RGB888 is 24 bpp packed, blue in the first byte.
	RGB888 = Format{BitsPerPixel: 24, Red: Bitfield{16, 8}, Green: Bitfield{8, 8}, Blue: Bitfield{0, 8}}
	// BGR888 is 24 bpp packed, red in the first byte (vfb's 24 bpp mode).
	BGR888 = Format{BitsPerPixel: 24, Red: Bitfield{0, 8}, Green: Bitfield{8, 8}, Blue: Bitfield{16, 8}}
	// XRGB8888 is DRM fbdev emulation's format: bytes B, G, R, unused.
	XRGB8888 = Format{BitsPerPixel: 32, Red: Bitfield{16, 8}, Green: Bitfield{8, 8}, Blue: Bitfield{0, 8}}
	// ARGB8888 is XRGB8888 with the fourth byte an alpha channel.
	ARGB8888 = Format{BitsPerPixel: 32, Red: Bitfield{16, 8}, Green: Bitfield{8, 8}, Blue: Bitfield{0, 8}, Transp: Bitfield{24, 8}}
	// ABGR8888 is bytes R, G, B, A: image.RGBA's layout, and vfb's 32 bpp
	// mode.
	ABGR8888 = Format{BitsPerPixel: 32, Red: Bitfield{0, 8}, Green: Bitfield{8, 8}, Blue: Bitfield{16, 8}, Transp: Bitfield{24, 8}}
)

var named = []struct {
	name string
	f    Format
}{
	{"RGB565", RGB565}, {"BGR565", BGR565}, {"RGB888", RGB888}, {"BGR888", BGR888},
	{"XRGB8888", XRGB8888}, {"ARGB8888", ARGB8888}, {"ABGR8888", ABGR8888},
}

// String names well-known layouts and spells out the others, e.g.
// "32bpp r16:8 g8:8 b0:8 a0:0".
func (f Format) String() string {
	for _, n := range named {
		if n.f == f {
			return n.name
		}
	}
	return fmt.Sprintf("%dbpp r%d:%d g%d:%d b%d:%d a%d:%d", f.BitsPerPixel,
		f.Red.Offset, f.Red.Length, f.Green.Offset, f.Green.Length,
		f.Blue.Offset, f.Blue.Length, f.Transp.Offset, f.Transp.Length)
}

// BytesPerPixel is BitsPerPixel / 8.
func (f Format) BytesPerPixel() int { return f.BitsPerPixel / 8 }

// Validate reports whether Canvas can write f: 16, 24 or 32 bits per pixel,
// red, green and blue each 1 to 8 bits wide, and every field inside the
// pixel without overlapping another.
func (f Format) Validate() error {
	switch f.BitsPerPixel {
	case 16, 24, 32:
	default:
		return fmt.Errorf("%w: %d bits per pixel (want 16, 24 or 32)", ErrUnsupportedFormat, f.BitsPerPixel)
	}
	var used uint64
	for _, c := range []struct {
		name string
		b    Bitfield
	}{{"red", f.Red}, {"green", f.Green}, {"blue", f.Blue}, {"alpha", f.Transp}} {
		if c.name == "alpha" && c.b.Length == 0 {
			continue
		}
		if c.b.Length == 0 || c.b.Length > 8 {
			return fmt.Errorf("%w: %s is %d bits wide (want 1..8) in %v", ErrUnsupportedFormat, c.name, c.b.Length, f)
		}
		if c.b.Offset+c.b.Length > uint32(f.BitsPerPixel) {
			return fmt.Errorf("%w: %s at bits %d..%d is outside a %d-bit pixel", ErrUnsupportedFormat,
				c.name, c.b.Offset, c.b.Offset+c.b.Length-1, f.BitsPerPixel)
		}
		mask := (uint64(1)<<c.b.Length - 1) << c.b.Offset
		if used&mask != 0 {
			return fmt.Errorf("%w: %s overlaps another field in %v", ErrUnsupportedFormat, c.name, f)
		}
		used |= mask
	}
	return nil
}

// packer turns 8-bit components into a pixel value of one Format. Each
// component keeps its top Length bits, which is what truncating 8-bit
// colour to a 5- or 6-bit field means on every panel.
type packer struct {
	rShift, gShift, bShift uint32 // 8 - Length
	rOff, gOff, bOff       uint32
	alpha                  uint32 // all alpha bits set: opaque
	bpp                    int    // bytes per pixel
}

func newPacker(f Format) packer {
	p := packer{
		rShift: 8 - f.Red.Length, gShift: 8 - f.Green.Length, bShift: 8 - f.Blue.Length,
		rOff: f.Red.Offset, gOff: f.Green.Offset, bOff: f.Blue.Offset,
		bpp: f.BytesPerPixel(),
	}
	if f.Transp.Length > 0 {
		p.alpha = (1<<f.Transp.Length - 1) << f.Transp.Offset
	}
	return p
}

// pack is small enough to be inlined into the per-pixel loops.
func (p *packer) pack(r, g, b uint8) uint32 {
	return uint32(r)>>p.rShift<<p.rOff | uint32(g)>>p.gShift<<p.gOff | uint32(b)>>p.bShift<<p.bOff | p.alpha
}

// unpack is pack's inverse, with each field widened back to 8 bits by
// repeating its top bits (so 5-bit 31 reads as 255, not 248).
func (f Format) unpack(v uint32) (r, g, b uint8) {
	return widen(v, f.Red), widen(v, f.Green), widen(v, f.Blue)
}

func widen(v uint32, b Bitfield) uint8 {
	x := v >> b.Offset & (1<<b.Length - 1)
	x <<= 8 - b.Length
	for s := b.Length; s < 8; s *= 2 {
		x |= x >> s
	}
	return uint8(x)
}

// Pixel reads the pixel at byte offset i of a buffer in format f, as 8-bit
// red, green and blue. Tests use it to read back what was drawn.
func (f Format) Pixel(buf []byte, i int) (r, g, b uint8) {
	var v uint32
	switch f.BitsPerPixel {
	case 16:
		v = uint32(buf[i]) | uint32(buf[i+1])<<8
	case 24:
		v = uint32(buf[i]) | uint32(buf[i+1])<<8 | uint32(buf[i+2])<<16
	case 32:
		v = uint32(buf[i]) | uint32(buf[i+1])<<8 | uint32(buf[i+2])<<16 | uint32(buf[i+3])<<24
	}
	return f.unpack(v)
}
