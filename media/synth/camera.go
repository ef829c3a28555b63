// Package synth provides the simulated board's camera and microphone.
//
// They exist so that the demo terminal and the tests push realistic media
// through mediadevices' real encoders: a picture that behaves like a camera
// (mostly still background, a few moving objects, mild sensor noise) so that
// H.264 rate control has something honest to work with. mediadevices' own
// videotest driver emits full-frame noise that needs ~7 Mbit/s and says
// nothing about what a call costs.
package synth

import (
	"errors"
	"fmt"
	"image"
	"io"
	"sync/atomic"
	"time"
)

// CameraOptions configure a synthetic camera.
type CameraOptions struct {
	Width, Height int // even, as I420 needs
	FPS           int
	// Unpaced makes Read return the next frame at once instead of waiting for
	// the next tick: for tests and benchmarks that encode faster than real time.
	Unpaced bool
	// Socket, if set, is the simulated socket the camera is plugged into.
	Socket *Socket
}

// Camera is a synthetic camera. It implements mediadevices' VideoSource
// (video.Reader plus ID and Close), so it is wrapped with
// mediadevices.NewVideoTrack like any other source.
type Camera struct {
	opts  CameraOptions
	bg    *image.YCbCr // static background, copied into every frame
	pace  *pacer
	frame int
	rng   uint32

	latest atomic.Pointer[image.YCbCr]
	frames atomic.Int64
}

// ErrUnplugged is what a synthetic camera says while its socket is empty.
var ErrUnplugged = errors.New("synth: camera unplugged")

// Socket is where a simulated board's camera plugs in: Unplug makes the
// cameras opened on it fail their Read with ErrUnplugged, as a USB camera's
// does when it is pulled out mid-call, and NewCamera fails until Replug. The
// zero value is a socket with its camera in.
type Socket struct{ out atomic.Bool }

// Unplug pulls the camera out.
func (s *Socket) Unplug() { s.out.Store(true) }

// Replug puts it back.
func (s *Socket) Replug() { s.out.Store(false) }

// Plugged reports whether the camera is in. A nil Socket always is.
func (s *Socket) Plugged() bool { return s == nil || !s.out.Load() }

// NewCamera returns a camera producing opts.Width×opts.Height I420 frames.
func NewCamera(opts CameraOptions) (*Camera, error) {
	if !opts.Socket.Plugged() {
		return nil, ErrUnplugged
	}
	if opts.Width <= 0 || opts.Height <= 0 || opts.Width%2 != 0 || opts.Height%2 != 0 {
		return nil, fmt.Errorf("synth: camera size %dx%d: must be positive and even", opts.Width, opts.Height)
	}
	if opts.FPS <= 0 || opts.FPS > 120 {
		return nil, fmt.Errorf("synth: camera fps %d: must be 1..120", opts.FPS)
	}
	c := &Camera{
		opts: opts,
		bg:   background(opts.Width, opts.Height),
		pace: newPacer(time.Second/time.Duration(opts.FPS), opts.Unpaced),
		rng:  0x9e3779b9,
	}
	return c, nil
}

// ID implements mediadevices.Source.
func (c *Camera) ID() string { return "synthetic-camera" }

// Close ends the stream: a blocked or later Read returns io.EOF.
func (c *Camera) Close() error {
	c.pace.close()
	return nil
}

// Read returns the next frame, waiting for its time unless Unpaced. Each frame
// is a new image that is never written again, so it may be shared freely
// (encoder, preview). Read is called by one goroutine at a time (mediadevices'
// broadcaster serialises it).
func (c *Camera) Read() (image.Image, func(), error) {
	if !c.pace.wait() {
		return nil, func() {}, io.EOF
	}
	if !c.opts.Socket.Plugged() {
		return nil, func() {}, ErrUnplugged
	}
	img := c.render()
	c.latest.Store(img)
	c.frames.Add(1)
	return img, func() {}, nil
}

// Latest returns the last frame produced, or nil before the first: the device
// panel's preview.
func (c *Camera) Latest() image.Image {
	if img := c.latest.Load(); img != nil {
		return img
	}
	return nil
}

// Frames returns how many frames have been produced.
func (c *Camera) Frames() int64 { return c.frames.Load() }

