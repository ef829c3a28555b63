package simboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/simboard"
	"github.com/tuanju/tuanju/media/synth"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// Short thresholds: these tests run the real debouncer on the real clock
// through HTTP, so they wait on events with generous timeouts and never
// assert on timing.
var testButton = device.ButtonOpts{
	ActiveLow:  true, // like the reference board
	Debounce:   5 * time.Millisecond,
	LongPress:  400 * time.Millisecond, // > simboard.PressDuration
	StuckAfter: 5 * time.Second,
}

const eventTimeout = 5 * time.Second

func newBoard(t *testing.T, opts simboard.Options) (*simboard.Board, *httptest.Server) {
	t.Helper()
	if opts.Button == (device.ButtonOpts{}) {
		opts.Button = testButton
	}
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	b, err := simboard.New(opts)
	if err != nil {
		t.Fatalf("simboard.New: %v", err)
	}
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(func() {
		srv.Close()
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b, srv
}

func post(t *testing.T, srv *httptest.Server, path string) {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+path, "", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %s %s", path, resp.Status, body)
	}
}

func get(t *testing.T, srv *httptest.Server, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp, body
}

func nextEvent(t *testing.T, b *simboard.Board) device.ButtonEvent {
	t.Helper()
	select {
	case ev, ok := <-b.Button().Events():
		if !ok {
			t.Fatal("button events closed")
		}
		return ev
	case <-time.After(eventTimeout):
		t.Fatalf("no button event within %v", eventTimeout)
	}
	panic("unreachable")
}

func noMoreEvents(t *testing.T, b *simboard.Board, settle time.Duration) {
	t.Helper()
	select {
	case ev := <-b.Button().Events():
		t.Fatalf("unexpected event %v", ev.Kind)
	case <-time.After(settle):
	}
}

func TestButtonThroughHTTP(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		want  []device.ButtonKind
	}{
		{"press", []string{"/api/button/press"}, []device.ButtonKind{device.Press}},
		{"longpress", []string{"/api/button/longpress"}, []device.ButtonKind{device.LongPress, device.Release}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, srv := newBoard(t, simboard.Options{})
			for _, p := range tt.paths {
				post(t, srv, p)
			}
			for _, want := range tt.want {
				if ev := nextEvent(t, b); ev.Kind != want {
					t.Fatalf("event %v, want %v", ev.Kind, want)
				}
			}
			noMoreEvents(t, b, 100*time.Millisecond)
		})
	}
}

// TestHoldIsLongPressBeforeRelease: the panel's click-and-hold reaches the
// long press while the button is still down, as on the real box.
func TestHoldIsLongPressBeforeRelease(t *testing.T) {
	b, srv := newBoard(t, simboard.Options{})
	post(t, srv, "/api/button/hold")
	if ev := nextEvent(t, b); ev.Kind != device.LongPress {
		t.Fatalf("event %v while held, want long_press", ev.Kind)
	}
	if st := state(t, srv); !st.ButtonDown {
		t.Error("state says button up while held")
	}
	post(t, srv, "/api/button/release")
	if ev := nextEvent(t, b); ev.Kind != device.Release {
		t.Fatalf("event %v after letting go, want release", ev.Kind)
	}
	noMoreEvents(t, b, 100*time.Millisecond)
}

func TestHoldAutoReleases(t *testing.T) {
	b, srv := newBoard(t, simboard.Options{MaxHold: 50 * time.Millisecond})
	post(t, srv, "/api/button/hold")
	if ev := nextEvent(t, b); ev.Kind != device.Press {
		t.Fatalf("event %v, want press (hold cut short by MaxHold)", ev.Kind)
	}
}

func state(t *testing.T, srv *httptest.Server) simboard.State {
	t.Helper()
	resp, body := get(t, srv, "/api/state")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/state: %s", resp.Status)
	}
	var st simboard.State
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("decode state %s: %v", body, err)
	}
	return st
}

func TestStateShowsPins(t *testing.T) {
	b, srv := newBoard(t, simboard.Options{})
	b.SetStatus("paired with parent")
	b.LEDs().Show(device.Ready)
	st := state(t, srv)
	if st.Pattern != device.Ready {
		t.Errorf("pattern %q, want ready", st.Pattern)
	}
	want := map[device.Color]bool{device.Green: true, device.Red: false, device.Blue: false}
	for c, on := range want {
		if st.LEDs[c] != on {
			t.Errorf("led %s = %v, want %v (state %+v)", c, st.LEDs[c], on, st)
		}
	}
	if st.Status != "paired with parent" {
		t.Errorf("status %q", st.Status)
	}

	// The JSON shape is what the panel page reads.
	_, raw := get(t, srv, "/api/state")
	for _, key := range []string{`"pattern":"ready"`, `"leds":{`, `"green":true`, `"status":`, `"pairing_url":`} {
		if !bytes.Contains(raw, []byte(key)) {
			t.Errorf("state JSON %s lacks %s", raw, key)
		}
	}
}

