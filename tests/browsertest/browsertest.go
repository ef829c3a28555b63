// Package browsertest starts Debian's headless Chromium as the parent's phone
// for end-to-end tests, with fake camera and microphone and no permission
// prompts, and reads the parent app's test hooks (window.tuanju).
package browsertest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// DefaultPath is where Debian's chromium package installs the real binary
// (/usr/bin/chromium is a shell wrapper).
const DefaultPath = "/usr/lib/chromium/chromium"

// Flags are the Chromium switches every test browser gets: headless, no
// network chatter of its own, fake media devices that need no prompt, sound
// that may start without a tap, and loopback ICE candidates (the tests' only
// network).
var Flags = []string{
	"headless",
	"no-sandbox",
	"disable-gpu",
	"disable-quic",
	"no-first-run",
	"disable-background-networking",
	"disable-component-update",
	"disable-sync",
	"use-fake-device-for-media-stream",
	"use-fake-ui-for-media-stream",
	"allow-loopback-in-peer-connection",
	// Keep timers and media running although no window is ever shown.
	"disable-background-timer-throttling",
	"disable-renderer-backgrounding",
	"disable-backgrounding-occluded-windows",
	"disable-dev-shm-usage",
}

// Path returns the Chromium binary to use: $CHROMIUM, else DefaultPath. It
// returns "" when that file does not exist.
func Path() string {
	p := os.Getenv("CHROMIUM")
	if p == "" {
		p = DefaultPath
	}
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Launch starts a fresh Chromium (its own profile in t.TempDir()) and returns
// a chromedp context for one tab. The page's console errors, warnings and
// uncaught exceptions go to t.Logf. The browser stops when cancel is called
// or the test ends.
//
// Without Chromium the test is skipped, unless TUANJU_REQUIRE_BROWSER=1, which
// CI sets so that a missing browser fails instead of passing silently.
//
// extra are more allocator options, e.g. a flag that trusts a test server's
// certificate.
func Launch(ctx context.Context, t testing.TB, extra ...chromedp.ExecAllocatorOption) (context.Context, context.CancelFunc) {
	t.Helper()
	bin := Path()
	if bin == "" {
		msg := fmt.Sprintf("browsertest: no Chromium at %s (set CHROMIUM to its path)", DefaultPath)
		if os.Getenv("TUANJU_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + "; TUANJU_REQUIRE_BROWSER=1 requires one")
		}
		t.Skip(msg)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.WindowSize(390, 844),
	}
	for _, f := range Flags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)

	// Start the browser now, so that a broken Chromium fails here and
	// clearly, not in the first action of the test.
	if err := chromedp.Do(tabCtx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("browsertest: start %s: %v", bin, err)
	}

	var mu sync.Mutex
	done := false
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Logf(format, args...)
		}
	}
	messages := chromedp.Console(tabCtx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
				logf("browser %s: %s", m.Type, m.Text)
			}
		}
	}()

	var once sync.Once
	cancel := func() {
		once.Do(func() {
			mu.Lock()
			done = true
			mu.Unlock()
			cancelTab()
			cancelAlloc()
		})
	}
	t.Cleanup(cancel)
	return tabCtx, cancel
}

// Languages is the option that makes the browser ask for languages (as
// navigator.languages, the Accept-Language header and a service worker's
// self.navigator.languages say), e.g. "zh-CN,zh" or "en-US": the parent's
// page picks its language from it. Without it Chromium asks for en-US.
func Languages(accept string) chromedp.ExecAllocatorOption {
	return chromedp.Flag("accept-lang", accept)
}

// WaitState waits until the app's body has data-state=state (see app.js).
func WaitState(ctx context.Context, state string) error {
	if err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS(fmt.Sprintf(`body[data-state=%q]`, state)))); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.dataset.state : ""`))
		return fmt.Errorf("browsertest: wait for state %q (now %q): %w", state, got, err)
	}
	return nil
}

// WaitStateFor is WaitState with a timeout.
func WaitStateFor(ctx context.Context, state string, d time.Duration) error {
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := WaitState(tctx, state)
	if err != nil && ctx.Err() == nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.dataset.state : ""`))
		return fmt.Errorf("browsertest: state %q not reached in %v (now %q)", state, d, got)
	}
	return err
}

