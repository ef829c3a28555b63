package synth

import (
	"fmt"
	"image"
	"math"
)

// Light is how bright the room is, which sets the camera's gain and so its
// noise.
type Light int

const (
	// Daylight is a room lit through a window: full range, mild sensor noise
	// (σ ≈ 2.2 luma levels), as a cheap webcam gives indoors by day.
	Daylight Light = iota
	// LowLight is the same room in the evening under one lamp: the picture
	// is dark and flat, the camera's gain turned up so the noise is strong
	// (σ ≈ 5.5 luma levels) and colours are washed out. It is the hard case
	// for an encoder at a low bitrate: noise costs bits and hides detail.
	LowLight
)

func (l Light) String() string {
	switch l {
	case Daylight:
		return "daylight"
	case LowLight:
		return "low-light"
	}
	return fmt.Sprintf("light(%d)", int(l))
}

// lighting is what a Light does to the picture: the exposure curve, the
// sensor noise (standard deviation in levels) and the colour saturation.
type lighting struct {
	gain, black    float64
	noiseY, noiseC float64
	saturation     float64
}

func (l Light) params() (lighting, error) {
	switch l {
	case Daylight:
		return lighting{gain: 1, black: 0, noiseY: 2.2, noiseC: 1, saturation: 1}, nil
	case LowLight:
		return lighting{gain: 0.42, black: 14, noiseY: 5.5, noiseC: 3, saturation: 0.6}, nil
	}
	return lighting{}, fmt.Errorf("synth: unknown light %d", int(l))
}

// SceneOptions configure a Scene.
type SceneOptions struct {
	Width, Height int // even, as I420 needs
	// FPS turns frame numbers into scene time: the child moves at the same
	// speed whatever the frame rate.
	FPS int
	// Seed picks the child's looks, the room's furniture and the timing of
	// every blink, word and wave; the same seed gives the same frames.
	Seed  uint64
	Light Light
}

// Scene is a child in front of the terminal's camera at home, as the
// benchmarks need it to measure picture quality honestly: a face that sways
// and leans, blinks, looks about and talks, now and then waves a hand, in a
// room with texture (books, wallpaper, a window with a tree, a sofa), seen
// through a cheap sensor's noise. Frame n is a pure function of the options
// and n, so the receiving end of a test call can render the very picture
// that was sent and compare (see ReadStamp and package media/quality).
//
// Drawing is integer and table work on top of a background rendered once:
// BenchmarkScene measures it at 320×240 and 640×480.
type Scene struct {
	o     SceneOptions
	light lighting
	bg    *image.YCbCr
	tex   []int8 // 256×256 smooth value noise, −127..127, for every texture

	noiseY, noiseC []int16    // Gaussian noise tables, read at a random offset per row
	toneY, toneC   [256]int16 // the exposure curve, and saturation about 128
	clamp          [1024]uint8

	look look
}

// look is what the seed decides once: colours and the child's rhythm.
type look struct {
	skin, hair, shirtA, shirtB, lips ycc
	wall, sofa                       ycc
	sway                             [3]sine // x sway (two) and a vertical bob
	breath                           sine    // slow lean in and out
	talkRate                         float64 // syllables per second
}

type ycc struct{ y, cb, cr float64 }

type sine struct{ amp, freq, phase float64 }

func (w sine) at(t float64) float64 { return w.amp * math.Sin(2*math.Pi*w.freq*t+w.phase) }

const (
	texSize   = 256
	noiseSize = 1 << 14
)