func TestPairingQR(t *testing.T) {
	b, srv := newBoard(t, simboard.Options{})
	if resp, _ := get(t, srv, "/pairing.png"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /pairing.png without URL: %s, want 404", resp.Status)
	}
	const u = "https://rendezvous.example/pair#t=7f3a9c"
	b.SetPairingURL(u)
	resp, body := get(t, srv, "/pairing.png")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("GET /pairing.png: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("pairing.png does not decode: %v", err)
	}
	bounds := img.Bounds()
	if bounds.Dx() <= 0 || bounds.Dx() != bounds.Dy() {
		t.Fatalf("QR image %v, want a non-empty square", bounds)
	}
	// A QR code has finder squares in three corners (top-left, top-right,
	// bottom-left), at the same distance from the edge (any quiet zone).
	o := 0
	for o < bounds.Dx()/4 && !dark(img.At(bounds.Min.X+o, bounds.Min.Y+o)) {
		o++
	}
	if o == bounds.Dx()/4 {
		t.Fatal("no dark module near the top-left corner: not a QR code")
	}
	// Scaling may pad the right and bottom by one pixel more than the left
	// and top, so look two pixels inside the expected corner.
	in := o + 2
	if !dark(img.At(bounds.Max.X-1-in, bounds.Min.Y+in)) || !dark(img.At(bounds.Min.X+in, bounds.Max.Y-1-in)) {
		t.Error("no finder pattern in the top-right and bottom-left corners: not a QR code")
	}
	if st := state(t, srv); st.PairingURL != u {
		t.Errorf("state pairing_url %q, want %q", st.PairingURL, u)
	}
}

func dark(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r+g+b < 3*0x8000
}

// TestPictures: /camera.jpg serves Options.Preview and /screen.jpg
// Options.Screen, each as a JPEG of its image's size, and each is 404 when
// the board has no such device or it has no image now. The two images have
// different sizes, so crossed wires show.
func TestPictures(t *testing.T) {
	camera := testImage(64, 48)
	screen := testImage(96, 72)
	none := func() image.Image { return nil }
	tests := []struct {
		name string
		opts simboard.Options
		path string
		want image.Image // nil: 404
	}{
		{"no camera", simboard.Options{}, "/camera.jpg", nil},
		{"no camera frame yet", simboard.Options{Preview: none}, "/camera.jpg", nil},
		{"camera frame", simboard.Options{Preview: func() image.Image { return camera }}, "/camera.jpg", camera},
		{"camera with screen", simboard.Options{Preview: func() image.Image { return camera }, Screen: func() image.Image { return screen }}, "/camera.jpg", camera},
		{"no screen", simboard.Options{Preview: func() image.Image { return camera }}, "/screen.jpg", nil},
		{"screen shows nothing", simboard.Options{Screen: none}, "/screen.jpg", nil},
		{"screen image", simboard.Options{Screen: func() image.Image { return screen }}, "/screen.jpg", screen},
		{"screen with camera", simboard.Options{Preview: func() image.Image { return camera }, Screen: func() image.Image { return screen }}, "/screen.jpg", screen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newBoard(t, tt.opts)
			resp, body := get(t, srv, tt.path)
			if tt.want == nil {
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("GET %s: %s, want 404", tt.path, resp.Status)
				}
				return
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" {
				t.Fatalf("GET %s: %s %s", tt.path, resp.Status, resp.Header.Get("Content-Type"))
			}
			img, err := jpeg.Decode(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("%s does not decode: %v", tt.path, err)
			}
			if img.Bounds().Size() != tt.want.Bounds().Size() {
				t.Errorf("JPEG is %v, want %v", img.Bounds().Size(), tt.want.Bounds().Size())
			}
		})
	}
}

func testImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	return img
}