// CallStats is window.tuanju.stats(): what the page's RTCPeerConnection has
// received and sent in the current (or last) call.
type CallStats struct {
	Video struct {
		FramesDecoded    int64 `json:"framesDecoded"`
		BytesReceived    int64 `json:"bytesReceived"`
		KeyFramesDecoded int64 `json:"keyFramesDecoded"`
		FrameWidth       int64 `json:"frameWidth"`
		FrameHeight      int64 `json:"frameHeight"`
		// FreezeCount and TotalFreezesDuration (seconds) are Chromium's
		// own count of the picture's pauses.
		FreezeCount          int64   `json:"freezeCount"`
		TotalFreezesDuration float64 `json:"totalFreezesDuration"`
	} `json:"video"`
	Audio struct {
		BytesReceived int64 `json:"bytesReceived"`
		// TotalSamplesReceived counts the samples played, ConcealedSamples
		// those of them the decoder made up: for lost or late packets, and
		// in the sender's pauses (Opus DTX sends no packets there).
		TotalSamplesReceived int64 `json:"totalSamplesReceived"`
		ConcealedSamples     int64 `json:"concealedSamples"`
		// PacketsReceived and PacketsLost (by sequence number) add up to
		// the packets the sender sent.
		PacketsReceived int64 `json:"packetsReceived"`
		PacketsLost     int64 `json:"packetsLost"`
	} `json:"audio"`
	Outbound struct {
		VideoBytesSent int64 `json:"videoBytesSent"`
		AudioBytesSent int64 `json:"audioBytesSent"`
		// AudioPacketsSent counts the page's audio packets.
		AudioPacketsSent int64 `json:"audioPacketsSent"`
		VideoFramesSent  int64 `json:"videoFramesSent"`
		// VideoNACKs are the NACKs the page's video sender got,
		// VideoRetransmitted the packets it sent again.
		VideoNACKs         int64 `json:"videoNacks"`
		VideoRetransmitted int64 `json:"videoRetransmitted"`
		// VideoHeaderBytesSent counts the video's RTP headers and padding
		// (a browser's bandwidth probes), VideoRetransmittedBytes the
		// payload sent again; VideoTargetBitrate and
		// AvailableOutgoingBitrate are the browser's own estimate, bit/s.
		VideoHeaderBytesSent     int64   `json:"videoHeaderBytesSent"`
		VideoRetransmittedBytes  int64   `json:"videoRetransmittedBytes"`
		VideoTargetBitrate       float64 `json:"videoTargetBitrate"`
		AvailableOutgoingBitrate float64 `json:"availableOutgoingBitrate"`
		VideoRtx                 bool    `json:"videoRtx"`
	} `json:"outbound"`
	// DataBytes estimates what the call cost on the phone's data plan: the
	// sum of DataSent (the phone's camera and microphone) and DataReceived
	// (the terminal's), packet headers included.
	DataBytes    int64 `json:"dataBytes"`
	DataSent     int64 `json:"dataSent"`
	DataReceived int64 `json:"dataReceived"`
	// Route is the selected candidate pair's local side: its type (host,
	// srflx, prflx, relay) and, for a relay, the transport to it.
	Route struct {
		LocalType     string `json:"localType"`
		RelayProtocol string `json:"relayProtocol"`
	} `json:"route"`
}

// Stats evaluates window.tuanju.stats() in the page.
func Stats(ctx context.Context) (CallStats, error) {
	s, err := chromedp.Run(ctx, chromedp.Evaluate[CallStats](`window.tuanju.stats()`, chromedp.EvalAwaitPromise))
	if err != nil {
		return CallStats{}, fmt.Errorf("browsertest: stats: %w", err)
	}
	return s, nil
}

// RouteMedia sends the page's calls through a relay (a mediatest.Link)
// without touching what is signed: the page applies every candidate of
// the other side's SDP and trickle pointed at remote (the socket the page
// sends into), and its own, in the answer it signs and in what it
// trickles, point at local (the socket the other side sends into). Only
// UDP candidates are kept, each as a host candidate (as
// mediatest.Link.RewriteCandidate does in Go). It applies to the page
// now and to every page the tab loads from here on.
func RouteMedia(ctx context.Context, remote, local netip.AddrPort) error {
	script := fmt.Sprintf(routeMediaJS, remote.Addr(), remote.Port(), local.Addr(), local.Port())
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script})
		return err
	}))
	if err != nil {
		return fmt.Errorf("browsertest: route media: %w", err)
	}
	// The page open now runs it too.
	if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](script)); err != nil || !ok {
		return fmt.Errorf("browsertest: route media in the open page: %v, %w", ok, err)
	}
	return nil
}

// routeMediaJS wraps RTCPeerConnection's prototype once per page: the
// route, given as its four values, may change when it runs again.
const routeMediaJS = `(() => {
	const route = { remote: { ip: %q, port: %d }, local: { ip: %q, port: %d } };
	if (window.__tuanjuRoute) { window.__tuanjuRoute = route; return true; }
	window.__tuanjuRoute = route;
	const point = (line, to) => {
		const f = line.trim().split(/\s+/);
		if (f.length < 8 || f[2].toLowerCase() !== 'udp') return null;
		f[4] = to.ip; f[5] = String(to.port); f[7] = 'host';
		return f.slice(0, 8).join(' ');
	};
	const pointSDP = (sdp, to) => sdp.split('\r\n').flatMap((l) => {
		if (!l.startsWith('a=candidate:')) return [l];
		const p = point(l.slice(2), to);
		return p ? ['a=' + p] : [];
	}).join('\r\n');
	const P = RTCPeerConnection.prototype;
	const setRemote = P.setRemoteDescription;
	P.setRemoteDescription = function (d) {
		if (d && d.sdp) d = { type: d.type, sdp: pointSDP(d.sdp, window.__tuanjuRoute.remote) };
		return setRemote.call(this, d);
	};
	const addCandidate = P.addIceCandidate;
	P.addIceCandidate = function (c) {
		if (c && c.candidate) {
			const p = point(c.candidate, window.__tuanjuRoute.remote);
			if (!p) return Promise.resolve();
			c = { candidate: p, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment };
		}
		return addCandidate.call(this, c);
	};
	const localDesc = Object.getOwnPropertyDescriptor(P, 'localDescription');
	Object.defineProperty(P, 'localDescription', { configurable: true, get() {
		const d = localDesc.get.call(this);
		return d && d.sdp ? { type: d.type, sdp: pointSDP(d.sdp, window.__tuanjuRoute.local) } : d;
	} });
	const onCandidate = Object.getOwnPropertyDescriptor(P, 'onicecandidate');
	Object.defineProperty(P, 'onicecandidate', { configurable: true, get() { return onCandidate.get.call(this); }, set(fn) {
		onCandidate.set.call(this, fn && ((e) => {
			const c = e.candidate;
			if (!c || !c.candidate) return fn(e);
			const p = point(c.candidate, window.__tuanjuRoute.local);
			if (p) fn({ candidate: { candidate: p, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment } });
		}));
	} });
	return true;
})()`
