package media

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/mediadevices"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/internal/h264cam"
	"github.com/tuanju/tuanju/media/internal/h264cam/h264camtest"
	"github.com/tuanju/tuanju/media/mediatest"
)

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// cameraStream is what an H.264 camera that sends its parameter sets only
// once would deliver: openh264's stream (one IDR, with SPS and PPS) played
// twice, the second time with the IDR's SPS and PPS stripped. want[i] is what
// must reach the track for fed[i]: the same bytes, with the parameter sets
// put back in front of the stripped IDR.
func cameraStream(t *testing.T, frames int) (fed, want [][]byte) {
	t.Helper()
	aus, err := mediatest.EncodeH264(LowData.Width, LowData.Height, LowData.FPS, LowData.VideoBitrate, frames)
	if err != nil {
		t.Fatal(err)
	}
	first := h264cam.Inspect(aus[0])
	if !first.IDR || first.SPS == nil || first.PPS == nil {
		t.Fatal("encoder's first access unit is not SPS+PPS+IDR")
	}
	var stripped []byte
	for _, n := range h264cam.NALUnits(aus[0]) {
		if t := h264cam.NALType(n); t != h264cam.NALSPS && t != h264cam.NALPPS {
			stripped = append(append(stripped, startCode...), n...)
		}
	}
	fed = append(append(append(fed, aus...), stripped), aus[1:]...)
	want = append(append(append(want, aus...), aus[0]), aus[1:]...)
	return fed, want
}

// TestPassthroughCall sends a fake H.264 camera's stream over a loopback
// call: every access unit the phone reassembles must be one the camera gave
// (byte for byte, parameter sets added only where the camera left them
// out), in the camera's order; they must decode at the stream's size; the
// SDP must carry constrained baseline; and the phone's PLI must reach the
// camera as a key-frame request.
func TestPassthroughCall(t *testing.T) {
	fed, want := cameraStream(t, LowData.FPS)
	cam := &h264camtest.Camera{AUs: fed, Loop: true, Interval: 30 * time.Millisecond}
	c := newCapture(LowData, testLog(t))
	pt, err := c.startPassthrough(cam, "fake camera")
	if err != nil {
		t.Fatal(err)
	}
	c.pass = pt
	defer c.Close()
	if cam.Bitrate() != LowData.VideoBitrate {
		t.Errorf("camera bitrate %d, want the profile's %d", cam.Bitrate(), LowData.VideoBitrate)
	}
	if !c.HasVideo() || !c.Passthrough() || len(c.Tracks()) != 1 {
		t.Fatalf("HasVideo %v, %d tracks; want a video track", c.HasVideo(), len(c.Tracks()))
	}

	api, err := NewAPI(APIConfig{SettingEngine: mediatest.LoopbackSettingEngine()})
	if err != nil {
		t.Fatal(err)
	}
	terminal, phone := mediatest.NewCall(t, api, c.Tracks())
	type result struct {
		aus   [][]byte
		codec webrtc.RTPCodecParameters
	}
	done := make(chan result, 1)
	// Twice round the camera's loop: both IDRs, the stripped one included,
	// arrive whatever the first unit bound.
	minAUs := 2 * len(fed)
	phone.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		var r result
		r.codec = tr.Codec()
		var once sync.Once
		_ = mediatest.ReadAccessUnits(tr, func(au []byte) bool {
			r.aus = append(r.aus, au)
			if len(r.aus) == 5 {
				once.Do(func() {
					_ = phone.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}})
				})
			}
			return len(r.aus) < minAUs
		})
		done <- r
	})
	mediatest.Negotiate(t, terminal, phone)
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("phone got fewer than %d access units in 20 s", minAUs)
	}
	if !strings.Contains(r.codec.SDPFmtpLine, "profile-level-id=42e01f") || !strings.Contains(r.codec.SDPFmtpLine, "packetization-mode=1") {
		t.Errorf("negotiated %s %q, want constrained baseline, packetization-mode 1", r.codec.MimeType, r.codec.SDPFmtpLine)
	}

	// The phone may join mid-unit: RTP sent before the receiver was ready is
	// lost, so the first unit it builds can be the tail of one the camera
	// sent (its last NAL units, or its last fragments). Only that first unit
	// may be partial, and it must still be the camera's bytes.
	if !slices.ContainsFunc(want, func(w []byte) bool { return mediatest.SameNALUnits(r.aus[0], w) }) {
		if !slices.ContainsFunc(want, func(w []byte) bool { return mediatest.IsTail(r.aus[0], w) }) {
			t.Fatalf("first access unit received (%d bytes) is not the camera's, nor the tail of one", len(r.aus[0]))
		}
		r.aus = r.aus[1:]
	}
	// Place the first received unit in the camera's stream, then every
	// next one must be the camera's next.
	idx := -1
	for i := range want {
		if mediatest.SameNALUnits(r.aus[0], want[i]) {
			idx = i
			break
		}
	}
	if idx < 0 {
		t.Fatalf("first access unit received (%d bytes) is none the camera sent", len(r.aus[0]))
	}
	prepended := 0
	for j, au := range r.aus {
		i := (idx + j) % len(want)
		if !mediatest.SameNALUnits(au, want[i]) {
			t.Fatalf("access unit %d: got %d bytes, want the camera's unit %d (%d bytes): re-encoded or reordered", j, len(au), i, len(want[i]))
		}
		if i > 0 && len(want[i]) != len(fed[i]) {
			prepended++
		}
	}
	if prepended == 0 {
		t.Error("no IDR with prepended SPS/PPS arrived: the cache was not exercised")
	}

	dec, err := h264dec.New()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	decoded := 0
	started := false
	for j, au := range r.aus {
		if !started && !h264cam.Inspect(au).IDR {
			continue
		}
		started = true
		img, err := dec.Decode(au)
		if err != nil {
			t.Fatalf("decode access unit %d: %v", j, err)
		}
		if img != nil {
			decoded++
			if img.Rect.Dx() != LowData.Width || img.Rect.Dy() != LowData.Height {
				t.Fatalf("decoded %v, want %dx%d", img.Rect, LowData.Width, LowData.Height)
			}
		}
	}
	if decoded < minAUs/2 {
		t.Errorf("decoded %d pictures of %d access units", decoded, len(r.aus))
	}
	if cam.KeyFrames() == 0 {
		t.Error("the phone's PLI did not reach the camera")
	}
	c.Detach(terminal)
}