// TestPlayCue: every PlayCue is a new cue_seq, so the panel plays the same
// cue twice when the terminal plays it twice.
func TestPlayCue(t *testing.T) {
	tests := []struct {
		name    string
		cues    []string
		wantCue string
		wantSeq uint64
	}{
		{"none yet", nil, "", 0},
		{"one", []string{"ring"}, "ring", 1},
		{"same cue twice", []string{"refused", "refused"}, "refused", 2},
		{"a call", []string{"calling", "connected", "hangup"}, "hangup", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, srv := newBoard(t, simboard.Options{})
			for _, c := range tt.cues {
				b.PlayCue(c)
			}
			st := state(t, srv)
			if st.Cue != tt.wantCue || st.CueSeq != tt.wantSeq {
				t.Errorf("cue %q seq %d, want %q seq %d", st.Cue, st.CueSeq, tt.wantCue, tt.wantSeq)
			}
			// The JSON keys are what the panel page reads.
			_, raw := get(t, srv, "/api/state")
			want := fmt.Sprintf(`"cue":%q,"cue_seq":%d`, tt.wantCue, tt.wantSeq)
			if !bytes.Contains(raw, []byte(want)) {
				t.Errorf("state JSON %s lacks %s", raw, want)
			}
		})
	}
}

func TestPanelPage(t *testing.T) {
	_, srv := newBoard(t, simboard.Options{})
	resp, body := get(t, srv, "/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{"/api/state", "/api/button/hold", "/api/button/release", "/camera.jpg", "/screen.jpg", "/pairing.png", "/api/camera/unplug", "/api/camera/replug", "camera_plugged", "pointerdown", "cue_seq", "AudioContext"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("panel page does not use %s", want)
		}
	}
	// The simulated label carries the reset line, as terminald label
	// prints it.
	for _, line := range strings.Split(device.ResetHowTo, "\n") {
		if !bytes.Contains(body, []byte(line)) {
			t.Errorf("panel page lacks the label's reset line %q", line)
		}
	}
}

// TestCrossOriginRefused: a web page on another origin must not be able to
// press the child's button through the developer's browser.
func TestCrossOriginRefused(t *testing.T) {
	b, srv := newBoard(t, simboard.Options{})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/button/press", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin press: %s, want 403", resp.Status)
	}
	noMoreEvents(t, b, 200*time.Millisecond)
}

func TestClosedBoard(t *testing.T) {
	b, srv := newBoard(t, simboard.Options{})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Post(srv.URL+"/api/button/press", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("press after Close: %s, want 503", resp.Status)
	}
}

// TestPlayCueConcurrent: cues played from several goroutines (the terminal's
// loop, a media callback) are each counted once.
func TestPlayCueConcurrent(t *testing.T) {
	b, srv := newBoard(t, simboard.Options{})
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				b.PlayCue("ring")
				_ = b.State()
			}
		})
	}
	wg.Wait()
	if st := state(t, srv); st.CueSeq != goroutines*each || st.Cue != "ring" {
		t.Errorf("cue %q seq %d, want ring seq %d", st.Cue, st.CueSeq, goroutines*each)
	}
}

// TestCameraSocket: the panel unplugs and replugs the simulated camera, the
// socket a synthetic camera is opened on follows, and the state says so.
func TestCameraSocket(t *testing.T) {
	b, srv := newBoard(t, simboard.Options{})
	post := func(path string) {
		resp, err := srv.Client().Post(srv.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	if !state(t, srv).CameraPlugged || !b.CameraSocket().Plugged() {
		t.Fatal("camera not plugged in at start")
	}
	post("/api/camera/unplug")
	if state(t, srv).CameraPlugged || b.CameraSocket().Plugged() {
		t.Fatal("camera still plugged in after unplug")
	}
	if _, err := synth.NewCamera(synth.CameraOptions{Width: 320, Height: 240, FPS: 15, Socket: b.CameraSocket()}); !errors.Is(err, synth.ErrUnplugged) {
		t.Fatalf("NewCamera on the empty socket: %v, want ErrUnplugged", err)
	}
	post("/api/camera/replug")
	if !state(t, srv).CameraPlugged {
		t.Fatal("camera not back after replug")
	}
}

// TestPanelClickInBrowser clicks the panel's button in real Chromium the way
// a touchpad tap does, letting go at once. The terminal's 30 ms debounce
// drops a contact that short, so the panel must hold the button down like a
// finger would: the click must arrive as exactly one press.
func TestPanelClickInBrowser(t *testing.T) {
	opts := testButton
	opts.Debounce = device.DefaultDebounce
	// Room for a slow machine between the panel's hold and release.
	opts.LongPress, opts.StuckAfter = 2*time.Second, 20*time.Second
	b, srv := newBoard(t, simboard.Options{Button: opts})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	page, _ := browsertest.Launch(ctx, t)
	if _, err := chromedp.Run(page, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#call"))); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, b); ev.Kind != device.Press {
		t.Fatalf("event %v, want a press", ev.Kind)
	}
	noMoreEvents(t, b, 300*time.Millisecond)
}
