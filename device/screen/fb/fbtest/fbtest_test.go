package fbtest_test

import (
	"errors"
	"image"
	"image/color"
	"testing"

	"github.com/tuanju/tuanju/device/screen/fb"
	"github.com/tuanju/tuanju/device/screen/fb/fbtest"
)

func TestDisplay(t *testing.T) {
	d, err := fbtest.New(480, 320, fb.FullRange)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Bounds(); got != image.Rect(0, 0, 480, 320) {
		t.Fatalf("Bounds() = %v", got)
	}
	if px := d.Snapshot().RGBAAt(10, 10); px != (color.RGBA{0, 0, 0, 255}) {
		t.Errorf("a new display shows %v, want opaque black", px)
	}

	// A 4:3 orange frame: pillarboxed on the 3:2 screen.
	frame := image.NewYCbCr(image.Rect(0, 0, 320, 240), image.YCbCrSubsampleRatio420)
	y, cb, cr := color.RGBToYCbCr(255, 128, 0)
	fill(frame.Y, y)
	fill(frame.Cb, cb)
	fill(frame.Cr, cr)
	if err := d.Draw(frame); err != nil {
		t.Fatal(err)
	}
	want := fb.Fit(image.Pt(320, 240), image.Pt(480, 320))
	if got := d.Placement(); got != want {
		t.Errorf("Placement() = %v, want %v", got, want)
	}
	snap := d.Snapshot()
	for _, p := range []struct {
		at   image.Point
		want color.RGBA
	}{
		{image.Pt(240, 160), color.RGBA{255, 128, 0, 255}},
		{image.Pt(want.Min.X, 0), color.RGBA{255, 128, 0, 255}},
		{image.Pt(want.Min.X-1, 160), color.RGBA{0, 0, 0, 255}},
		{image.Pt(want.Max.X, 319), color.RGBA{0, 0, 0, 255}},
	} {
		got := snap.RGBAAt(p.at.X, p.at.Y)
		if d := maxDiff(got, p.want); d > 2 {
			t.Errorf("pixel %v = %v, want %v", p.at, got, p.want)
		}
	}

	if err := d.Fill(color.RGBA{0, 0, 255, 255}); err != nil {
		t.Fatal(err)
	}
	if got := d.Snapshot().RGBAAt(0, 0); got != (color.RGBA{0, 0, 255, 255}) {
		t.Errorf("after Fill(blue) pixel = %v", got)
	}
	if err := d.Draw(nil); !errors.Is(err, fb.ErrBadImage) {
		t.Errorf("Draw(nil) = %v, want ErrBadImage", err)
	}
	if got := d.Frames(); got != 2 {
		t.Errorf("Frames() = %d, want 2 (a Draw and a Fill; the failed Draw does not count)", got)
	}

	if err := d.Blank(true); err != nil || !d.Blanked() {
		t.Errorf("Blank(true) = %v, Blanked() = %v", err, d.Blanked())
	}
	if err := d.Blank(false); err != nil || d.Blanked() {
		t.Errorf("Blank(false) = %v, Blanked() = %v", err, d.Blanked())
	}
	d.NoBlank = true
	if err := d.Blank(true); !errors.Is(err, fb.ErrNoBlank) {
		t.Errorf("Blank with NoBlank = %v, want ErrNoBlank", err)
	}
}

func TestNewRejectsEmpty(t *testing.T) {
	if _, err := fbtest.New(0, 10, fb.VideoRange); err == nil {
		t.Error("New(0, 10) succeeded")
	}
}

func fill(p []byte, v byte) {
	for i := range p {
		p[i] = v
	}
}

func maxDiff(a, b color.RGBA) int {
	d := 0
	for _, p := range [][2]uint8{{a.R, b.R}, {a.G, b.G}, {a.B, b.B}, {a.A, b.A}} {
		d = max(d, int(p[0])-int(p[1]), int(p[1])-int(p[0]))
	}
	return d
}
