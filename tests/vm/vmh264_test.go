//go:build vmtest

package vm_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/pion/webrtc/v4"
	"golang.org/x/sys/unix"

	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/mediatest"
)

// H.264 passthrough tests need the VM started with v4l2loopback, built out
// of tree by tests/vm/v4l2loopback/build (vivid has no H.264):
//
//	tests/vm/run -m "$(tests/vm/v4l2loopback/build) video_nr=10 max_buffers=8" -r H264 x.test
//
// The test itself is the camera's encoder: it writes openh264 access units
// (made at test time from the synthetic camera) into /dev/video10's output
// side as V4L2_PIX_FMT_H264, one write() per unit; the terminal's code opens
// the capture side as its camera through media.Open. max_buffers=8: with
// v4l2loopback's default of 2, a write() can land in the buffer a slow
// reader has just dequeued and is still copying (write() I/O ignores the
// reader's queue), which mixes two access units; a UVC camera's buffers
// belong to the reader until it queues them back.
const h264Device = "/dev/video10"

// V4L2 ioctls and layouts for the writer (64-bit: struct v4l2_format's
// union is 8-aligned). The terminal's side uses h264cam, not these.
const (
	vidiocSFmt        = 0xc0d05605 // _IOWR('V', 5, struct v4l2_format), 208 bytes
	vidiocSParm       = 0xc0cc5616 // _IOWR('V', 22, struct v4l2_streamparm), 204 bytes
	bufTypeVideoOut   = 2
	pixFmtH264        = 'H' | '2'<<8 | '6'<<16 | '4'<<24
	fieldNone         = 1
	loopbackFrameRate = 15
)

type v4l2PixFormat struct {
	Width, Height, PixelFormat, Field, BytesPerLine, SizeImage, Colorspace, Priv uint32
	Flags, YCbCrEnc, Quantization, XferFunc                                      uint32
}

type v4l2Format struct {
	Type uint32
	_    uint32
	Pix  v4l2PixFormat
	_    [200 - unsafe.Sizeof(v4l2PixFormat{})]byte
}

type v4l2OutputParm struct {
	Type, Capability, OutputMode, Num, Den, ExtendedMode, WriteBuffers uint32
	_                                                                  [4]uint32
	_                                                                  [200 - 4*10]byte
}

// h264Writer plays a looped H.264 stream into v4l2loopback's output side.
type h264Writer struct {
	f    *os.File
	stop chan struct{}
	done chan struct{}
}

func startH264Writer(t *testing.T, aus [][]byte, w, h int) *h264Writer {
	t.Helper()
	f, err := os.OpenFile(h264Device, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open %s: %v (start the VM with -m \"$(tests/vm/v4l2loopback/build) video_nr=10 max_buffers=8\")", h264Device, err)
	}
	fd := f.Fd()
	vf := v4l2Format{Type: bufTypeVideoOut, Pix: v4l2PixFormat{Width: uint32(w), Height: uint32(h), PixelFormat: pixFmtH264, Field: fieldNone}}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, vidiocSFmt, uintptr(unsafe.Pointer(&vf))); e != 0 {
		f.Close()
		t.Fatalf("VIDIOC_S_FMT H264 %dx%d on the output side: %v", w, h, e)
	}
	if vf.Pix.PixelFormat != pixFmtH264 || vf.Pix.Width != uint32(w) || vf.Pix.Height != uint32(h) {
		f.Close()
		t.Fatalf("v4l2loopback set %dx%d %#x, want %dx%d H264", vf.Pix.Width, vf.Pix.Height, vf.Pix.PixelFormat, w, h)
	}
	sp := v4l2OutputParm{Type: bufTypeVideoOut, Num: 1, Den: loopbackFrameRate}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, vidiocSParm, uintptr(unsafe.Pointer(&sp))); e != 0 {
		t.Logf("VIDIOC_S_PARM %d fps on the output side: %v (the device then says 30)", loopbackFrameRate, e)
	}
	// One unit before anyone reads: v4l2loopback offers a capture format
	// only once a writer has written.
	if _, err := f.Write(aus[0]); err != nil {
		f.Close()
		t.Fatalf("write first access unit: %v", err)
	}
	wr := &h264Writer{f: f, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(wr.done)
		tick := time.NewTicker(time.Second / loopbackFrameRate)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-wr.stop:
				return
			case <-tick.C:
			}
			if _, err := f.Write(aus[i%len(aus)]); err != nil {
				t.Errorf("write access unit %d: %v", i, err)
				return
			}
		}
	}()
	t.Cleanup(wr.Close)
	return wr
}

