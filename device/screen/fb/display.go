package fb

import (
	"image"
	"image/color"
)

// Display is a screen as the terminal uses it. *FB implements it on a real
// framebuffer, fbtest.Display in memory.
type Display interface {
	// Bounds is the visible screen, at the origin.
	Bounds() image.Rectangle
	// Draw shows img scaled to fit with its aspect ratio kept, black bars
	// around it.
	Draw(img image.Image) error
	// Fill shows one colour on the whole screen.
	Fill(c color.Color) error
	// Blank turns the screen (its backlight, on most panels) off or back
	// on, for idle power. ErrNoBlank means the driver cannot.
	Blank(off bool) error
}

var _ Display = (*FB)(nil)