// TestPassthroughLost: a camera unplugged mid-call (ENODEV from the
// kernel) ends on Lost like the software path's.
func TestPassthroughLost(t *testing.T) {
	fed, _ := cameraStream(t, 20)
	enodev := fmt.Errorf("h264cam: /dev/video9: dequeue: %w", syscall.ENODEV)
	cam := &h264camtest.Camera{AUs: fed, Err: enodev}
	c := newCapture(LowData, testLog(t))
	pt, err := c.startPassthrough(cam, "fake camera")
	if err != nil {
		t.Fatal(err)
	}
	c.pass = pt
	defer c.Close()
	select {
	case err := <-c.Lost():
		if !errors.Is(err, ErrSourceLost) || !errors.Is(err, syscall.ENODEV) {
			t.Errorf("Lost = %v, want ErrSourceLost wrapping ENODEV", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("camera failure not reported on Lost")
	}
}

// TestPassthroughClose: Close is not a loss.
func TestPassthroughClose(t *testing.T) {
	fed, _ := cameraStream(t, 20)
	cam := &h264camtest.Camera{AUs: fed, Loop: true, Interval: 10 * time.Millisecond}
	c := newCapture(LowData, testLog(t))
	pt, err := c.startPassthrough(cam, "fake camera")
	if err != nil {
		t.Fatal(err)
	}
	c.pass = pt
	time.Sleep(50 * time.Millisecond) // let the pump run; nothing is timed
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.Lost():
		t.Fatalf("Close reported as a loss: %v", err)
	default:
	}
}

// TestPassthroughRefused: streams that cannot be sent as they are make
// startPassthrough fail, so Open encodes in software.
func TestPassthroughRefused(t *testing.T) {
	// x264's High-profile 720p SPS (see h264cam's tests) and a fake slice.
	high := []byte{0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
		0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0, 0, 0, 1, 0x65, 0x88, 0x84}
	tests := []struct {
		name    string
		cam     *h264camtest.Camera
		wantErr string
	}{
		{"high profile", &h264camtest.Camera{AUs: [][]byte{high}, Loop: true}, "not constrained baseline"},
		{"fails before an SPS", &h264camtest.Camera{AUs: [][]byte{{0, 0, 0, 1, 0x41, 1}}, Err: syscall.EIO}, "read first H.264 access units"},
		// openh264's 320x240 SPS (42c00c) with level_idc raised to 4.0.
		{"level above 3.1", &h264camtest.Camera{AUs: [][]byte{{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x28, 0x8c, 0x8d, 0x40, 0xa0, 0xfd, 0x00, 0xf0, 0x88, 0x46, 0xa0}}, Loop: true}, "above the 3.1"},
		{"garbled SPS", &h264camtest.Camera{AUs: [][]byte{{0, 0, 0, 1, 0x67, 0x42}}, Loop: true}, "bad SPS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCapture(LowData, testLog(t))
			pt, err := c.startPassthrough(tt.cam, "fake camera")
			if err == nil {
				pt.close()
				t.Fatal("stream accepted")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to say %q", err, tt.wantErr)
			}
		})
	}
}