// Pause stops writing (the camera goes silent) but keeps the device open.
func (w *h264Writer) Pause() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *h264Writer) Close() {
	w.Pause()
	w.f.Close()
}

// recordLog keeps every log record's message, for asserting what the
// terminal reported.
type recordLog struct {
	slog.Handler
	mu   *sync.Mutex
	msgs *[]string
}

func newRecordLog(t *testing.T) (*slog.Logger, func(substr string) bool) {
	r := recordLog{Handler: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}), mu: &sync.Mutex{}, msgs: new([]string)}
	return slog.New(r), func(substr string) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range *r.msgs {
			if strings.Contains(m, substr) {
				return true
			}
		}
		return false
	}
}

func (r recordLog) Handle(ctx context.Context, rec slog.Record) error {
	r.mu.Lock()
	*r.msgs = append(*r.msgs, rec.Message)
	r.mu.Unlock()
	return r.Handler.Handle(ctx, rec)
}

func (r recordLog) WithAttrs(as []slog.Attr) slog.Handler {
	return recordLog{Handler: r.Handler.WithAttrs(as), mu: r.mu, msgs: r.msgs}
}

func (r recordLog) WithGroup(name string) slog.Handler {
	return recordLog{Handler: r.Handler.WithGroup(name), mu: r.mu, msgs: r.msgs}
}

func needV4L2Loopback(t *testing.T) {
	t.Helper()
	vmOnly(t)
	if _, err := os.Stat(h264Device); err != nil {
		t.Skipf("%s missing: v4l2loopback not loaded (tests/vm/run -m \"$(tests/vm/v4l2loopback/build) video_nr=10 max_buffers=8\")", h264Device)
	}
}