func (c *Camera) render() *image.YCbCr {
	w, h := c.opts.Width, c.opts.Height
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	copy(img.Y, c.bg.Y)
	copy(img.Cb, c.bg.Cb)
	copy(img.Cr, c.bg.Cr)

	n := c.frame
	c.frame++
	t := float64(n) / float64(c.opts.FPS) // seconds of "scene time"

	// A ball bouncing around the room: the "child" moving in front of the camera.
	r := h / 8
	bx := bounce(t*float64(w)/5, r, w-r)
	by := bounce(t*float64(h)/3.7, r, h-r)
	fillCircle(img, bx, by, r, 180, 90, 200) // warm orange

	// A slowly sliding panel, like a door or a passer-by.
	pw, ph := w/6, h/3
	px := bounce(t*float64(w)/9, 0, w-pw)
	fillRect(img, px, h-ph-h/10, pw, ph, 90, 160, 100) // blue

	// Frame counter and clock, top left, so a viewer can see motion and drops.
	scale := max(1, h/80)
	secs := n / c.opts.FPS
	drawDigits(img, 4*scale, 4*scale, scale, fmt.Sprintf("%02d:%02d", (secs/60)%100, secs%60))
	drawDigits(img, 4*scale, 16*scale, scale, fmt.Sprintf("%06d", n))

	// Mild sensor noise on luma: ±2 levels.
	x := c.rng
	for i := range img.Y {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		v := int(img.Y[i]) + int(x%5) - 2
		img.Y[i] = uint8(min(255, max(0, v)))
	}
	c.rng = x
	return img
}

// background paints a room: a wall with a soft vertical gradient, a floor, and
// a window. It is computed once and copied, as a still scene is most of a call.
func background(w, h int) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	floor := h * 3 / 4
	for y := range h {
		var l uint8
		if y < floor {
			l = uint8(150 + 50*y/floor) // lit from above
		} else {
			l = uint8(90 - 20*(y-floor)/(h-floor))
		}
		row := img.Y[y*img.YStride : y*img.YStride+w]
		for x := range row {
			row[x] = l
		}
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = 120, 136 // warm neutral
	}
	for cy := (floor + 1) / 2; cy < h/2; cy++ { // brownish floor
		for cx := range w / 2 {
			img.Cb[cy*img.CStride+cx], img.Cr[cy*img.CStride+cx] = 110, 145
		}
	}
	fillRect(img, w/2, h/10, w/4, h/4, 230, 140, 120) // bright bluish window
	return img
}

// bounce maps a monotonically growing position onto lo..hi and back.
func bounce(pos float64, lo, hi int) int {
	span := hi - lo
	if span <= 0 {
		return lo
	}
	p := int(pos) % (2 * span)
	if p > span {
		p = 2*span - p
	}
	return lo + p
}

func fillCircle(img *image.YCbCr, cx, cy, r int, yv, cb, cr uint8) {
	b := img.Rect
	for y := max(b.Min.Y, cy-r); y < min(b.Max.Y, cy+r); y++ {
		for x := max(b.Min.X, cx-r); x < min(b.Max.X, cx+r); x++ {
			dx, dy := x-cx, y-cy
			if dx*dx+dy*dy > r*r {
				continue
			}
			img.Y[img.YOffset(x, y)] = yv
			ci := img.COffset(x, y)
			img.Cb[ci], img.Cr[ci] = cb, cr
		}
	}
}

func fillRect(img *image.YCbCr, x0, y0, w, h int, yv, cb, cr uint8) {
	r := image.Rect(x0, y0, x0+w, y0+h).Intersect(img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.Y[img.YOffset(x, y)] = yv
			ci := img.COffset(x, y)
			img.Cb[ci], img.Cr[ci] = cb, cr
		}
	}
}

// Seven-segment glyphs: bits a,b,c,d,e,f,g from the top clockwise, g in the middle.
var segments = map[rune]uint8{
	'0': 0b0111111, '1': 0b0000110, '2': 0b1011011, '3': 0b1001111, '4': 0b1100110,
	'5': 0b1101101, '6': 0b1111101, '7': 0b0000111, '8': 0b1111111, '9': 0b1101111,
}

// drawDigits draws s in white 7-segment digits (each 4×8 units of scale
// pixels) on a dark plate; ':' draws two dots. No font package needed and it is
// cheap enough for every frame.
func drawDigits(img *image.YCbCr, x, y, s int, str string) {
	width := 0
	for _, ch := range str {
		if ch == ':' {
			width += 2 * s
		} else {
			width += 6 * s
		}
	}
	fillRect(img, x-s, y-s, width+2*s, 10*s, 16, 128, 128)
	for _, ch := range str {
		if ch == ':' {
			fillRect(img, x, y+2*s, s, s, 235, 128, 128)
			fillRect(img, x, y+5*s, s, s, 235, 128, 128)
			x += 2 * s
			continue
		}
		m := segments[ch]
		seg := func(bit uint8, sx, sy, sw, sh int) {
			if m&(1<<bit) != 0 {
				fillRect(img, x+sx*s, y+sy*s, sw*s, sh*s, 235, 128, 128)
			}
		}
		seg(0, 0, 0, 4, 1) // a
		seg(1, 3, 0, 1, 4) // b
		seg(2, 3, 4, 1, 4) // c
		seg(3, 0, 7, 4, 1) // d
		seg(4, 0, 4, 1, 4) // e
		seg(5, 0, 0, 1, 4) // f
		seg(6, 0, 3, 4, 1) // g
		x += 6 * s
	}
}
