package fb

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
)

// Canvas draws pictures into a pixel buffer of one Format: the back buffer of
// an FB, or an image.RGBA's pixels in the fake (fbtest.Display), so both
// show exactly the same thing.
//
// A Canvas keeps the sampling positions of the last picture's geometry and
// allocates nothing while pictures keep the same size, layout and strides,
// which is the case for every frame of a video. It is not safe for
// concurrent use.
type Canvas struct {
	pix    []byte
	stride int
	size   image.Point
	format Format
	pk     packer
	yuv    *yuvTables
	pt     *packTables

	key  sampleKey       // geometry the tables below are for
	dst  image.Rectangle // where the picture goes (Fit)
	colA []int32         // per output column, see sampleKey.kind
	colB []int32
	rowA []int32 // per output row
	rowB []int32

	// Upscaling video converts each source row once into line and then
	// samples it (see drawYCbCr); srcC has each source column's chroma
	// offset.
	expand bool
	line   []uint32
	srcC   []int32
}

// sampleKey identifies what the sampling tables were built for.
type sampleKey struct {
	kind         sourceKind
	rect         image.Rectangle
	stride, cstr int
	ratio        image.YCbCrSubsampleRatio
	screen       image.Rectangle
}

type sourceKind int

const (
	kindNone  sourceKind = iota
	kindYCbCr            // colA/rowA: Y byte offsets; colB/rowB: Cb/Cr offsets
	kindRGBA             // colA: byte offset in a row; rowA: row byte offset
	kindAny              // colA, rowA: source coordinates for At
)

// NewCanvas returns a Canvas over pix, a size.X × size.Y picture in format f
// whose rows start stride bytes apart. YCbCr pictures are converted with
// range r.
func NewCanvas(pix []byte, stride int, size image.Point, f Format, r Range) (*Canvas, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if size.X <= 0 || size.Y <= 0 {
		return nil, fmt.Errorf("fb: canvas size %v: must be positive", size)
	}
	if stride < size.X*f.BytesPerPixel() {
		return nil, fmt.Errorf("fb: canvas stride %d: less than a row of %d %v pixels", stride, size.X, f)
	}
	if need := stride*(size.Y-1) + size.X*f.BytesPerPixel(); len(pix) < need {
		return nil, fmt.Errorf("fb: canvas buffer of %d bytes: %v at stride %d needs %d", len(pix), size, stride, need)
	}
	if r != VideoRange && r != FullRange {
		return nil, fmt.Errorf("fb: canvas: unknown YCbCr range %d", r)
	}
	return &Canvas{
		pix: pix, stride: stride, size: size, format: f,
		pk:   newPacker(f),
		yuv:  yuvTablesFor[r],
		pt:   newPackTables(newPacker(f)),
		colA: make([]int32, size.X), colB: make([]int32, size.X),
		rowA: make([]int32, size.Y), rowB: make([]int32, size.Y),
	}, nil
}

// Bounds is the canvas's rectangle, at the origin.
func (c *Canvas) Bounds() image.Rectangle { return image.Rectangle{Max: c.size} }

// Format is the canvas's pixel layout.
func (c *Canvas) Format() Format { return c.format }

// Placement is where the last picture drawn went: Fit of its size to the
// canvas. Everything outside it is black.
func (c *Canvas) Placement() image.Rectangle { return c.dst }

// Fill paints the whole canvas with col (alpha composited over black).
func (c *Canvas) Fill(col color.Color) {
	r, g, b, _ := col.RGBA() // premultiplied: over black as is
	v := c.pk.pack(uint8(r>>8), uint8(g>>8), uint8(b>>8))
	c.fillRect(image.Rectangle{Max: c.size}, v)
	c.key, c.dst = sampleKey{}, image.Rectangle{}
}

// Draw shows img scaled to fit the canvas with its aspect ratio kept
// (nearest-neighbour sampling), centred, with black bars around it.
// Transparent parts show black. *image.YCbCr (any standard subsampling,
// converted with the canvas's Range) and *image.RGBA are read directly;
// other images through At, which is correct but slow.
func (c *Canvas) Draw(img image.Image) error {
	if img == nil {
		return fmt.Errorf("%w: nil image", ErrBadImage)
	}
	if y, ok := img.(*image.YCbCr); ok && y == nil {
		return fmt.Errorf("%w: nil *image.YCbCr", ErrBadImage)
	}
	src := img.Bounds()
	if src.Empty() {
		return fmt.Errorf("%w: empty picture %v", ErrBadImage, src)
	}
	switch s := img.(type) {
	case *image.YCbCr:
		if hdiv, vdiv, ok := chromaDivisors(s.SubsampleRatio); ok {
			c.prepare(sampleKey{kind: kindYCbCr, rect: src, stride: s.YStride, cstr: s.CStride, ratio: s.SubsampleRatio}, hdiv, vdiv)
			c.bars()
			c.drawYCbCr(s)
			return nil
		}
	case *image.RGBA:
		c.prepare(sampleKey{kind: kindRGBA, rect: src, stride: s.Stride}, 1, 1)
		c.bars()
		c.drawRGBA(s)
		return nil
	}
	c.prepare(sampleKey{kind: kindAny, rect: src}, 1, 1)
	c.bars()
	c.drawAny(img)
	return nil
}

