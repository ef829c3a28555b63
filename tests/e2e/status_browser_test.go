package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/media/synth"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// pageHealth is what the page says of the terminal (app.js's test hooks).
type pageHealth struct {
	Health string   `json:"health"`
	Faults []string `json:"faults"`
	Online bool     `json:"online"`
	Text   string   `json:"text"`
}

func readHealth(page context.Context) (pageHealth, error) {
	return chromedp.Run(page, chromedp.Evaluate[pageHealth](`({health: window.tuanju.health, faults: window.tuanju.faults,
		online: window.tuanju.online, text: document.getElementById('presence-text').textContent})`))
}

// waitHealth waits until the page says health (and, for needs_repair, the
// faults).
func waitHealth(t *testing.T, page context.Context, health string, faults ...string) pageHealth {
	t.Helper()
	var h pageHealth
	eventually(t, step, fmt.Sprintf("the page says the terminal is %s %v (it says %+v)", health, faults, h), func() bool {
		var err error
		h, err = readHealth(page)
		return err == nil && h.Health == health && fmt.Sprint(h.Faults) == fmt.Sprint(faultsOrEmpty(faults))
	})
	return h
}

func faultsOrEmpty(f []string) []string {
	if f == nil {
		return []string{}
	}
	return f
}

// TestBrowserHonestStatus: the page says what the terminal says of itself.
// A real terminal whose camera is pulled out shows needs-repair, and the
// parent's page (Chromium) says "needs repair (the camera)" instead of
// "online"; the parent's call is refused at once, with the reason, rather
// than ringing 45 s into silence. Back in its socket: ready again; in a
// call: in a call.
func TestBrowserHonestStatus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sock := &synth.Socket{}
	r := startTerminal(t, ctx, rendezvoustest.NewServer(t, nil), terminalOpts{cameraSocket: sock})
	page := pairBrowser(t, r)
	if h := waitHealth(t, page, "ready"); !strings.Contains(h.Text, "ready") || !h.Online {
		t.Fatalf("page says %+v, want the terminal ready", h)
	}

	sock.Unplug()
	r.waitPattern(device.Fault, "needs-repair with the camera out")
	h := waitHealth(t, page, "needs_repair", "camera")
	if h.Text != "Your child's terminal needs repair (the camera)" || strings.Contains(h.Text, "online") {
		t.Fatalf("page says %q, want that the terminal needs repair (the camera)", h.Text)
	}

	// The parent calls anyway: the terminal cannot ring, and says so.
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#call"))); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "ended", step); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(page, chromedp.Evaluate[string](`document.getElementById('ended-title').textContent`))
	if err != nil || title != "The terminal needs repair" {
		t.Fatalf("after calling a unit that needs repair the page says %q (%v)", title, err)
	}
	if p := r.board.State().Pattern; p != device.Fault {
		t.Fatalf("terminal lights %q after the refused call, want fault", p)
	}

	sock.Replug()
	r.waitPattern(device.Ready, "ready with the camera back")
	waitHealth(t, page, "ready")

	// In a call, the page (any of the parent's phones) says so.
	browserAnswersChild(t, r, page)
	r.waitPattern(device.InCall, "terminal in the call")
	waitHealth(t, page, "in_call")
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#hangup"))); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, page, "ready")
}

// TestBrowserOwnReconnect: the page's own link goes (the server stops). The
// page must not go on saying that the terminal is online: it says it is
// connecting to the server, until a server says again how the terminal is.
func TestBrowserOwnReconnect(t *testing.T) {
	r := newRig(t, nil)
	page := pairBrowser(t, r)
	waitHealth(t, page, "ready")
	r.srv.Close()
	h := waitHealth(t, page, "connecting")
	if h.Online || h.Text != "Connecting to the server…" {
		t.Fatalf("page says %+v while its own socket is down, want connecting and not online", h)
	}
}

// TestBrowserTwoPhonesPairing: two phones open the terminal's label at
// once. The first one's request waits for the child's press; the second is
// told that another phone is pairing right now — not "too many tries" —
// and the first pairs.
func TestBrowserTwoPhonesPairing(t *testing.T) {
	r := newRig(t, nil)
	first, cancel := browsertest.Launch(r.ctx, t)
	t.Cleanup(cancel)
	if _, err := chromedp.Run(first, chromedp.Navigate(r.term.PairingURL())); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Pairing, "the terminal asks for the press (the first phone's request)")

	second, cancel2 := browsertest.Launch(r.ctx, t)
	t.Cleanup(cancel2)
	if _, err := chromedp.Run(second, chromedp.Navigate(r.term.PairingURL())); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the second phone is told another is pairing", func() bool {
		code, err := chromedp.Run(second, chromedp.Evaluate[string](`window.tuanju.lastError || ''`))
		return err == nil && code == "pair_busy"
	})
	text, err := chromedp.Run(second, chromedp.Evaluate[string](`document.getElementById('pair-error').textContent`))
	if err != nil || !strings.Contains(text, "Another phone is pairing with this terminal right now") || strings.Contains(text, "Too many") {
		t.Fatalf("the second phone says %q (%v)", text, err)
	}

	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(first, "home", step); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the terminal paired with the first phone", func() bool {
		s := r.term.Status()
		return s.Paired && s.State == "idle"
	})
	if s, err := chromedp.Run(second, chromedp.Evaluate[string](`document.body.dataset.state`)); err != nil || s != "pairing" {
		t.Fatalf("the second phone is in %q (%v), want still pairing (not paired)", s, err)
	}
}

