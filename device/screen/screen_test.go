package screen

import (
	"context"
	"image"
	"image/color"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device/screen/fb"
	"github.com/tuanju/tuanju/device/screen/fb/fbtest"
)

type fakeSource struct {
	mu      sync.Mutex
	pic     image.Image
	pattern string
	polls   int // Picture calls: one a tick
}

func (f *fakeSource) Picture() image.Image {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	return f.pic
}

// waitTicks waits until Run has finished n more ticks: it asks for the
// picture at the start of each.
func (f *fakeSource) waitTicks(t *testing.T, n int) {
	t.Helper()
	f.mu.Lock()
	want := f.polls + n + 1
	f.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		got := f.polls
		f.mu.Unlock()
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run finished %d of %d ticks", got-(want-n-1), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fakeSource) Pattern() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pattern
}

func (f *fakeSource) set(pic image.Image, pattern string) {
	f.mu.Lock()
	f.pic, f.pattern = pic, pattern
	f.mu.Unlock()
}

// solid is a 320x240 I420 picture of one colour (BT.601 video range).
func solid(c color.RGBA) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, 320, 240), image.YCbCrSubsampleRatio420)
	y, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
	for i := range img.Y {
		img.Y[i] = 16 + uint8(int(y)*219/255)
	}
	for i := range img.Cb {
		img.Cb[i] = 128 + uint8((int(cb)-128)*224/255)
		img.Cr[i] = 128 + uint8((int(cr)-128)*224/255)
	}
	return img
}

// waitPixel waits until the screen's pixel at p satisfies ok.
func waitPixel(t *testing.T, d *fbtest.Display, p image.Point, what string, ok func(color.RGBA) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := d.Snapshot().RGBAAt(p.X, p.Y)
		if ok(c) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: pixel %v is %v", what, p, c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunShowsStatesAndPictures: the state picture while idle, the parent's
// picture in a call (letterboxed), the state again after; each picture is
// drawn once, not once per tick.
func TestRunShowsStatesAndPictures(t *testing.T) {
	d, err := fbtest.New(480, 320, fb.VideoRange)
	if err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{pattern: "fault"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Run(ctx, src, d, Options{FPS: 50}) }()
	defer func() { cancel(); <-done }()

	corner := image.Pt(2, 2) // background, outside the state's shape
	waitPixel(t, d, corner, "fault screen is red", func(c color.RGBA) bool { return c.R > 150 && c.G < 100 && c.B < 100 })

	pic := solid(color.RGBA{0, 0, 255, 255})
	src.set(pic, "in_call")
	waitPixel(t, d, image.Pt(240, 160), "parent's picture (blue) in the middle", func(c color.RGBA) bool { return c.B > 150 && c.R < 100 })
	// 320x240 into 480x320 keeps 4:3: 427x320, bars of 26 px left and right.
	if c := d.Snapshot().RGBAAt(5, 160); c.R > 20 || c.G > 20 || c.B > 20 {
		t.Errorf("letterbox bar at x=5 is %v, want black", c)
	}
	frames := d.Frames()
	src.waitTicks(t, 10) // ten ticks with the same picture
	if n := d.Frames(); n != frames {
		t.Errorf("the same picture was drawn %d more times", n-frames)
	}

	src.set(nil, "ready")
	waitPixel(t, d, corner, "ready screen is green", func(c color.RGBA) bool { return c.G > 150 && c.R < 100 })
}
