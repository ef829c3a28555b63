// Package fbtest is an in-memory fb.Display for tests and the simulated
// board: an image.RGBA that shows exactly what a screen would, because it is
// drawn by the same fb.Canvas (same letterbox, sampling and colour
// conversion) as a real framebuffer.
package fbtest

import (
	"fmt"
	"image"
	"image/color"
	"sync"

	"github.com/tuanju/tuanju/device/screen/fb"
)

// Display is a fake screen. Its zero value is not usable; call New.
type Display struct {
	// NoBlank makes Blank fail with fb.ErrNoBlank, as vfb and some SPI
	// panel drivers do.
	NoBlank bool

	mu      sync.Mutex
	img     *image.RGBA
	canvas  *fb.Canvas
	blanked bool
	frames  int
}

var _ fb.Display = (*Display)(nil)

// New returns a black w×h screen. YCbCr pictures are converted with range r.
func New(w, h int, r fb.Range) (*Display, error) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	// image.RGBA's bytes are R, G, B, A: fb.ABGR8888 as a little-endian
	// pixel value, with the alpha byte written opaque.
	c, err := fb.NewCanvas(img.Pix, img.Stride, image.Pt(w, h), fb.ABGR8888, r)
	if err != nil {
		return nil, fmt.Errorf("fbtest: %w", err)
	}
	c.Fill(color.Black)
	return &Display{img: img, canvas: c}, nil
}

// Bounds is the screen, at the origin.
func (d *Display) Bounds() image.Rectangle { return d.img.Rect }

// Draw shows img as fb.FB would.
func (d *Display) Draw(img image.Image) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.canvas.Draw(img); err != nil {
		return err
	}
	d.frames++
	return nil
}

// Fill shows one colour.
func (d *Display) Fill(c color.Color) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.canvas.Fill(c)
	d.frames++
	return nil
}

// Blank records the screen's power state.
func (d *Display) Blank(off bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.NoBlank {
		return fmt.Errorf("fbtest: blank: %w", fb.ErrNoBlank)
	}
	d.blanked = off
	return nil
}

// Snapshot returns a copy of what the screen shows.
func (d *Display) Snapshot() *image.RGBA {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := image.NewRGBA(d.img.Rect)
	copy(c.Pix, d.img.Pix)
	return c
}

// Placement is where the last picture went (fb.Fit of its size); empty
// after a Fill.
func (d *Display) Placement() image.Rectangle {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.canvas.Placement()
}

// Blanked reports whether the screen was last told to blank.
func (d *Display) Blanked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.blanked
}

// Frames counts successful Draw and Fill calls.
func (d *Display) Frames() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.frames
}
