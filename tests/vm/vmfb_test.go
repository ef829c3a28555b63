//go:build vmtest

package vm_test

import (
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"golang.org/x/sys/unix"

	"github.com/tuanju/tuanju/device/screen/fb"
	tmedia "github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/h264enc"
	"github.com/tuanju/tuanju/media/mediatest"
)

// Framebuffer tests need the VM started with the kernel's virtual
// framebuffer, with memory for 800x480 at 32 bpp twice (double buffering):
//
//	tests/vm/run -m 'vfb vfb_enable=1 videomemorysize=4194304' -r Framebuffer x.test
//
// vfb starts at 640x480, 8 bpp palette; each test sets the mode it needs,
// as fbset would. Its colour layouts put red at bit 0 (BGR565, R-G-B-A
// bytes at 32 bpp), the opposite of most panels: a packer that assumed
// RGB565 would show red as blue here.
const (
	fbDevice   = "/dev/fb0"
	fbConsole  = "/dev/tty0"
	vfbModules = "-m 'vfb vfb_enable=1 videomemorysize=4194304'"
)

func fbOnly(t *testing.T) {
	t.Helper()
	vmOnly(t)
	if runtime.GOARCH == "arm64" {
		// Not a pass: say so in the log. A virtio-gpu with DRM fbdev
		// emulation would give arm64 a /dev/fb0 (tests/vm/README.md).
		t.Skip("SKIP: Debian's arm64 kernel has neither vfb nor vkms; the framebuffer is tested on amd64 only")
	}
	if _, err := os.Stat(fbDevice); err != nil {
		t.Fatalf("%v: start the VM with %s", err, vfbModules)
	}
}

// The test picture: four flat quadrants, red and green above, blue and white
// below, made in BT.601 video range as a camera and the H.264 decoder give
// it.
var fbQuadrants = [4]color.RGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}, {255, 255, 255, 255}}

func quadrantPicture(w, h int) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := range h {
		for x := range w {
			c := fbQuadrants[2*(2*y/h)+2*x/w]
			R, G, B := float64(c.R), float64(c.G), float64(c.B)
			img.Y[img.YOffset(x, y)] = uint8(16 + 219*(0.299*R+0.587*G+0.114*B)/255 + 0.5)
			img.Cb[img.COffset(x, y)] = uint8(128 + 224*(-0.168736*R-0.331264*G+0.5*B)/255 + 0.5)
			img.Cr[img.COffset(x, y)] = uint8(128 + 224*(0.5*R-0.418688*G-0.081312*B)/255 + 0.5)
		}
	}
	return img
}

// kernelScreen is what the kernel says about the framebuffer, decoded here
// from the raw ioctl bytes by the offsets in include/uapi/linux/fb.h
// (amd64), independently of device/fb's structs.
type kernelScreen struct {
	xres, yres, xoff, yoff, bpp int
	red, green, blue            [2]int // offset, length
	lineLength, smemLen         int
}

func readKernelScreen(t *testing.T) kernelScreen {
	t.Helper()
	f, err := os.Open(fbDevice)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var v [160]byte
	var x [80]byte
	for _, io := range []struct {
		req uintptr
		buf unsafe.Pointer
	}{{0x4600, unsafe.Pointer(&v)}, {0x4602, unsafe.Pointer(&x)}} {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), io.req, uintptr(io.buf)); e != 0 {
			t.Fatalf("ioctl %#x: %v", io.req, e)
		}
	}
	u := func(b []byte, off int) int { return int(binary.LittleEndian.Uint32(b[off:])) }
	return kernelScreen{
		xres: u(v[:], 0), yres: u(v[:], 4), xoff: u(v[:], 16), yoff: u(v[:], 20), bpp: u(v[:], 24),
		red: [2]int{u(v[:], 32), u(v[:], 36)}, green: [2]int{u(v[:], 44), u(v[:], 48)}, blue: [2]int{u(v[:], 56), u(v[:], 60)},
		smemLen: u(x[:], 24), lineLength: u(x[:], 48),
	}
}

// screenReadback is the visible screen as read(2) on /dev/fb0 returns it:
// the kernel's copy of its memory, not device/fb's mapping.
type screenReadback struct {
	k   kernelScreen
	mem []byte
}

func readBack(t *testing.T) screenReadback {
	t.Helper()
	k := readKernelScreen(t)
	mem, err := os.ReadFile(fbDevice)
	if err != nil {
		t.Fatalf("read %s: %v", fbDevice, err)
	}
	if len(mem) != k.smemLen {
		t.Fatalf("read %d bytes from %s, the driver has %d", len(mem), fbDevice, k.smemLen)
	}
	return screenReadback{k: k, mem: mem}
}

// at returns the visible pixel (x, y), decoded with the kernel's bitfields.
func (s screenReadback) at(x, y int) color.RGBA {
	bpp := s.k.bpp / 8
	o := (s.k.yoff+y)*s.k.lineLength + (s.k.xoff+x)*bpp
	var v uint32
	for i := range bpp {
		v |= uint32(s.mem[o+i]) << (8 * i)
	}
	c := func(f [2]int) uint8 {
		max := uint32(1)<<f[1] - 1
		return uint8((v >> f[0] & max) * 255 / max)
	}
	return color.RGBA{c(s.k.red), c(s.k.green), c(s.k.blue), 255}
}

