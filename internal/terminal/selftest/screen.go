package selftest

import (
	"context"
	"fmt"
	"image"
	"image/color"

	"github.com/tuanju/tuanju/device/screen/fb"
)

// barColours is the test picture: four vertical bars, left to right.
var barColours = []color.RGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}, {255, 255, 255, 255}}

// TestPicture returns the screen check's picture at size: four vertical
// bars, red, green, blue, white.
func TestPicture(size image.Point) *image.RGBA {
	img := image.NewRGBA(image.Rectangle{Max: size})
	for x := range size.X {
		c := barColours[x*len(barColours)/size.X]
		for y := range size.Y {
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// snapshotter is a display that can show what it shows (fbtest.Display).
type snapshotter interface{ Snapshot() *image.RGBA }

// ScreenCheck draws the test picture on the display open returns. Where
// the display can be read back (fbtest), every bar's centre is checked;
// otherwise the technician is asked to look.
func ScreenCheck(fitted bool, what string, open func() (fb.Display, func() error, error)) Check {
	return Check{Name: "screen", Fitted: fitted, Run: func(ctx context.Context, t *T) (Status, string) {
		if open == nil {
			return Absent, "no screen configured"
		}
		d, closeFn, err := open()
		if err != nil {
			return statusOf(err), err.Error()
		}
		defer closeFn()
		size := d.Bounds().Size()
		if err := d.Draw(TestPicture(size)); err != nil {
			return Fail, fmt.Sprintf("%s: draw: %v", what, err)
		}
		s, ok := d.(snapshotter)
		if !ok {
			t.Say("the screen shows four bars: red, green, blue, white")
			return Pass, fmt.Sprintf("%s %dx%d: drew four bars; look: red, green, blue, white from the left?", what, size.X, size.Y)
		}
		img := s.Snapshot()
		for i, want := range barColours {
			x := (2*i + 1) * size.X / (2 * len(barColours))
			got := img.RGBAAt(x, size.Y/2)
			if absDiff(got.R, want.R) > 8 || absDiff(got.G, want.G) > 8 || absDiff(got.B, want.B) > 8 {
				return Fail, fmt.Sprintf("%s: bar %d reads %v, drew %v", what, i+1, got, want)
			}
		}
		return Pass, fmt.Sprintf("%s %dx%d: four bars drawn and read back", what, size.X, size.Y)
	}}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}
