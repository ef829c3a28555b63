package imageboot_test

import (
	"cmp"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/tests/browsertest"
)

// simICEPort is the ICE-TCP port the image-sim image's terminald listens on
// (buildroot/sim/terminald-sim.toml): the VM is behind qemu's user network,
// which drops the guest's UDP with restrict=on, so media take ICE-TCP on one
// port, forwarded from the host's 127.0.0.1 (tests/vm/README.md, "The
// network").
const simICEPort = 47000

// minFrames is what the page must decode of the unit's camera (vivid).
const minFrames = 60

// TestImageCallFromChromium: a flashed unit of the image boots, the
// parent's page in headless Chromium on the host pairs with it (the press
// on the console), the child presses, the page answers, and the page
// decodes the unit's camera over the forwarded ICE-TCP port. The server
// runs without TURN: that port is the only media path.
func TestImageCallFromChromium(t *testing.T) {
	h := newHarness(t)
	h.fwd = "hostfwd=tcp:127.0.0.1:" + strconv.Itoa(simICEPort) + "-:" + strconv.Itoa(simICEPort)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	page, closePage := browsertest.Launch(ctx, t)
	defer closePage()

	u := h.newUnit(t, "call")
	v := h.boot(t, u)
	v.await(t, bootWait, logConnected)
	if _, err := chromedp.Run(page, chromedp.Navigate(u.link)); err != nil {
		t.Fatal(err)
	}
	v.await(t, stepWait, logPairReq)
	v.blinking(t, stepWait, "001")
	h.pressUntil(page, t, v, "the page paired", func(ctx context.Context) error {
		if err := browsertest.WaitState(ctx, "home"); err != nil {
			return cmp.Or(ctx.Err(), err)
		}
		return nil
	})
	if p, err := h.srv.Registry().ParentOf(u.deviceID); err != nil || p == "" {
		t.Fatalf("the server does not pair %s after the page's pairing: %q, %v", u.deviceID, p, err)
	}
	// Ready: green alone, the page online.
	v.steady(t, stepWait, "100", readyHold)

	h.pressUntil(page, t, v, "the page rang", func(ctx context.Context) error {
		if err := browsertest.WaitState(ctx, "incoming"); err != nil {
			return cmp.Or(ctx.Err(), err)
		}
		return nil
	})
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#answer"))); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "call", stepWait); err != nil {
		t.Fatal(err)
	}
	v.steady(t, stepWait, "001", readyHold) // in call: blue steady
	var st browsertest.CallStats
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var err error
		st, err = browsertest.Stats(page)
		if err == nil && st.Video.FramesDecoded >= minFrames {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page decoded %d frames of the unit's camera in 2 min, want ≥ %d (stats err %v)", st.Video.FramesDecoded, minFrames, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("host: the page decoded %d frames (%dx%d) of the unit's camera, %d audio samples; route %s",
		st.Video.FramesDecoded, st.Video.FrameWidth, st.Video.FrameHeight, st.Audio.TotalSamplesReceived, st.Route.LocalType)
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#hangup"))); err != nil {
		t.Fatal(err)
	}
	l := v.await(t, stepWait, logCallEnded)
	t.Logf("host: the unit logged %s", l.text)
	v.steady(t, stepWait, "100", readyHold)
}