// NewScene prepares a scene: the background, textures and noise tables.
func NewScene(o SceneOptions) (*Scene, error) {
	if o.Width <= 0 || o.Height <= 0 || o.Width%2 != 0 || o.Height%2 != 0 || o.Width > 4096 || o.Height > 4096 {
		return nil, fmt.Errorf("synth: scene size %dx%d: must be positive, even and at most 4096", o.Width, o.Height)
	}
	if o.FPS <= 0 || o.FPS > 120 {
		return nil, fmt.Errorf("synth: scene fps %d: must be 1..120", o.FPS)
	}
	light, err := o.Light.params()
	if err != nil {
		return nil, err
	}
	s := &Scene{o: o, light: light}
	r := mix(o.Seed, 1)
	s.look = newLook(r)
	s.tex = valueNoise(mix(o.Seed, 2))
	s.noiseY = gaussTable(mix(o.Seed, 3), light.noiseY, noiseSize+o.Width)
	s.noiseC = gaussTable(mix(o.Seed, 4), light.noiseC, noiseSize+o.Width/2)
	for v := range 256 {
		s.toneY[v] = int16(math.Round(light.black + light.gain*float64(v)))
		s.toneC[v] = int16(math.Round(128 + light.saturation*float64(v-128)))
	}
	for i := range s.clamp {
		s.clamp[i] = uint8(min(255, max(0, i-384)))
	}
	s.bg = s.background(mix(o.Seed, 5))
	return s, nil
}

// Options returns the scene's options.
func (s *Scene) Options() SceneOptions { return s.o }

func newLook(r *splitmix) look {
	skins := []ycc{{185, 112, 148}, {160, 110, 152}, {130, 112, 150}, {100, 116, 146}}
	hairs := []ycc{{35, 126, 132}, {60, 118, 140}, {110, 108, 146}, {25, 128, 128}}
	pick := func(c []ycc) ycc { return c[r.intn(len(c))] }
	colour := func(y float64) ycc { return ycc{y, r.between(80, 176), r.between(80, 176)} }
	l := look{
		skin: pick(skins), hair: pick(hairs),
		shirtA: colour(r.between(60, 120)), shirtB: colour(r.between(150, 220)),
		lips: ycc{0, 118, 168},
		wall: ycc{r.between(165, 195), r.between(112, 136), r.between(124, 140)},
		sofa: colour(r.between(70, 120)),
	}
	l.sway[0] = sine{r.between(0.035, 0.055), r.between(0.15, 0.3), r.between(0, 2*math.Pi)}
	l.sway[1] = sine{r.between(0.012, 0.02), r.between(0.6, 0.9), r.between(0, 2*math.Pi)}
	l.sway[2] = sine{r.between(0.01, 0.018), r.between(0.3, 0.5), r.between(0, 2*math.Pi)}
	l.breath = sine{r.between(0.03, 0.05), r.between(0.08, 0.14), r.between(0, 2*math.Pi)}
	l.talkRate = r.between(3.5, 5)
	return l
}

// valueNoise is a smooth random texture: white noise blurred twice.
func valueNoise(r *splitmix) []int8 {
	a := make([]float64, texSize*texSize)
	for i := range a {
		a[i] = r.float() - 0.5
	}
	b := make([]float64, len(a))
	for range 2 {
		for y := range texSize { // horizontal box blur, radius 2, wrapping
			for x := range texSize {
				var sum float64
				for d := -2; d <= 2; d++ {
					sum += a[y*texSize+(x+d)&(texSize-1)]
				}
				b[y*texSize+x] = sum
			}
		}
		for y := range texSize { // vertical
			for x := range texSize {
				var sum float64
				for d := -2; d <= 2; d++ {
					sum += b[((y+d)&(texSize-1))*texSize+x]
				}
				a[y*texSize+x] = sum
			}
		}
	}
	peak := 0.0
	for _, v := range a {
		peak = max(peak, math.Abs(v))
	}
	t := make([]int8, len(a))
	for i, v := range a {
		t[i] = int8(math.Round(127 * v / peak))
	}
	return t
}

// texAt is the texture at (x, y), wrapping.
func (s *Scene) texAt(x, y int) int { return int(s.tex[(y&(texSize-1))*texSize+x&(texSize-1)]) }

// gaussTable is n samples of N(0, σ²) (Box–Muller), rounded.
func gaussTable(r *splitmix, sigma float64, n int) []int16 {
	t := make([]int16, n)
	for i := range t {
		u1, u2 := r.float(), r.float()
		g := math.Sqrt(-2*math.Log(1-u1)) * math.Cos(2*math.Pi*u2)
		t[i] = int16(math.Round(sigma * g))
	}
	return t
}

