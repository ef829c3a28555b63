// Package screen drives the terminal's screen, on boards that have one: the
// parent's picture while a call is live, and otherwise what the terminal is
// doing, for a child who cannot read: each state is one full-screen colour
// with one big white shape, no text.
//
// It speaks the status lights' vocabulary (the device.Pattern names) and
// their colour rules, so the screen and the LEDs never disagree: green is
// "you can call / we are calling", blue is "a call is live or being set up",
// red is "something is wrong". The shape tells states of one colour apart,
// and means the same everywhere: a solid disc is the button ("press"),
// three dots are waiting, a heart is your parent.
//
//	state      colour  shape
//	off        black   none
//	ready      green   solid disc: press to call
//	calling    green   three dots: ringing your parent
//	ringing    blue    disc inside a ring: your parent is calling, press!
//	in_call    blue    heart: shown until the first video frame
//	in_call_voice blue a small heart and sound waves: a voice-only call (the month's data is used up)
//	pairing    blue    three dots: a parent asks to pair, press to agree
//	pairable   blue    empty ring: open for pairing, nothing to press yet
//	no_answer  red     empty ring: nobody answered
//	unreachable red    a heart broken in two: your parent cannot be reached now
//	offline    red     a bar: no network
//	fault      red     a cross: needs repair
//
// Shapes are computed per pixel from their equations, at any screen size and
// orientation, centred, 70% of the shorter side.
package screen

import (
	"errors"
	"fmt"
	"image"
	"image/color"

	"github.com/tuanju/tuanju/device/screen/fb"
)

// ErrUnknownState means Render or Show was given a state not in the table.
// The fault screen is shown instead, so a bug is visible.
var ErrUnknownState = errors.New("screen: unknown state")

// Colours, bright enough to read on a cheap panel from across a room, and
// the same hue as the LED of each meaning.
var (
	Green = color.RGBA{0, 170, 60, 255}
	Blue  = color.RGBA{20, 90, 220, 255}
	Red   = color.RGBA{210, 30, 30, 255}
	Black = color.RGBA{0, 0, 0, 255}
	White = color.RGBA{255, 255, 255, 255}
)

// shape reports whether the point (x, y) belongs to the shape, in
// coordinates where the shape spans -1..1 and y points up.
type shape func(x, y float64) bool

type screen struct {
	bg    color.RGBA
	shape shape // nil: background only
}

var screens = map[string]screen{
	"off":     {Black, nil},
	"ready":   {Green, disc},
	"calling": {Green, dots},
	"ringing": {Blue, discInRing},
	"in_call": {Blue, heart},
	// InCallVoice: a call the data budget keeps to voice; no picture comes.
	"in_call_voice": {Blue, voiceHeart},
	"pairing":       {Blue, dots},
	"pairable":      {Blue, ring},
	"no_answer":     {Red, ring},
	// Unreachable, the device.Pattern: the child's call reached nobody.
	"unreachable": {Red, brokenHeart},
	"offline":     {Red, bar},
	"fault":       {Red, cross},
}

// States lists the states there is a screen for, in a fixed order.
func States() []string {
	return []string{"off", "ready", "calling", "ringing", "in_call", "in_call_voice", "pairing", "pairable", "no_answer", "unreachable", "offline", "fault"}
}

// Render draws state's screen over all of dst. An unknown state draws the
// fault screen and returns ErrUnknownState.
func Render(dst *image.RGBA, state string) error {
	s, ok := screens[state]
	var err error
	if !ok {
		s, err = screens["fault"], fmt.Errorf("%w: %q", ErrUnknownState, state)
	}
	r := dst.Rect
	w, h := r.Dx(), r.Dy()
	// Shape units: 1 = 35% of the shorter side, so the shape spans 70%.
	unit := 0.35 * float64(min(w, h))
	cx, cy := float64(r.Min.X)+float64(w)/2, float64(r.Min.Y)+float64(h)/2
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := dst.Pix[dst.PixOffset(r.Min.X, y):]
		v := (cy - (float64(y) + 0.5)) / unit
		for x := range w {
			c := s.bg
			if s.shape != nil && s.shape((float64(r.Min.X+x)+0.5-cx)/unit, v) {
				c = White
			}
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = c.R, c.G, c.B, c.A
		}
	}
	return err
}

// Show draws state's screen on d at its size. An unknown state shows the
// fault screen and returns ErrUnknownState.
func Show(d fb.Display, state string) error {
	img := image.NewRGBA(d.Bounds())
	err := Render(img, state)
	if derr := d.Draw(img); derr != nil {
		return fmt.Errorf("screen: show %q: %w", state, derr)
	}
	return err
}

func disc(x, y float64) bool { return x*x+y*y <= 1 }

func ring(x, y float64) bool {
	r2 := x*x + y*y
	return r2 <= 1 && r2 >= 0.72*0.72
}

func discInRing(x, y float64) bool {
	r2 := x*x + y*y
	return r2 <= 0.3*0.3 || (r2 <= 1 && r2 >= 0.75*0.75)
}

// dots are three discs in a row.
func dots(x, y float64) bool {
	for _, c := range []float64{-0.7, 0, 0.7} {
		if (x-c)*(x-c)+y*y <= 0.28*0.28 {
			return true
		}
	}
	return false
}

// heart is the curve (x² + y² − 1)³ = x²y³, scaled to fit -1..1 (it spans
// about ±1.14 across and -1..1.2 down).
func heart(x, y float64) bool {
	x, y = x*1.15, y*1.15+0.1
	a := x*x + y*y - 1
	return a*a*a-x*x*y*y*y <= 0
}

// voiceHeart is a small heart on the left with two arcs of sound to its
// right: the parent, heard and not seen.
func voiceHeart(x, y float64) bool {
	if heart((x+0.55)*2, y*2) {
		return true
	}
	dx := x + 0.2
	r := dx*dx + y*y
	arc := (r >= 0.52*0.52 && r <= 0.66*0.66) || (r >= 0.85*0.85 && r <= 1.0)
	return arc && dx > 0 && y <= 0.8*dx && y >= -0.8*dx
}

// brokenHeart is the heart split across its middle: the parent, out of reach.
func brokenHeart(x, y float64) bool { return heart(x, y) && (y < -0.15 || y > 0.15) }

func bar(x, y float64) bool { return x >= -1 && x <= 1 && y >= -0.2 && y <= 0.2 }

// cross is two bars 0.4 thick along the diagonals, inside the unit square.
func cross(x, y float64) bool {
	if x < -0.8 || x > 0.8 || y < -0.8 || y > 0.8 {
		return false
	}
	const half = 0.2 * 1.4142 // half thickness measured along x
	d1, d2 := x-y, x+y
	return (d1 >= -half && d1 <= half) || (d2 >= -half && d2 <= half)
}