// chromaDivisors says how many luma samples share a chroma sample across and
// down, as image.YCbCr.COffset computes it.
func chromaDivisors(r image.YCbCrSubsampleRatio) (h, v int, ok bool) {
	switch r {
	case image.YCbCrSubsampleRatio444:
		return 1, 1, true
	case image.YCbCrSubsampleRatio422:
		return 2, 1, true
	case image.YCbCrSubsampleRatio420:
		return 2, 2, true
	case image.YCbCrSubsampleRatio440:
		return 1, 2, true
	case image.YCbCrSubsampleRatio411:
		return 4, 1, true
	case image.YCbCrSubsampleRatio410:
		return 4, 2, true
	}
	return 0, 0, false
}

// prepare computes the placement and the per-column and per-row sampling
// tables, unless they are already those of k.
func (c *Canvas) prepare(k sampleKey, hdiv, vdiv int) {
	k.screen = c.Bounds()
	if k == c.key {
		return
	}
	src := k.rect
	dst := Fit(src.Size(), c.size)
	n, m := dst.Dx(), dst.Dy()
	cols, rows := c.colA[:n], c.rowA[:m]
	samplePositions(cols, src.Dx(), n)
	samplePositions(rows, src.Dy(), m)
	for i, p := range cols {
		x := src.Min.X + int(p)
		switch k.kind {
		case kindYCbCr:
			cols[i] = int32(x - src.Min.X)
			c.colB[i] = int32(x/hdiv - src.Min.X/hdiv)
		case kindRGBA:
			cols[i] = int32((x - src.Min.X) * 4)
		default:
			cols[i] = int32(x)
		}
	}
	for j, p := range rows {
		y := src.Min.Y + int(p)
		switch k.kind {
		case kindYCbCr:
			rows[j] = int32((y - src.Min.Y) * k.stride)
			c.rowB[j] = int32((y/vdiv - src.Min.Y/vdiv) * k.cstr)
		case kindRGBA:
			rows[j] = int32((y - src.Min.Y) * k.stride)
		default:
			rows[j] = int32(y)
		}
	}
	c.expand = k.kind == kindYCbCr && n >= src.Dx()
	if c.expand {
		w := src.Dx()
		if cap(c.line) < w {
			c.line, c.srcC = make([]uint32, w), make([]int32, w)
		}
		c.line, c.srcC = c.line[:w], c.srcC[:w]
		for i := range w {
			x := src.Min.X + i
			c.srcC[i] = int32(x/hdiv - src.Min.X/hdiv)
		}
	}
	c.key, c.dst = k, dst
}

// bars paints black everything outside the placement.
func (c *Canvas) bars() {
	black := c.pk.pack(0, 0, 0)
	d, s := c.dst, c.size
	c.fillRect(image.Rect(0, 0, s.X, d.Min.Y), black)
	c.fillRect(image.Rect(0, d.Max.Y, s.X, s.Y), black)
	c.fillRect(image.Rect(0, d.Min.Y, d.Min.X, d.Max.Y), black)
	c.fillRect(image.Rect(d.Max.X, d.Min.Y, s.X, d.Max.Y), black)
}

// fillRect sets every pixel of r to the packed value v: one row pixel by
// pixel, the others copied from it.
func (c *Canvas) fillRect(r image.Rectangle, v uint32) {
	if r.Empty() {
		return
	}
	bpp := c.pk.bpp
	first := c.pix[r.Min.Y*c.stride+r.Min.X*bpp : r.Min.Y*c.stride+r.Max.X*bpp]
	for i := 0; i < len(first); i += bpp {
		put(first[i:], bpp, v)
	}
	for y := r.Min.Y + 1; y < r.Max.Y; y++ {
		copy(c.pix[y*c.stride+r.Min.X*bpp:], first)
	}
}

// put stores pixel value v little-endian in the first bpp bytes of b.
func put(b []byte, bpp int, v uint32) {
	switch bpp {
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 3:
		_ = b[2]
		b[0], b[1], b[2] = byte(v), byte(v>>8), byte(v>>16)
	default:
		binary.LittleEndian.PutUint32(b, v)
	}
}

