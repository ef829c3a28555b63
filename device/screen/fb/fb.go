package fb

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tuanju/tuanju/device"
)

// DefaultPath is the first framebuffer: the only one on a board with one
// panel.
const DefaultPath = "/dev/fb0"

// Mode is a video mode to set before drawing, as fbset would.
type Mode struct {
	Width, Height int
	BitsPerPixel  int // 16, 24 or 32; the driver picks the colour layout
	// DoubleBuffer asks for a virtual screen twice as high, so frames are
	// drawn off screen and flipped in by panning. If the driver refuses it
	// (not enough memory) the mode is set without.
	DoubleBuffer bool
}

// Options configure Open. The zero value keeps the driver's mode and leaves
// the console alone.
type Options struct {
	// Mode, if set, is set with FBIOPUT_VSCREENINFO first. Fixed panels
	// (fbtft, tinydrm, DRM emulation) have one mode and need none; vfb and
	// some HDMI drivers start at 8 bpp and do.
	Mode *Mode
	// Range is how YCbCr pictures are converted (default VideoRange).
	Range Range
	// Console is a virtual terminal to switch to graphics mode while the
	// framebuffer is open, usually "/dev/tty0" (the current one): the
	// kernel's text console (fbcon) then stops drawing its cursor and
	// messages over the picture. Close switches it back. A board without
	// VTs has none; that is logged, not an error.
	Console string
	// Log defaults to slog.Default().
	Log *slog.Logger
}

// FB is an open framebuffer with its screen memory mapped. Its methods are
// safe for concurrent use (video frames and state screens may come from
// different goroutines); each draws a whole frame.
type FB struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	f       *os.File // nil once closed
	fd      uintptr
	console *os.File // VT in graphics mode, or nil
	kdMode  uintptr  // the console's mode before
	vinfo   varScreenInfo
	finfo   fixScreenInfo
	mem     []byte  // the mapped screen memory
	back    []byte  // back buffer: one screen at the screen's stride
	canvas  *Canvas // draws into back
	origin  int     // byte offset of the visible screen in mem (single buffer)
	pages   int     // 2 when flipping by panning, else 1
	shown   int     // page on screen when pages == 2
}

// Info describes an open framebuffer, for logs and the self-test.
type Info struct {
	Path   string
	ID     string // the driver's name for it, e.g. "Virtual FB", "fb_ili9341"
	Size   image.Point
	Format Format
	Stride int // bytes per row (line_length)
	Pages  int // 2 when frames flip by panning
}

// Open opens the framebuffer at path (usually DefaultPath) in the mode the
// driver is in. See OpenWith.
func Open(path string) (*FB, error) { return OpenWith(path, Options{}) }

// OpenWith opens the framebuffer at path, sets opts.Mode if given, checks
// that its pixel format is one Canvas can write, and maps its memory.
//
// When there is no framebuffer at path the error wraps device.ErrAbsent: a
// board without a screen is not a broken board. A mode the driver will not
// take wraps ErrModeRejected; an 8 bpp palette or other layout that cannot
// show video wraps ErrUnsupportedFormat.
func OpenWith(path string, opts Options) (*FB, error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "fb", "path", path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) {
			return nil, fmt.Errorf("fb: open %s: %w: %w", path, device.ErrAbsent, err)
		}
		return nil, fmt.Errorf("fb: open %s: %w", path, err)
	}
	fb := &FB{path: path, log: log, f: f, fd: f.Fd()}
	if err := fb.init(opts); err != nil {
		fb.release()
		return nil, fmt.Errorf("fb: open %s: %w", path, err)
	}
	i := fb.info()
	log.Info("framebuffer open", "id", i.ID, "size", i.Size, "format", i.Format.String(),
		"stride", i.Stride, "pages", i.Pages, "memory", len(fb.mem))
	return fb, nil
}