// TestPassthroughKeyFrames: RequestKeyFrame reaches the camera, at most
// once per minKeyFrameGap, and a camera without the control counts 0.
func TestPassthroughKeyFrames(t *testing.T) {
	fed, _ := cameraStream(t, 20)
	tests := []struct {
		name      string
		keyErr    error
		wantFirst int
		wantCam   int
	}{
		{"control", nil, 1, 1},
		{"no control", h264cam.ErrUnsupported, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := &h264camtest.Camera{AUs: fed, KeyFrameErr: tt.keyErr, BitrateErr: h264cam.ErrUnsupported}
			c := newCapture(LowData, testLog(t))
			pt, err := c.startPassthrough(cam, "fake camera")
			if err != nil {
				t.Fatal(err)
			}
			c.pass = pt
			defer c.Close()
			n, err := c.RequestKeyFrame()
			if err != nil || n != tt.wantFirst {
				t.Fatalf("RequestKeyFrame = %d, %v; want %d", n, err, tt.wantFirst)
			}
			if n, _ := c.RequestKeyFrame(); n != 0 {
				t.Errorf("second request within %v asked the camera again", minKeyFrameGap)
			}
			if cam.KeyFrames() != tt.wantCam {
				t.Errorf("camera asked %d times, want %d", cam.KeyFrames(), tt.wantCam)
			}
		})
	}
}

func TestWithParameterSets(t *testing.T) {
	sps, pps := []byte{0x67, 0x42, 0xc0, 0x1e}, []byte{0x68, 0xce}
	idr, p := []byte{0x65, 0x88}, []byte{0x41, 0x9a}
	au := func(nals ...[]byte) []byte {
		var b []byte
		for _, n := range nals {
			b = append(append(b, startCode...), n...)
		}
		return b
	}
	tests := []struct {
		name       string
		cached     bool
		in, wantAU []byte
	}{
		{"IDR without sets, cached", true, au(idr), au(sps, pps, idr)},
		{"IDR with its own sets", true, au(sps, pps, idr), au(sps, pps, idr)},
		{"IDR missing only the PPS", true, au(sps, idr), au(pps, sps, idr)},
		{"P slice untouched", true, au(p), au(p)},
		{"nothing cached yet", false, au(idr), au(idr)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt := &passthrough{}
			if tt.cached {
				pt.withParameterSets(au(sps, pps, idr))
			}
			if got, _ := pt.withParameterSets(tt.in); !bytes.Equal(got, tt.wantAU) {
				t.Errorf("got %x, want %x", got, tt.wantAU)
			}
		})
	}
}

// TestPassthroughEncodedReader reads the track the way the technician's
// self-test does (NewEncodedReader on the video track, one frame, then
// Preview): the unit is the camera's, and Preview has a picture from the
// IDR seen at open.
func TestPassthroughEncodedReader(t *testing.T) {
	fed, want := cameraStream(t, 20)
	cam := &h264camtest.Camera{AUs: fed, Loop: true, Interval: 10 * time.Millisecond}
	c := newCapture(LowData, testLog(t))
	pt, err := c.startPassthrough(cam, "fake camera")
	if err != nil {
		t.Fatal(err)
	}
	c.pass = pt
	defer c.Close()
	if img := c.Preview(); img == nil || img.Bounds().Dx() != LowData.Width || img.Bounds().Dy() != LowData.Height {
		t.Fatalf("Preview right after open = %v, want a %dx%d picture", img, LowData.Width, LowData.Height)
	}
	tracks := c.Tracks()
	r, ok := tracks[0].(interface {
		NewEncodedReader(string) (mediadevices.EncodedReadCloser, error)
	})
	if !ok || tracks[0].Kind() != webrtc.RTPCodecTypeVideo {
		t.Fatalf("track %T (%v) has no encoded reader", tracks[0], tracks[0].Kind())
	}
	if _, err := r.NewEncodedReader(webrtc.MimeTypeOpus); err == nil {
		t.Error("an Opus reader of an H.264 camera was handed out")
	}
	enc, err := r.NewEncodedReader("H264")
	if err != nil {
		t.Fatal(err)
	}
	buf, release, err := enc.Read()
	if err != nil {
		t.Fatal(err)
	}
	release()
	found := false
	for _, w := range want {
		found = found || mediatest.SameNALUnits(buf.Data, w)
	}
	if !found {
		t.Errorf("read %d bytes the camera never sent", len(buf.Data))
	}
	enc.Close()
	if _, _, err := enc.Read(); err != io.EOF {
		t.Errorf("Read after Close = %v, want io.EOF", err)
	}
}