// Frame renders frame n as a new picture.
func (s *Scene) Frame(n int) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, s.o.Width, s.o.Height), image.YCbCrSubsampleRatio420)
	s.draw(img, n)
	return img
}

// draw renders frame n into img, a fresh I420 picture of the scene's size.
func (s *Scene) draw(img *image.YCbCr, n int) {
	copy(img.Y, s.bg.Y)
	copy(img.Cb, s.bg.Cb)
	copy(img.Cr, s.bg.Cr)
	t := float64(n) / float64(s.o.FPS)
	p := s.pose(t)
	c := canvas{img}
	s.drawChild(c, p)
	s.expose(img, n)
	drawStamp(img, n)
}

// expose applies the light's exposure curve and the sensor's noise: fresh
// noise every frame, as a sensor's is, which is what costs an encoder bits.
func (s *Scene) expose(img *image.YCbCr, n int) {
	r := mix(s.o.Seed, 6, uint64(n))
	w, h := s.o.Width, s.o.Height
	for y := range h {
		row := img.Y[y*img.YStride : y*img.YStride+w]
		noise := s.noiseY[r.intn(noiseSize):]
		for x, v := range row {
			row[x] = s.clamp[384+int(s.toneY[v])+int(noise[x])]
		}
	}
	cw, ch := (w+1)/2, (h+1)/2
	for _, plane := range [][]uint8{img.Cb, img.Cr} {
		for y := range ch {
			row := plane[y*img.CStride : y*img.CStride+cw]
			noise := s.noiseC[r.intn(noiseSize):]
			for x, v := range row {
				row[x] = s.clamp[384+int(s.toneC[v])+int(noise[x])]
			}
		}
	}
}

// pose is where the child is and what its face does at one moment.
type pose struct {
	cx, cy, rx, ry float64 // head ellipse, pixels
	tilt           float64 // right eye's height minus the left's, in ry
	gazeX, gazeY   float64 // −1..1
	lid            float64 // 0 open .. 1 shut
	mouth          float64 // 0 shut .. 1 wide
	brow           float64 // 0 .. 1 raised
	hand           float64 // 0 hidden .. 1 fully up
	handX          float64 // hand centre, pixels
}

// Event slots: each kind of event (a blink, a sentence, a wave, a lean
// towards the camera) gets at most one per slot, at a time and of a length
// the seed decides, so any frame's pose is computed without replaying the
// ones before it.
const (
	blinkSlot = 3.5
	talkSlot  = 3.0
	gazeSlot  = 1.4
	waveSlot  = 9.0
	leanSlot  = 7.0
)

// event returns the progress 0..1 through the event of kind in t's slot, or
// −1 outside it; chance is the share of slots that have one.
func (s *Scene) event(kind uint64, slot, t, chance, minLen, maxLen float64) (float64, *splitmix) {
	i := math.Floor(t / slot)
	r := mix(s.o.Seed, 7, kind, uint64(int64(i)))
	if r.float() >= chance {
		return -1, r
	}
	length := r.between(minLen, maxLen)
	start := i*slot + r.between(0, slot-length)
	if t < start || t >= start+length {
		return -1, r
	}
	return (t - start) / length, r
}

// bump is 0 at the ends of 0..1 and 1 in the middle, smoothly.
func bump(u float64) float64 { return 0.5 - 0.5*math.Cos(2*math.Pi*u) }

// plateau rises over the first edge of 0..1, holds, and falls over the last.
func plateau(u, edge float64) float64 {
	switch {
	case u < edge:
		return 0.5 - 0.5*math.Cos(math.Pi*u/edge)
	case u > 1-edge:
		return 0.5 - 0.5*math.Cos(math.Pi*(1-u)/edge)
	}
	return 1
}

