package fb

import (
	"bytes"
	"errors"
	"image/color"
	"testing"
)

// Each layout the package names, and what pure colours look like in memory.
// The bytes are written out by hand from the kernel's bitfield convention
// (a little-endian pixel value, component at Offset), so a packer that
// assumed one layout fails the others.
func TestPackLayouts(t *testing.T) {
	red, green, blue, white := [3]uint8{255, 0, 0}, [3]uint8{0, 255, 0}, [3]uint8{0, 0, 255}, [3]uint8{255, 255, 255}
	tests := []struct {
		name   string
		f      Format
		colour [3]uint8
		want   []byte
	}{
		{"RGB565 red", RGB565, red, []byte{0x00, 0xf8}},
		{"RGB565 green", RGB565, green, []byte{0xe0, 0x07}},
		{"RGB565 blue", RGB565, blue, []byte{0x1f, 0x00}},
		{"BGR565 red", BGR565, red, []byte{0x1f, 0x00}},
		{"BGR565 blue", BGR565, blue, []byte{0x00, 0xf8}},
		{"RGB888 red", RGB888, red, []byte{0x00, 0x00, 0xff}},
		{"BGR888 red", BGR888, red, []byte{0xff, 0x00, 0x00}},
		{"XRGB8888 red", XRGB8888, red, []byte{0x00, 0x00, 0xff, 0x00}},
		{"XRGB8888 blue", XRGB8888, blue, []byte{0xff, 0x00, 0x00, 0x00}},
		{"ARGB8888 red, opaque", ARGB8888, red, []byte{0x00, 0x00, 0xff, 0xff}},
		{"ABGR8888 red (image.RGBA)", ABGR8888, red, []byte{0xff, 0x00, 0x00, 0xff}},
		{"RGBA5551 white", Format{16, Bitfield{0, 5}, Bitfield{5, 5}, Bitfield{10, 5}, Bitfield{15, 1}}, white, []byte{0xff, 0xff}},
		{"RGBA5551 green", Format{16, Bitfield{0, 5}, Bitfield{5, 5}, Bitfield{10, 5}, Bitfield{15, 1}}, green, []byte{0xe0, 0x83}},
		{"RGB444 in 16 bits", Format{16, Bitfield{8, 4}, Bitfield{4, 4}, Bitfield{0, 4}, Bitfield{}}, red, []byte{0x00, 0x0f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.f.Validate(); err != nil {
				t.Fatal(err)
			}
			pk := newPacker(tt.f)
			buf := make([]byte, 4)
			put(buf, tt.f.BytesPerPixel(), pk.pack(tt.colour[0], tt.colour[1], tt.colour[2]))
			if got := buf[:tt.f.BytesPerPixel()]; !bytes.Equal(got, tt.want) {
				t.Errorf("pack %v = % x, want % x", tt.colour, got, tt.want)
			}
			r, g, b := tt.f.Pixel(buf, 0)
			if [3]uint8{r, g, b} != tt.colour {
				t.Errorf("Pixel read back %v, want %v", [3]uint8{r, g, b}, tt.colour)
			}
		})
	}
}

// Every layout keeps the top bits of each component: a mid grey read back
// differs from what was written by less than one step of the field.
func TestPackRoundTripPrecision(t *testing.T) {
	for _, n := range named {
		t.Run(n.name, func(t *testing.T) {
			pk := newPacker(n.f)
			buf := make([]byte, 4)
			for v := 0; v < 256; v += 5 {
				c := [3]uint8{uint8(v), uint8(255 - v), uint8(v / 2)}
				put(buf, n.f.BytesPerPixel(), pk.pack(c[0], c[1], c[2]))
				r, g, b := n.f.Pixel(buf, 0)
				got := [3]uint8{r, g, b}
				for i, l := range []uint32{n.f.Red.Length, n.f.Green.Length, n.f.Blue.Length} {
					step := 256 >> l
					if d := int(got[i]) - int(c[i]); d < -step || d > step {
						t.Fatalf("%v read back as %v: component %d off by %d (field of %d bits)", c, got, i, d, l)
					}
				}
			}
		})
	}
}