func (fb *FB) init(opts Options) error {
	if opts.Console != "" {
		fb.takeConsole(opts.Console)
	}
	if opts.Mode != nil {
		if err := fb.setMode(*opts.Mode); err != nil {
			return err
		}
	}
	var err error
	if fb.vinfo, err = getVar(fb.fd); err != nil {
		return fmt.Errorf("FBIOGET_VSCREENINFO: %w", err)
	}
	if fb.finfo, err = getFix(fb.fd); err != nil {
		return fmt.Errorf("FBIOGET_FSCREENINFO: %w", err)
	}
	v, x := &fb.vinfo, &fb.finfo
	format := v.format()
	if x.Type != typePackedPixels || x.Visual != visualTrueColor {
		return fmt.Errorf("%w: %s is type %d visual %d at %d bpp (want packed-pixel true colour)",
			ErrUnsupportedFormat, x.id(), x.Type, x.Visual, v.BitsPerPixel)
	}
	if v.Red.MsbRight|v.Green.MsbRight|v.Blue.MsbRight != 0 {
		return fmt.Errorf("%w: bit-reversed colour fields", ErrUnsupportedFormat)
	}
	if err := format.Validate(); err != nil {
		return err
	}
	w, h, bpp := int(v.Xres), int(v.Yres), format.BytesPerPixel()
	stride := int(x.LineLength)
	if stride == 0 { // a few old drivers leave it to be computed
		stride = int(v.XresVirtual) * bpp
	}
	length := int(x.SmemLen)
	if length == 0 {
		length = stride * int(v.YresVirtual)
	}
	screen := stride*(h-1) + w*bpp
	if w <= 0 || h <= 0 || stride < w*bpp {
		return fmt.Errorf("%w: %dx%d with a stride of %d bytes", ErrUnsupportedFormat, w, h, stride)
	}
	fb.origin = int(v.Yoffset)*stride + int(v.Xoffset)*bpp
	if fb.origin+screen > length {
		return fmt.Errorf("fb: visible screen (%dx%d at offset %d,%d, stride %d) lies outside %d bytes of screen memory",
			w, h, v.Xoffset, v.Yoffset, stride, length)
	}
	fb.pages = 1
	if x.Ypanstep > 0 && h%int(x.Ypanstep) == 0 && int(v.YresVirtual) >= 2*h && stride*h+screen <= length {
		fb.pages = 2
		fb.shown = 0
		if v.Yoffset >= v.Yres {
			fb.shown = 1
		}
	}
	fb.mem, err = unix.Mmap(int(fb.fd), 0, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap %d bytes of screen memory: %w", length, err)
	}
	fb.back = make([]byte, stride*h)
	fb.canvas, err = NewCanvas(fb.back, stride, image.Pt(w, h), format, opts.Range)
	return err
}

// setMode asks the driver for m and checks what it answers: drivers that
// cannot change mode (fbtft has no check_var) report success and keep
// theirs.
func (fb *FB) setMode(m Mode) error {
	v, err := getVar(fb.fd)
	if err != nil {
		return fmt.Errorf("FBIOGET_VSCREENINFO: %w", err)
	}
	try := func(pages int) error {
		w := v
		w.Xres, w.Yres = uint32(m.Width), uint32(m.Height)
		w.XresVirtual, w.YresVirtual = uint32(m.Width), uint32(m.Height*pages)
		w.Xoffset, w.Yoffset = 0, 0
		w.BitsPerPixel = uint32(m.BitsPerPixel)
		// Zeroed fields let the driver choose its layout for the depth
		// (a non-zero transp length asks vfb for RGBA5551, not RGB565).
		w.Red, w.Green, w.Blue, w.Transp = bitfield{}, bitfield{}, bitfield{}, bitfield{}
		w.Activate = activateNow | activateForce
		if err := ioctlPtr(fb.fd, ioctlPutVScreenInfo, unsafe.Pointer(&w)); err != nil {
			return fmt.Errorf("%w: FBIOPUT_VSCREENINFO %dx%d (virtual %dx%d) at %d bpp: %w",
				ErrModeRejected, m.Width, m.Height, m.Width, m.Height*pages, m.BitsPerPixel, err)
		}
		got, err := getVar(fb.fd)
		if err != nil {
			return fmt.Errorf("FBIOGET_VSCREENINFO: %w", err)
		}
		if int(got.Xres) != m.Width || int(got.Yres) != m.Height || int(got.BitsPerPixel) != m.BitsPerPixel {
			return fmt.Errorf("%w: asked for %dx%d at %d bpp, the driver is at %dx%d at %d bpp",
				ErrModeRejected, m.Width, m.Height, m.BitsPerPixel, got.Xres, got.Yres, got.BitsPerPixel)
		}
		return nil
	}
	if m.Width <= 0 || m.Height <= 0 {
		return fmt.Errorf("%w: size %dx%d", ErrModeRejected, m.Width, m.Height)
	}
	if m.DoubleBuffer {
		err := try(2)
		if err == nil {
			return nil
		}
		fb.log.Warn("double-buffered mode refused; setting it single-buffered", "err", err)
	}
	return try(1)
}

// takeConsole switches the VT at path to graphics mode, so fbcon leaves the
// screen to us.
func (fb *FB) takeConsole(path string) {
	c, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		fb.log.Info("no console to switch to graphics mode", "console", path, "err", err)
		return
	}
	mode, err := unix.IoctlGetInt(int(c.Fd()), ioctlKDGetMode)
	if err == nil {
		err = ioctlVal(c.Fd(), ioctlKDSetMode, kdGraphics)
	}
	if err != nil {
		fb.log.Warn("console: cannot switch to graphics mode; its text may show over the picture",
			"console", path, "err", err)
		c.Close()
		return
	}
	fb.console, fb.kdMode = c, uintptr(mode)
}