func (s *Scene) pose(t float64) pose {
	w, h := float64(s.o.Width), float64(s.o.Height)
	l := &s.look
	scale := 1 + l.breath.at(t)
	if u, _ := s.event(1, leanSlot, t, 0.45, 1.2, 2.2); u >= 0 {
		scale += 0.22 * bump(u) // leans in to look at the screen
	}
	p := pose{
		cx: w*0.5 + w*(l.sway[0].at(t)+l.sway[1].at(t)),
		cy: h*0.43 + h*l.sway[2].at(t),
		ry: h * 0.22 * scale,
	}
	p.rx = p.ry * 0.78
	p.tilt = 0.6 * l.sway[1].at(t) / l.sway[1].amp * 0.05
	if u, _ := s.event(2, blinkSlot, t, 0.9, 0.15, 0.25); u >= 0 {
		p.lid = bump(u)
	}
	_, gr := s.event(3, gazeSlot, t, 0, 0, 0) // a new place to look every slot
	p.gazeX, p.gazeY = gr.between(-1, 1), gr.between(-0.6, 0.6)
	if u, r := s.event(4, talkSlot, t, 0.7, 1.0, 2.6); u >= 0 {
		rate := l.talkRate * r.between(0.85, 1.15)
		syll := math.Abs(math.Sin(math.Pi * rate * (t - math.Floor(t/talkSlot)*talkSlot)))
		p.mouth = plateau(u, 0.1) * (0.25 + 0.75*syll)
		p.brow = 0.5 * plateau(u, 0.2)
	}
	if u, r := s.event(5, waveSlot, t, 0.5, 1.8, 3.0); u >= 0 {
		p.hand = plateau(u, 0.2)
		side := 1.0
		if r.float() < 0.5 {
			side = -1
		}
		p.handX = p.cx + side*2.1*p.rx + 0.05*w*math.Sin(2*math.Pi*2.2*t)
	}
	return p
}