func TestFormatValidate(t *testing.T) {
	tests := []struct {
		name string
		f    Format
		ok   bool
	}{
		{"RGB565", RGB565, true},
		{"ARGB8888", ARGB8888, true},
		{"8 bpp palette", Format{BitsPerPixel: 8, Red: Bitfield{0, 8}, Green: Bitfield{0, 8}, Blue: Bitfield{0, 8}}, false},
		{"10-bit fields", Format{32, Bitfield{20, 10}, Bitfield{10, 10}, Bitfield{0, 10}, Bitfield{30, 2}}, false},
		{"no blue", Format{16, Bitfield{11, 5}, Bitfield{5, 6}, Bitfield{}, Bitfield{}}, false},
		{"field outside pixel", Format{16, Bitfield{12, 5}, Bitfield{5, 6}, Bitfield{0, 5}, Bitfield{}}, false},
		{"overlap", Format{16, Bitfield{10, 5}, Bitfield{5, 6}, Bitfield{0, 5}, Bitfield{}}, false},
		{"alpha overlaps", Format{32, Bitfield{16, 8}, Bitfield{8, 8}, Bitfield{0, 8}, Bitfield{16, 8}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if tt.ok && err != nil {
				t.Errorf("Validate(%v) = %v, want nil", tt.f, err)
			}
			if !tt.ok && !errors.Is(err, ErrUnsupportedFormat) {
				t.Errorf("Validate(%v) = %v, want ErrUnsupportedFormat", tt.f, err)
			}
		})
	}
}

func TestFormatString(t *testing.T) {
	if got := RGB565.String(); got != "RGB565" {
		t.Errorf("RGB565.String() = %q", got)
	}
	odd := Format{16, Bitfield{0, 5}, Bitfield{5, 5}, Bitfield{10, 5}, Bitfield{15, 1}}
	if got, want := odd.String(), "16bpp r0:5 g5:5 b10:5 a15:1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// YCbCr conversion against image/color's (JFIF full range) for every
// sample, and video range against its definition at the reference points.
func TestYUVTables(t *testing.T) {
	full := yuvTablesFor[FullRange]
	for y := 0; y < 256; y += 3 {
		for cb := 0; cb < 256; cb += 5 {
			for cr := 0; cr < 256; cr += 7 {
				r, g, b := full.rgb(uint8(y), uint8(cb), uint8(cr))
				wr, wg, wb := color.YCbCrToRGB(uint8(y), uint8(cb), uint8(cr))
				if absDiff(r, wr) > 1 || absDiff(g, wg) > 1 || absDiff(b, wb) > 1 {
					t.Fatalf("full range %d,%d,%d = %d,%d,%d; image/color says %d,%d,%d", y, cb, cr, r, g, b, wr, wg, wb)
				}
			}
		}
	}
	video := yuvTablesFor[VideoRange]
	tests := []struct {
		name      string
		y, cb, cr uint8
		want      [3]uint8
	}{
		{"black", 16, 128, 128, [3]uint8{0, 0, 0}},
		{"white", 235, 128, 128, [3]uint8{255, 255, 255}},
		{"below black clamps", 0, 128, 128, [3]uint8{0, 0, 0}},
		{"above white clamps", 255, 128, 128, [3]uint8{255, 255, 255}},
		// BT.601 75% bars would be approximate; 100% red is Y 81 Cb 90 Cr 240.
		{"red", 81, 90, 240, [3]uint8{255, 0, 0}},
		{"green", 145, 54, 34, [3]uint8{0, 255, 0}},
		{"blue", 41, 240, 110, [3]uint8{0, 0, 255}},
	}
	for _, tt := range tests {
		r, g, b := video.rgb(tt.y, tt.cb, tt.cr)
		got := [3]uint8{r, g, b}
		for i := range got {
			if absDiff(got[i], tt.want[i]) > 2 {
				t.Errorf("video range %s (%d,%d,%d) = %v, want %v", tt.name, tt.y, tt.cb, tt.cr, got, tt.want)
				break
			}
		}
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}
