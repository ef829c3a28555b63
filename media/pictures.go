package media

import "image"

// pictureSlot is the Receiver's latest decoded picture, and the spare one
// the next is decoded into. A picture handed out (LatestFrame: the screen,
// the panel's preview, tests) is never written again, as LatestFrame
// promises; one nobody was given is recycled when the next replaces it.
// A terminal without a screen, in a call nobody previews, then decodes
// into two pictures for the whole call instead of allocating 115 KB a
// frame (1.7 MB/s at 320×240, 15 fps, which the garbage collector had to
// chase: BenchmarkTerminalCallCPU). Guarded by the Receiver's mu.
type pictureSlot struct {
	latest *image.YCbCr
	taken  bool // latest was handed out
	spare  *image.YCbCr
}

// buffer is a picture to decode into, owned by the caller until it hands
// it back (put or giveBack); nil when there is none to spare.
func (p *pictureSlot) buffer() *image.YCbCr {
	b := p.spare
	p.spare = nil
	return b
}

// giveBack returns a buffer that did not become a picture (the unit held
// none, or did not decode).
func (p *pictureSlot) giveBack(b *image.YCbCr) {
	if b != nil && p.spare == nil {
		p.spare = b
	}
}

// put makes img the latest picture. The one it replaces becomes the spare
// unless it was handed out; a buffer put did not use (the picture changed
// size) is dropped.
func (p *pictureSlot) put(img *image.YCbCr) {
	if old := p.latest; old != nil && old != img && !p.taken {
		p.spare = old
	}
	p.latest, p.taken = img, false
}

// take hands out the latest picture (nil before the first): it is never
// written again.
func (p *pictureSlot) take() image.Image {
	if p.latest == nil {
		return nil
	}
	p.taken = true
	return p.latest
}