func (s *Scene) drawChild(c canvas, p pose) {
	l := &s.look
	w, h := float64(s.o.Width), float64(s.o.Height)
	skin := l.skin
	shade := func(col ycc, dy float64) ycc { col.y += dy; return col }

	// Shoulders and a striped shirt, following the head at 60%: the top of
	// a tall ellipse whose centre is below the picture.
	top := p.cy + p.ry*1.22
	bx := w*0.5 + 0.6*(p.cx-w*0.5)
	bh := math.Max(h-top, 1) * 1.15
	bw := p.rx * 2.6
	period := math.Max(2, h*0.045*p.ry/(h*0.22))
	ibx, itop := int(bx), int(top)
	c.ellipseRows(bx, top+bh, bw, bh, func(y, x0, x1 int, _ float64) {
		col := l.shirtA
		if int(math.Floor((float64(y)-top)/period))&1 == 1 {
			col = l.shirtB
		}
		c.textured(y, x0, x1, col, func(x int) int { return s.texAt(x-ibx, y-itop) * 6 / 127 })
	})
	// Neck, in the chin's shadow.
	c.rect(p.cx-p.rx*0.42, p.cy+p.ry*0.7, p.rx*0.84, p.ry*0.6, shade(skin, -28))

	// Hair behind and around the head, then the ears, then the face.
	hx, hy := int(p.cx), int(p.cy)
	hair := func(y, x0, x1 int) {
		c.textured(y, x0, x1, l.hair, func(x int) int { return s.texAt((x-hx)*2, (y-hy)/2) * 16 / 127 })
	}
	c.ellipseRows(p.cx, p.cy-p.ry*0.06, p.rx*1.1, p.ry*1.04, func(y, x0, x1 int, _ float64) { hair(y, x0, x1) })
	for _, side := range []float64{-1, 1} {
		c.ellipse(p.cx+side*p.rx*0.97, p.cy+p.ry*0.08, p.rx*0.17, p.ry*0.24, shade(skin, -14))
	}
	c.ellipseRows(p.cx, p.cy, p.rx, p.ry, func(y, x0, x1 int, dy float64) {
		// The fringe comes lower at the temples: hair where dy < −0.32 + 0.4·dx².
		fringe := 0.0
		if f := (dy + 0.32) / 0.4; f > 0 {
			fringe = p.rx * math.Sqrt(f)
		}
		f0, f1 := min(x1, max(x0, int(math.Round(p.cx-fringe)))), max(x0, min(x1, int(math.Round(p.cx+fringe))))
		hair(y, x0, f0)
		hair(y, f1, x1)
		// Skin, brighter in the middle and on the window's side.
		c.textured(y, f0, f1, skin, func(x int) int {
			dx := (float64(x) + 0.5 - p.cx) / p.rx
			return int(22*(1-dx*dx-dy*dy)+12*dx) + s.texAt(x-hx, y-hy)*2/127
		})
	})

	// Eyes: white, an iris looking about, a pupil, and the upper lid that
	// comes down in a blink.
	ew, eh := p.rx*0.21, p.ry*0.1
	lid := shade(skin, -10)
	for i, side := range []float64{-1, 1} {
		ex := p.cx + side*p.rx*0.38
		ey := p.cy - p.ry*0.02 + side*p.tilt*p.ry
		lidY := ey - eh + 2*eh*p.lid
		lidded := func(col ycc) func(y, x0, x1 int, dy float64) {
			return func(y, x0, x1 int, _ float64) {
				if float64(y) < lidY {
					c.hline(y, x0, x1, lid)
				} else {
					c.hline(y, x0, x1, col)
				}
			}
		}
		c.ellipseRows(ex, ey, ew, eh, lidded(ycc{225, 128, 128}))
		ix, iy := ex+p.gazeX*ew*0.45, ey+p.gazeY*eh*0.35
		if p.lid < 0.8 {
			c.ellipseRows(ix, iy, eh*0.8, eh*0.8, lidded(ycc{70, 135, 138}))
			c.ellipseRows(ix, iy, eh*0.38, eh*0.38, lidded(ycc{20, 128, 128}))
		}
		// Brows, raised while talking.
		by := ey - eh*2.3 - p.brow*eh*0.8 - float64(i)*p.tilt*p.ry*0.2
		c.rect(ex-ew*0.9, by, ew*1.8, math.Max(1, eh*0.45), shade(l.hair, 10))
	}
	// Nose: the shadows of the nostrils.
	c.ellipse(p.cx, p.cy+p.ry*0.24, p.rx*0.14, p.ry*0.05, shade(skin, -30))

	// Mouth: lips, and inside them the dark of an open mouth with a glimpse
	// of teeth on the wider syllables.
	mx, my := p.cx, p.cy+p.ry*0.5
	mw := p.rx * 0.3 * (1 - 0.2*p.mouth)
	mh := p.ry * (0.02 + 0.14*p.mouth)
	lips := l.lips
	lips.y = skin.y - 30
	c.ellipse(mx, my, mw, mh+p.ry*0.035, lips)
	if p.mouth > 0.08 {
		c.ellipseRows(mx, my, mw*0.82, mh, func(y, x0, x1 int, dy float64) {
			if p.mouth > 0.45 && dy < -0.5 {
				c.hline(y, x0, x1, ycc{205, 128, 126}) // teeth
			} else {
				c.hline(y, x0, x1, ycc{35, 124, 150})
			}
		})
	}

	// A waving hand on its forearm, coming up from below the picture.
	if p.hand > 0 {
		hy := h + p.rx*0.6 - p.hand*(h-p.cy+p.rx*0.2)
		r := p.rx * 0.45
		c.rect(p.handX-r*0.7, hy+r*0.5, r*1.4, h, l.shirtA)
		hand := shade(skin, 6)
		c.ellipse(p.handX, hy, r, r*1.1, hand)
		for f := range 4 {
			fx := p.handX - r*0.75 + float64(f)*r*0.5
			fl := r * (0.9 + 0.15*float64(f%3))
			c.rect(fx-r*0.16, hy-r*0.8-fl, r*0.32, fl, shade(hand, -float64(f)*3))
		}
		c.ellipse(p.handX+r*1.05, hy-r*0.1, r*0.28, r*0.5, shade(hand, -8))
	}
}