// Bounds is the visible screen, at the origin.
func (fb *FB) Bounds() image.Rectangle { return fb.canvas.Bounds() }

// Info describes the framebuffer.
func (fb *FB) Info() Info {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return fb.info()
}

func (fb *FB) info() Info {
	return Info{
		Path:   fb.path,
		ID:     fb.finfo.id(),
		Size:   image.Pt(int(fb.vinfo.Xres), int(fb.vinfo.Yres)),
		Format: fb.vinfo.format(),
		Stride: fb.canvas.stride,
		Pages:  fb.pages,
	}
}

// Draw shows img scaled to fit the screen with its aspect ratio kept, black
// bars around it (see Canvas.Draw). Video frames (*image.YCbCr) take the
// fast path; nothing is allocated per frame.
func (fb *FB) Draw(img image.Image) error {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.f == nil {
		return fmt.Errorf("fb: draw on %s: %w", fb.path, ErrClosed)
	}
	if err := fb.canvas.Draw(img); err != nil {
		return err
	}
	return fb.flip()
}

// Fill shows col on the whole screen.
func (fb *FB) Fill(col color.Color) error {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.f == nil {
		return fmt.Errorf("fb: fill on %s: %w", fb.path, ErrClosed)
	}
	fb.canvas.Fill(col)
	return fb.flip()
}

// flip puts the back buffer on screen: copied to the hidden page and panned
// to when double-buffered, else copied over the visible screen in one go.
func (fb *FB) flip() error {
	n := fb.canvas.stride*(fb.canvas.size.Y-1) + fb.canvas.size.X*fb.canvas.pk.bpp
	if fb.pages == 2 {
		next := 1 - fb.shown
		base := next * int(fb.vinfo.Yres) * fb.canvas.stride
		copy(fb.mem[base:base+n], fb.back)
		v := fb.vinfo
		v.Xoffset, v.Yoffset = 0, uint32(next)*fb.vinfo.Yres
		err := ioctlPtr(fb.fd, ioctlPanDisplay, unsafe.Pointer(&v))
		if err == nil {
			fb.shown = next
			fb.vinfo.Xoffset, fb.vinfo.Yoffset = v.Xoffset, v.Yoffset
			return nil
		}
		// Drawing goes on, single-buffered on the page on screen.
		fb.log.Warn("panning failed; drawing without double buffering", "err", err)
		fb.pages = 1
		fb.origin = fb.shown * int(fb.vinfo.Yres) * fb.canvas.stride
	}
	copy(fb.mem[fb.origin:fb.origin+n], fb.back)
	return nil
}

// Blank turns the screen off (FB_BLANK_POWERDOWN: panel and backlight off
// where the driver can) or back on. Drivers without blanking (vfb, some SPI
// panels) give ErrNoBlank.
func (fb *FB) Blank(off bool) error {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.f == nil {
		return fmt.Errorf("fb: blank %s: %w", fb.path, ErrClosed)
	}
	level := uintptr(blankUnblank)
	if off {
		level = blankPowerdown
	}
	if err := ioctlVal(fb.fd, ioctlBlank, level); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
			return fmt.Errorf("fb: blank %s: %w: %w", fb.path, ErrNoBlank, err)
		}
		return fmt.Errorf("fb: blank %s: FBIOBLANK: %w", fb.path, err)
	}
	return nil
}

// Close unmaps the screen memory, gives the console back and closes the
// device. What was drawn stays on screen (until the console redraws). It is
// safe to call more than once.
func (fb *FB) Close() error {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.f == nil {
		return nil
	}
	if err := fb.release(); err != nil {
		return fmt.Errorf("fb: close %s: %w", fb.path, err)
	}
	return nil
}

func (fb *FB) release() error {
	var errs []error
	if fb.mem != nil {
		if err := unix.Munmap(fb.mem); err != nil {
			errs = append(errs, fmt.Errorf("munmap: %w", err))
		}
		fb.mem = nil
	}
	if fb.console != nil {
		if err := ioctlVal(fb.console.Fd(), ioctlKDSetMode, fb.kdMode); err != nil {
			errs = append(errs, fmt.Errorf("console back to mode %d: %w", fb.kdMode, err))
		}
		errs = append(errs, fb.console.Close())
		fb.console = nil
	}
	errs = append(errs, fb.f.Close())
	fb.f = nil
	return errors.Join(errs...)
}