func near(a, b color.RGBA, tol int) bool {
	for _, p := range [][2]uint8{{a.R, b.R}, {a.G, b.G}, {a.B, b.B}} {
		if d := int(p[0]) - int(p[1]); d > tol || d < -tol {
			return false
		}
	}
	return true
}

// checkPicture asserts the quadrants' colours at their centres within tol,
// and that every pixel outside the picture's place is black.
func checkPicture(t *testing.T, s screenReadback, place image.Rectangle, tol int) {
	t.Helper()
	for q, want := range fbQuadrants {
		x := place.Min.X + place.Dx()*(1+2*(q%2))/4
		y := place.Min.Y + place.Dy()*(1+2*(q/2))/4
		if got := s.at(x, y); !near(got, want, tol) {
			t.Errorf("quadrant %d centre (%d,%d) reads %v, want %v ±%d", q, x, y, got, want, tol)
		}
	}
	bars := 0
	for y := range s.k.yres {
		for x := range s.k.xres {
			if image.Pt(x, y).In(place) {
				continue
			}
			bars++
			if got := s.at(x, y); got.R|got.G|got.B != 0 {
				t.Fatalf("bar pixel (%d,%d) outside %v reads %v, want black", x, y, place, got)
			}
		}
	}
	if want := s.k.xres*s.k.yres - place.Dx()*place.Dy(); bars != want {
		t.Fatalf("checked %d bar pixels, want %d", bars, want)
	}
}

func consoleMode(t *testing.T) int {
	t.Helper()
	f, err := os.Open(fbConsole)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.IoctlGetInt(int(f.Fd()), 0x4B3B) // KDGETMODE
	if err != nil {
		t.Fatalf("KDGETMODE %s: %v", fbConsole, err)
	}
	return m
}

func fbLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// TestFramebufferRefusals: modes device/fb cannot or the driver will not use
// are refused with the package's errors, naming the device.
func TestFramebufferRefusals(t *testing.T) {
	fbOnly(t)
	tests := []struct {
		name string
		mode fb.Mode
		want error
	}{
		// vfb's own starting depth: a palette, no way to show video.
		{"8 bpp palette", fb.Mode{Width: 640, Height: 480, BitsPerPixel: 8}, fb.ErrUnsupportedFormat},
		// 64 MB asked of 4: vfb's check_var says ENOMEM.
		{"more than the memory", fb.Mode{Width: 4096, Height: 4096, BitsPerPixel: 32}, fb.ErrModeRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := fb.OpenWith(fbDevice, fb.Options{Mode: &tt.mode, Log: fbLog(t)})
			if err == nil {
				d.Close()
				t.Fatalf("OpenWith(%+v) succeeded", tt.mode)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("OpenWith(%+v) = %v, want %v", tt.mode, err, tt.want)
			}
			t.Logf("%v", err)
		})
	}
}