// TestH264PassthroughThroughKernel: a camera that delivers H.264 itself
// (v4l2loopback fed by the test) is opened through a media.Gate, and what
// reaches the far end of a loopback call is the camera's own access units,
// byte for byte, in order; they decode at the stream's size. The kernel's
// answer to the key-frame control (v4l2loopback has none) must come back
// as unsupported, and RequestKeyFrame must report it instead of failing.
// (The driver's own modes and controls are media/internal/h264cam's, out of
// this package's reach by Go's internal rule: they are tested there.)
func TestH264PassthroughThroughKernel(t *testing.T) {
	needV4L2Loopback(t)
	p := media.LowData
	aus, err := mediatest.EncodeH264(p.Width, p.Height, p.FPS, p.VideoBitrate, 2*p.FPS)
	if err != nil {
		t.Fatal(err)
	}
	startH264Writer(t, aus, p.Width, p.Height)

	t.Run("call", func(t *testing.T) {
		log, logged := newRecordLog(t)
		ctx, cancel := context.WithTimeout(t.Context(), cameraTimeout)
		defer cancel()
		capture, err := openCapture(ctx, media.CaptureConfig{Profile: p, Camera: media.SourceV4L2, CameraDevice: h264Device, Log: log})
		if err != nil {
			t.Fatalf("media.Open: %v", err)
		}
		defer capture.Close()
		if !capture.Passthrough() {
			t.Fatal("media.Open did not take the camera's own H.264")
		}
		api, err := media.NewAPI(media.APIConfig{SettingEngine: mediatest.LoopbackSettingEngine()})
		if err != nil {
			t.Fatal(err)
		}
		terminal, phone := mediatest.NewCall(t, api, capture.Tracks())
		want := 2 * len(aus) // twice round the writer's loop: both sides of its IDR
		got := make(chan [][]byte, 1)
		phone.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			var rx [][]byte
			_ = mediatest.ReadAccessUnits(tr, func(au []byte) bool {
				rx = append(rx, au)
				return len(rx) < want
			})
			got <- rx
		})
		mediatest.Negotiate(t, terminal, phone)
		var rx [][]byte
		select {
		case rx = <-got:
		case <-ctx.Done():
			t.Fatalf("fewer than %d access units reached the phone in %v", want, cameraTimeout)
		}
		// What the writer wrote, in its order: find the first received one,
		// then each next must follow it. v4l2loopback lets a reader that
		// falls two buffers behind skip to the newest, so a skip forward is
		// counted (and must be rare), never a unit out of nowhere.
		// The phone may join mid-unit, so only the first unit received may
		// be the tail of one the writer wrote.
		if !slices.ContainsFunc(aus, func(a []byte) bool { return mediatest.SameNALUnits(rx[0], a) }) &&
			slices.ContainsFunc(aus, func(a []byte) bool { return mediatest.IsTail(rx[0], a) }) {
			rx = rx[1:]
		}
		idx := -1
		for i, a := range aus {
			if mediatest.SameNALUnits(rx[0], a) {
				idx = i
				break
			}
		}
		if idx < 0 {
			t.Fatalf("first unit received (%d bytes) is none the camera sent: re-encoded?", len(rx[0]))
		}
		// Every unit must decode, at the stream's size, from the first IDR
		// on, except after a unit the reader skipped (its references are
		// gone) until the next IDR.
		dec, err := h264dec.New()
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		skipped, decoded := 0, 0
		started, broken := false, false
		for j, au := range rx {
			if j > 0 {
				next := -1
				for k := 1; k <= 3; k++ {
					if mediatest.SameNALUnits(au, aus[(idx+k)%len(aus)]) {
						next = (idx + k) % len(aus)
						skipped += k - 1
						broken = broken || k > 1
						break
					}
				}
				if next < 0 {
					var got, sent []int
					for _, a := range rx[:min(len(rx), j+3)] {
						got = append(got, len(a))
					}
					for _, a := range aus {
						sent = append(sent, len(a))
					}
					t.Fatalf("unit %d received (%d bytes) is not among the camera's next after its unit %d: re-encoded or reordered\nreceived sizes %v\ncamera's %v", j, len(au), idx, got, sent)
				}
				idx = next
			}
			if mediatest.IsIDR(au) {
				started, broken = true, false
			}
			if !started || broken {
				continue
			}
			img, err := dec.Decode(au)
			if err != nil {
				t.Fatalf("decode unit %d (camera's %d): %v", j, idx, err)
			}
			if img != nil {
				decoded++
				if img.Rect.Dx() != p.Width || img.Rect.Dy() != p.Height {
					t.Fatalf("decoded %v, want %dx%d", img.Rect, p.Width, p.Height)
				}
			}
		}
		t.Logf("%d access units byte-identical to the camera's, %d skipped by the reader, %d decoded", len(rx), skipped, decoded)
		if skipped > len(rx)/10 {
			t.Errorf("%d of %d units skipped", skipped, len(rx))
		}
		if decoded < len(aus)/2 {
			t.Errorf("decoded %d pictures of %d units", decoded, len(rx))
		}
		n, err := capture.RequestKeyFrame()
		if err != nil {
			t.Fatalf("RequestKeyFrame: %v", err)
		}
		if n == 0 && !logged("camera cannot be asked for a key frame") {
			t.Error("RequestKeyFrame asked nothing and the terminal did not say the camera cannot")
		}
		if img := capture.Preview(); img == nil || img.Bounds().Dx() != p.Width {
			t.Errorf("Preview = %v, want a %dx%d picture", img, p.Width, p.Height)
		}
		capture.Detach(terminal)
	})
}

// TestH264PassthroughSilentCamera: a camera that stops delivering mid-call
// (its writer paused) is reported on Lost, as an unplugged one is.
func TestH264PassthroughSilentCamera(t *testing.T) {
	needV4L2Loopback(t)
	p := media.LowData
	aus, err := mediatest.EncodeH264(p.Width, p.Height, p.FPS, p.VideoBitrate, p.FPS)
	if err != nil {
		t.Fatal(err)
	}
	w := startH264Writer(t, aus, p.Width, p.Height)
	ctx, cancel := context.WithTimeout(t.Context(), cameraTimeout)
	defer cancel()
	capture, err := openCapture(ctx, media.CaptureConfig{Profile: p, Camera: media.SourceV4L2, CameraDevice: h264Device,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatalf("media.Open: %v", err)
	}
	defer capture.Close()
	w.Pause()
	select {
	case err := <-capture.Lost():
		if !errors.Is(err, media.ErrSourceLost) {
			t.Errorf("Lost = %v, want ErrSourceLost", err)
		}
	case <-ctx.Done():
		t.Fatal("silent camera not reported on Lost")
	}
}