// TestBrowserPictureWhole: the child's picture (4:3 from the terminal's
// camera) on a portrait phone is shown whole. Measured in Chromium: the
// picture's box as the video element draws it (its object-fit, its size and
// the video's) lies inside the call screen, and spans its width; and the
// screenshot shows it: the picture reaches both edges of the screen in the
// middle, above and below it is the dark background. (Before, "cover" cut
// off two thirds of its width.)
func TestBrowserPictureWhole(t *testing.T) {
	r := newRig(t, nil)
	page := pairBrowser(t, r)
	// A phone held upright (the size of a common 6" phone).
	if err := chromedp.Do(page, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait)); err != nil {
		t.Fatal(err)
	}
	answerChildsCall(t, r, page, "for the picture")
	// Let the overlays settle: the quality line, the status.
	eventually(t, step, "the call is connected on the page", func() bool {
		hidden, err := chromedp.Run(page, chromedp.Evaluate[bool](`document.getElementById('call-status').hidden`))
		return err == nil && hidden
	})

	type box struct {
		VW, VH             float64 // the video's own size
		X, Y, W, H         float64 // the picture as drawn
		FrameW, FrameH     float64 // the call screen
		ShownW, ShownH     float64 // the share of the picture's width and height on the screen
		Fit                string
		ElementW, ElementH float64
	}
	b, err := chromedp.Run(page, chromedp.Evaluate[box](`(() => {
		const v = document.getElementById('remote-video');
		const frame = document.getElementById('screen-call').getBoundingClientRect();
		const r = v.getBoundingClientRect();
		const fit = getComputedStyle(v).objectFit;
		const vw = v.videoWidth, vh = v.videoHeight;
		let w = r.width, h = r.height; // fill
		if (fit === 'contain' || fit === 'cover' || fit === 'scale-down') {
			let s = (fit === 'cover' ? Math.max : Math.min)(r.width / vw, r.height / vh);
			if (fit === 'scale-down') s = Math.min(s, 1);
			w = vw * s; h = vh * s;
		} else if (fit === 'none') { w = vw; h = vh; }
		const x = r.left + (r.width - w) / 2, y = r.top + (r.height - h) / 2; // object-position: center
		const visW = Math.max(0, Math.min(x + w, frame.right) - Math.max(x, frame.left));
		const visH = Math.max(0, Math.min(y + h, frame.bottom) - Math.max(y, frame.top));
		return {VW: vw, VH: vh, X: x, Y: y, W: w, H: h, FrameW: frame.width, FrameH: frame.height,
			ShownW: visW / w, ShownH: visH / h, Fit: fit, ElementW: r.width, ElementH: r.height};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("picture %vx%v drawn %.0fx%.0f at (%.0f,%.0f) in a %.0fx%.0f screen (object-fit %s): %.0f%% of its width and %.0f%% of its height shown",
		b.VW, b.VH, b.W, b.H, b.X, b.Y, b.FrameW, b.FrameH, b.Fit, 100*b.ShownW, 100*b.ShownH)
	if b.VW*3 != b.VH*4 || b.FrameH <= b.FrameW {
		t.Fatalf("want a 4:3 picture on a portrait screen, have %vx%v on %vx%v", b.VW, b.VH, b.FrameW, b.FrameH)
	}
	if b.ShownW < 0.999 || b.ShownH < 0.999 {
		t.Errorf("only %.0f%% of the picture's width and %.0f%% of its height are on the screen, want all of it", 100*b.ShownW, 100*b.ShownH)
	}
	if b.W < 0.99*b.FrameW {
		t.Errorf("the picture is %.0f wide on a %.0f screen: it should use the whole width", b.W, b.FrameW)
	}
	if d := b.W/b.H - 4.0/3; d > 0.01 || d < -0.01 {
		t.Errorf("the picture is drawn %.0fx%.0f: not 4:3, it is stretched", b.W, b.H)
	}

	// What the screen shows: picture across the middle, edge to edge;
	// background above it.
	png1, err := chromedp.Run(page, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(t.TempDir(), "picture.png"), png1, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(png1))
	if err != nil {
		t.Fatal(err)
	}
	scale := float64(img.Bounds().Dx()) / b.FrameW // device pixels per CSS pixel
	luma := func(x, y float64) float64 {
		c := img.At(int(x*scale), int(y*scale))
		rr, g, bb, _ := c.RGBA()
		return (0.299*float64(rr) + 0.587*float64(g) + 0.114*float64(bb)) / 257
	}
	mid := b.Y + b.H*0.4 // the wall of the synthetic room: bright
	for _, x := range []float64{2, b.FrameW / 2, b.FrameW - 3} {
		if l := luma(x, mid); l < 60 {
			t.Errorf("the screen at (%.0f,%.0f) is dark (%.0f): the picture does not reach there", x, mid, l)
		}
	}
	above := b.Y / 2 // between the top of the screen and the picture
	if b.Y < 40 {
		t.Fatalf("no room above the picture (it starts at %.0f)", b.Y)
	}
	if l := luma(b.FrameW/2, above); l > 40 {
		t.Errorf("the screen above the picture at y=%.0f is bright (%.0f): the picture overflows the screen", above, l)
	}
}