// background renders the room once: a papered wall lit from a window on
// the right, a bookcase on the left, a child's drawing in a frame, the sofa
// the child sits on.
func (s *Scene) background(r *splitmix) *image.YCbCr {
	w, h := s.o.Width, s.o.Height
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	c := canvas{img}
	fw, fh := float64(w), float64(h)
	wall := s.look.wall
	stripe := math.Max(4, fw/18)
	for y := range h {
		for x := range w {
			v := wall.y - 18*float64(y)/fh + 20*float64(x)/fw
			v += 4*math.Sin(2*math.Pi*float64(x)/stripe) + float64(s.texAt(x, y))*5/127
			c.set(x, y, ycc{v, wall.cb, wall.cr})
		}
	}

	// The window: sky, a tree's crown moving nothing (a still day), the
	// frame and its cross bars.
	wx, wy, ww, wh := fw*0.68, fh*0.06, fw*0.27, fh*0.46
	c.rect(wx-fw*0.015, wy-fw*0.015, ww+fw*0.03, wh+fw*0.03, ycc{232, 128, 128})
	c.fill(wx, wy, ww, wh, func(x, y int) ycc {
		u := (float64(y) - wy) / wh
		tree := float64(s.texAt(x, y+90)) + 160*(u-0.5)
		if tree > 10 {
			return ycc{95 + float64(s.texAt(x*3, y*3))*30/127, 100, 112}
		}
		return ycc{236 - 20*u, 140, 116}
	})
	bar := math.Max(1, fw*0.012)
	c.rect(wx+ww/2-bar/2, wy, bar, wh, ycc{228, 128, 128})
	c.rect(wx, wy+wh/2-bar/2, ww, bar, ycc{228, 128, 128})

	// The bookcase: a wooden carcass, three shelves of books.
	kx, ky, kw, kh := fw*0.02, fh*0.1, fw*0.28, fh*0.6
	wood := ycc{88, 114, 146}
	c.fill(kx, ky, kw, kh, func(x, y int) ycc {
		col := wood
		col.y += float64(s.texAt(x/4, y*4)) * 10 / 127 // grain
		return col
	})
	inner := kw - fw*0.03
	for shelf := range 3 {
		sy := ky + fh*0.02 + float64(shelf)*kh/3
		sh := kh/3 - fh*0.03
		c.rect(kx+fw*0.015, sy, inner, sh, ycc{45, 122, 136})
		for x := kx + fw*0.018; x < kx+fw*0.015+inner-fw*0.01; {
			bw := r.between(fw*0.012, fw*0.032)
			bh := sh * r.between(0.7, 0.97)
			col := ycc{r.between(50, 175), r.between(85, 171), r.between(85, 171)}
			c.rect(x, sy+sh-bh, bw-1, bh, col)
			c.rect(x, sy+sh-bh*0.7, bw-1, math.Max(1, bh*0.08), ycc{col.y + 40, col.cb, col.cr})
			x += bw
		}
	}

	// A child's drawing in a frame: a sun, a house, grass.
	px, py, pw, ph := fw*0.36, fh*0.08, fw*0.17, fh*0.2
	c.rect(px, py, pw, ph, ycc{70, 120, 140})
	c.rect(px+pw*0.06, py+ph*0.08, pw*0.88, ph*0.84, ycc{235, 126, 130})
	c.ellipse(px+pw*0.28, py+ph*0.32, pw*0.11, pw*0.11, ycc{200, 60, 160})
	c.rect(px+pw*0.5, py+ph*0.45, pw*0.3, ph*0.35, ycc{110, 100, 190})
	c.rect(px+pw*0.06, py+ph*0.8, pw*0.88, ph*0.12, ycc{140, 90, 90})

	// The sofa's back and arm, in a woven fabric.
	sofa := s.look.sofa
	sy := fh * 0.7
	c.fill(0, sy, fw, fh-sy, func(x, y int) ycc {
		col := sofa
		col.y += float64(s.texAt(x*2, y*2)) * 9 / 127
		if (x+y)%4 == 0 {
			col.y -= 4 // the weave
		}
		return col
	})
	for _, sx := range []float64{fw * 0.33, fw * 0.66} {
		c.rect(sx, sy, math.Max(1, fw*0.006), fh-sy, ycc{sofa.y - 25, sofa.cb, sofa.cr})
	}
	c.fill(0, fh*0.78, fw*0.12, fh*0.22, func(x, y int) ycc { return ycc{sofa.y + 15 + float64(s.texAt(x*2, y*2))*9/127, sofa.cb, sofa.cr} })
	return img
}

