package fb

import (
	"image"
	"image/draw"
	"testing"

	xdraw "golang.org/x/image/draw"
)

// The video path at the terminal's profile (320x240 I420 from the H.264
// decoder) onto the screens small boards have, beside two references:
//
//   - generic: the same Canvas through image.Image.At (what any image type
//     costs; also what image/draw's generic path does per pixel);
//   - xdraw: golang.org/x/image/draw's NearestNeighbor.Scale into an
//     image.RGBA, then a loop packing that into the screen's format — the
//     way one would write it with the ecosystem's tools.
//
// make bench-style figures: go test -run '^$' -bench . -benchmem ./device/fb
func BenchmarkDrawVideo(b *testing.B) {
	src := quadrants(320, 240, image.YCbCrSubsampleRatio420, VideoRange)
	for _, tt := range []struct {
		name   string
		screen image.Point
		f      Format
	}{
		{"480x320-RGB565", image.Pt(480, 320), RGB565},
		{"800x480-XRGB8888", image.Pt(800, 480), XRGB8888},
	} {
		b.Run(tt.name+"/canvas", func(b *testing.B) {
			c, _, _ := newTestCanvas(b, tt.screen, tt.f, VideoRange)
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Draw(src); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/generic", func(b *testing.B) {
			c, _, _ := newTestCanvas(b, tt.screen, tt.f, VideoRange)
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Draw(opaque{src}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/xdraw", func(b *testing.B) {
			_, pix, stride := newTestCanvas(b, tt.screen, tt.f, VideoRange)
			rgba := image.NewRGBA(image.Rectangle{Max: tt.screen})
			place := Fit(src.Rect.Size(), tt.screen)
			pk := newPacker(tt.f)
			bpp := tt.f.BytesPerPixel()
			b.ReportAllocs()
			for b.Loop() {
				draw.Draw(rgba, rgba.Rect, image.Black, image.Point{}, draw.Src)
				xdraw.NearestNeighbor.Scale(rgba, place, src, src.Rect, xdraw.Src, nil)
				for y := range tt.screen.Y {
					row := rgba.Pix[y*rgba.Stride:]
					out := pix[y*stride:]
					for x := range tt.screen.X {
						p := row[4*x : 4*x+3]
						put(out[x*bpp:], bpp, pk.pack(p[0], p[1], p[2]))
					}
				}
			}
		})
	}
}