// TestFramebufferThroughKernel draws through device/fb's mapping of vfb's
// memory at 16, 24 and 32 bpp and reads the screen back with read(2): the
// quadrants land in their colours where fb.Fit says, the bars are black,
// double buffering flips the kernel's yoffset, Fill fills, and the console
// stays in graphics mode while the screen is open.
func TestFramebufferThroughKernel(t *testing.T) {
	fbOnly(t)
	src := quadrantPicture(320, 240)
	tests := []struct {
		name   string
		mode   fb.Mode
		format fb.Format // what vfb reports for the depth
		pages  int
	}{
		{"480x320 16bpp (SPI panel size)", fb.Mode{Width: 480, Height: 320, BitsPerPixel: 16}, fb.BGR565, 1},
		{"400x240 24bpp", fb.Mode{Width: 400, Height: 240, BitsPerPixel: 24}, fb.BGR888, 1},
		{"800x480 32bpp double-buffered", fb.Mode{Width: 800, Height: 480, BitsPerPixel: 32, DoubleBuffer: true}, fb.ABGR8888, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := fb.OpenWith(fbDevice, fb.Options{Mode: &tt.mode, Console: fbConsole, Log: fbLog(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			info := d.Info()
			if info.Size != image.Pt(tt.mode.Width, tt.mode.Height) || info.Format != tt.format || info.Pages != tt.pages {
				t.Fatalf("Info() = %+v, want %dx%d %v with %d page(s)", info, tt.mode.Width, tt.mode.Height, tt.format, tt.pages)
			}
			if m := consoleMode(t); m != 1 {
				t.Errorf("console mode while open = %d, want KD_GRAPHICS (1)", m)
			}
			place := fb.Fit(src.Rect.Size(), info.Size)

			// Twice: with two pages the second frame goes to the other one.
			var yoffs []int
			for i := range 2 {
				if err := d.Draw(src); err != nil {
					t.Fatalf("draw %d: %v", i, err)
				}
				s := readBack(t)
				yoffs = append(yoffs, s.k.yoff)
				checkPicture(t, s, place, 12)
			}
			if tt.pages == 2 && (yoffs[0] == yoffs[1] || yoffs[0]%tt.mode.Height != 0 || yoffs[1]%tt.mode.Height != 0) {
				t.Errorf("yoffset after two frames: %v, want the two pages 0 and %d", yoffs, tt.mode.Height)
			}
			if tt.pages == 1 && (yoffs[0] != 0 || yoffs[1] != 0) {
				t.Errorf("yoffset after two frames: %v, want 0", yoffs)
			}

			orange := color.RGBA{255, 128, 0, 255}
			if err := d.Fill(orange); err != nil {
				t.Fatal(err)
			}
			s := readBack(t)
			for y := range s.k.yres {
				for x := range s.k.xres {
					if got := s.at(x, y); !near(got, orange, 256>>min(s.k.red[1], s.k.green[1], s.k.blue[1])) {
						t.Fatalf("after Fill pixel (%d,%d) reads %v, want %v", x, y, got, orange)
					}
				}
			}

			// vfb has no blank operation: the kernel answers EINVAL.
			if err := d.Blank(true); !errors.Is(err, fb.ErrNoBlank) {
				t.Errorf("Blank(true) on vfb = %v, want ErrNoBlank", err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if m := consoleMode(t); m != 0 {
				t.Errorf("console mode after Close = %d, want KD_TEXT (0)", m)
			}
			if err := d.Draw(src); !errors.Is(err, fb.ErrClosed) {
				t.Errorf("Draw after Close = %v, want ErrClosed", err)
			}
		})
	}
}

// TestFramebufferShowsDecodedVideo is the child's screen end to end: the
// quadrant picture is encoded with openh264 as the parent's phone would,
// sent over a loopback call, decoded by media.Receiver, and its
// LatestFrame drawn on a 480x320 RGB565 screen and read back.
func TestFramebufferShowsDecodedVideo(t *testing.T) {
	fbOnly(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	log := fbLog(t)
	d, err := fb.OpenWith(fbDevice, fb.Options{
		Mode:    &fb.Mode{Width: 480, Height: 320, BitsPerPixel: 16},
		Console: fbConsole, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	// The phone: a quadrant picture, encoded at 15 fps with a key frame
	// every 5 frames (no PLI handling needed if the first is lost).
	src := quadrantPicture(320, 240)
	params, err := h264enc.NewParams()
	if err != nil {
		t.Fatal(err)
	}
	params.BitRate, params.IntraPeriod = 400_000, 5
	enc, err := params.BuildVideoEncoder(video.ReaderFunc(func() (image.Image, func(), error) {
		return src, func() {}, nil
	}), prop.Media{Video: prop.Video{Width: 320, Height: 240, FrameRate: 15}})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()

	api, err := tmedia.NewAPI(tmedia.APIConfig{SettingEngine: mediatest.LoopbackSettingEngine()})
	if err != nil {
		t.Fatal(err)
	}
	terminal := mediatest.NewPeer(t, api)
	phone := mediatest.NewPeer(t, api)
	if _, err := terminal.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	recv := tmedia.NewReceiver(tmedia.ReceiverConfig{WriteRTCP: terminal.WriteRTCP, Log: log})
	var handlers sync.WaitGroup
	terminal.OnTrack(func(tr *webrtc.TrackRemote, rr *webrtc.RTPReceiver) {
		handlers.Add(1)
		defer handlers.Done()
		if err := recv.Handle(tr, rr); err != nil {
			t.Errorf("receiver: %v", err)
		}
	})
	track, err := webrtc.NewTrackLocalStaticSample(params.RTPCodec().RTPCodecCapability, "video", "parent")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := phone.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = terminal.Close()
		_ = phone.Close()
		handlers.Wait()
	}()
	mediatest.Negotiate(t, terminal, phone)

	// Send until the terminal has a picture.
	tick := time.NewTicker(time.Second / 15)
	defer tick.Stop()
	var frame image.Image
	for frame == nil {
		select {
		case <-ctx.Done():
			t.Fatalf("no decoded picture before the deadline; receiver stats %+v", recv.Stats())
		case <-tick.C:
		}
		au, release, err := enc.Read()
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if len(au) > 0 {
			if err := track.WriteSample(media.Sample{Data: append([]byte(nil), au...), Duration: time.Second / 15}); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
		release()
		frame = recv.LatestFrame()
	}
	if _, ok := frame.(*image.YCbCr); !ok {
		t.Fatalf("LatestFrame is a %T, want *image.YCbCr (the fast path)", frame)
	}
	t.Logf("decoded %v after %+v", frame.Bounds(), recv.Stats())
	if err := d.Draw(frame); err != nil {
		t.Fatal(err)
	}
	s := readBack(t)
	// H.264 smears a little chroma across the quadrant edges, none at the
	// centres; the tolerance is for the encoder's quantisation plus RGB565.
	checkPicture(t, s, fb.Fit(frame.Bounds().Size(), d.Bounds().Size()), 24)
	if t.Failed() {
		t.Logf("kernel screen: %+v", s.k)
	}
}