// canvas draws in an I420 picture with colours in float levels, clipped.
// The child is drawn row by row (hline, textured), as it is redrawn every
// frame; the background, drawn once, pixel by pixel (set, fill).
type canvas struct{ img *image.YCbCr }

func (c canvas) set(x, y int, col ycc) {
	img := c.img
	img.Y[y*img.YStride+x] = level(col.y)
	// The last pixel painted in a 2×2 block sets its colour: a shape one
	// pixel wide still gets its own.
	ci := (y/2)*img.CStride + x/2
	img.Cb[ci], img.Cr[ci] = level(col.cb), level(col.cr)
}

func level(v float64) uint8 { return clampByte(int(math.Round(v))) }

func clampByte(v int) uint8 {
	if uint(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}

// hline paints row y from x0 to x1 (exclusive), already clipped.
func (c canvas) hline(y, x0, x1 int, col ycc) {
	if x0 >= x1 {
		return
	}
	row := c.img.Y[y*c.img.YStride+x0 : y*c.img.YStride+x1]
	v := level(col.y)
	for i := range row {
		row[i] = v
	}
	c.chroma(y, x0, x1, col)
}

// textured paints row y from x0 to x1 in col, its luma offset by tex(x).
func (c canvas) textured(y, x0, x1 int, col ycc, tex func(x int) int) {
	if x0 >= x1 {
		return
	}
	row := c.img.Y[y*c.img.YStride:]
	base := int(math.Round(col.y))
	for x := x0; x < x1; x++ {
		row[x] = clampByte(base + tex(x))
	}
	c.chroma(y, x0, x1, col)
}

func (c canvas) chroma(y, x0, x1 int, col ycc) {
	off := (y / 2) * c.img.CStride
	cb, cr := level(col.cb), level(col.cr)
	for x := x0 / 2; x <= (x1-1)/2; x++ {
		c.img.Cb[off+x], c.img.Cr[off+x] = cb, cr
	}
}

// fill paints the rectangle x, y, w, h with paint(x, y).
func (c canvas) fill(x0, y0, w, h float64, paint func(x, y int) ycc) {
	b := c.img.Rect
	for y := max(b.Min.Y, int(math.Round(y0))); y < min(b.Max.Y, int(math.Round(y0+h))); y++ {
		for x := max(b.Min.X, int(math.Round(x0))); x < min(b.Max.X, int(math.Round(x0+w))); x++ {
			c.set(x, y, paint(x, y))
		}
	}
}

func (c canvas) rect(x0, y0, w, h float64, col ycc) {
	b := c.img.Rect
	xa, xb := max(b.Min.X, int(math.Round(x0))), min(b.Max.X, int(math.Round(x0+w)))
	for y := max(b.Min.Y, int(math.Round(y0))); y < min(b.Max.Y, int(math.Round(y0+h))); y++ {
		c.hline(y, xa, xb, col)
	}
}

// ellipseRows calls row for each row y of the ellipse centred on cx, cy
// with radii rx, ry, with its span x0..x1 (clipped, x1 exclusive) and dy,
// the row's position in radii (−1..1).
func (c canvas) ellipseRows(cx, cy, rx, ry float64, row func(y, x0, x1 int, dy float64)) {
	if rx <= 0 || ry <= 0 {
		return
	}
	b := c.img.Rect
	for y := max(b.Min.Y, int(math.Ceil(cy-ry))); y < min(b.Max.Y, int(math.Floor(cy+ry))+1); y++ {
		dy := (float64(y) + 0.5 - cy) / ry
		if dy*dy >= 1 {
			continue
		}
		half := rx * math.Sqrt(1-dy*dy)
		x0, x1 := max(b.Min.X, int(math.Round(cx-half))), min(b.Max.X, int(math.Round(cx+half)))
		if x0 < x1 {
			row(y, x0, x1, dy)
		}
	}
}

// ellipse paints a solid ellipse.
func (c canvas) ellipse(cx, cy, rx, ry float64, col ycc) {
	c.ellipseRows(cx, cy, rx, ry, func(y, x0, x1 int, _ float64) { c.hline(y, x0, x1, col) })
}