// drawYCbCr is the video path: sample, convert, pack and store in one
// pass. Three things keep it cheap, measured by BenchmarkDrawVideo:
//
//   - conversion and packing are table look-ups (yuvTables, packTables);
//   - an output row sampling the same source row as the one above is a
//     copy of it (upscaling repeats rows);
//   - when upscaling across, each source row is converted once into line
//     and the output row picks from it, so a pixel shown twice is converted
//     once.
func (c *Canvas) drawYCbCr(s *image.YCbCr) {
	d := c.dst
	n, bpp := d.Dx(), c.pk.bpp
	t, pt := c.yuv, c.pt
	prevRow, prevOut := int32(-1), 0
	for j := range d.Dy() {
		o := (d.Min.Y+j)*c.stride + d.Min.X*bpp
		out := c.pix[o : o+n*bpp]
		if c.rowA[j] == prevRow {
			copy(out, c.pix[prevOut:prevOut+n*bpp])
			continue
		}
		prevRow, prevOut = c.rowA[j], o
		if c.expand {
			line := c.line
			yrow := s.Y[c.rowA[j]:][:len(line)]
			srcC := c.srcC[:len(line)]
			cbrow, crrow := s.Cb[c.rowB[j]:], s.Cr[c.rowB[j]:]
			for x, y := range yrow {
				xc := srcC[x]
				line[x] = pt.rgb(t, y, cbrow[xc], crrow[xc])
			}
			gather(out, line, c.colA[:n], bpp)
			continue
		}
		cols, ccols := c.colA[:n], c.colB[:n]
		ccols = ccols[:len(cols)]
		yrow, cbrow, crrow := s.Y[c.rowA[j]:], s.Cb[c.rowB[j]:], s.Cr[c.rowB[j]:]
		switch bpp {
		case 2:
			out = out[:2*len(cols)]
			for i, xo := range cols {
				xc := ccols[i]
				binary.LittleEndian.PutUint16(out[2*i:], uint16(pt.rgb(t, yrow[xo], cbrow[xc], crrow[xc])))
			}
		case 3:
			out = out[:3*len(cols)]
			for i, xo := range cols {
				xc := ccols[i]
				v := pt.rgb(t, yrow[xo], cbrow[xc], crrow[xc])
				p := out[3*i : 3*i+3]
				p[0], p[1], p[2] = byte(v), byte(v>>8), byte(v>>16)
			}
		default:
			out = out[:4*len(cols)]
			for i, xo := range cols {
				xc := ccols[i]
				binary.LittleEndian.PutUint32(out[4*i:], pt.rgb(t, yrow[xo], cbrow[xc], crrow[xc]))
			}
		}
	}
}

// gather stores line[cols[i]] as output pixel i.
func gather(out []byte, line []uint32, cols []int32, bpp int) {
	switch bpp {
	case 2:
		out = out[:2*len(cols)]
		for i, x := range cols {
			binary.LittleEndian.PutUint16(out[2*i:], uint16(line[x]))
		}
	case 3:
		out = out[:3*len(cols)]
		for i, x := range cols {
			v := line[x]
			p := out[3*i : 3*i+3]
			p[0], p[1], p[2] = byte(v), byte(v>>8), byte(v>>16)
		}
	default:
		out = out[:4*len(cols)]
		for i, x := range cols {
			binary.LittleEndian.PutUint32(out[4*i:], line[x])
		}
	}
}

// drawRGBA reads premultiplied RGBA directly; alpha is dropped, which is
// compositing over black.
func (c *Canvas) drawRGBA(s *image.RGBA) {
	d := c.dst
	n := d.Dx()
	cols, pk, bpp := c.colA[:n], &c.pk, c.pk.bpp
	for j := range d.Dy() {
		row := s.Pix[c.rowA[j]:]
		o := (d.Min.Y+j)*c.stride + d.Min.X*bpp
		out := c.pix[o : o+n*bpp]
		for i, xo := range cols {
			p := row[xo : xo+3]
			put(out[i*bpp:], bpp, pk.pack(p[0], p[1], p[2]))
		}
	}
}

// drawAny is the generic path, through At.
func (c *Canvas) drawAny(img image.Image) {
	d := c.dst
	n := d.Dx()
	cols, pk, bpp := c.colA[:n], &c.pk, c.pk.bpp
	for j := range d.Dy() {
		y := int(c.rowA[j])
		o := (d.Min.Y+j)*c.stride + d.Min.X*bpp
		out := c.pix[o : o+n*bpp]
		for i, x := range cols {
			r, g, b, _ := img.At(int(x), y).RGBA()
			put(out[i*bpp:], bpp, pk.pack(uint8(r>>8), uint8(g>>8), uint8(b>>8)))
		}
	}
}
