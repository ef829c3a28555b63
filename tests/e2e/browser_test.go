package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/certreload/certtest"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// TestBrowserParentAnswersChild: real headless Chromium (with its fake
// camera) is the parent's phone, running the web app the real rendezvous
// server serves. It pairs through the page and a press on the terminal,
// answers a call the child starts, decodes the terminal's video and audio
// (asserted from the page's getStats), sends its own media that the terminal
// decodes, and the terminal hangs up.
func TestBrowserParentAnswersChild(t *testing.T) {
	r := newRig(t, nil)
	page := pairBrowser(t, r)

	// The child calls; the page rings; the parent answers.
	browserAnswersChild(t, r, page)
	if err := browsertest.WaitStateFor(page, "call", step); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.InCall, "terminal in call")

	var st browsertest.CallStats
	eventually(t, mediaWait, "page decodes ≥5 s of the terminal's video and plays its audio", func() bool {
		var err error
		st, err = browsertest.Stats(page)
		return err == nil && st.Video.FramesDecoded >= minFrames && st.Audio.TotalSamplesReceived >= minSamples
	})
	t.Logf("page: %d frames decoded (%dx%d, %d key), %d audio samples, %d bytes in",
		st.Video.FramesDecoded, st.Video.FrameWidth, st.Video.FrameHeight, st.Video.KeyFramesDecoded,
		st.Audio.TotalSamplesReceived, st.DataBytes)
	if st.Video.FrameWidth != 320 || st.Video.FrameHeight != 240 {
		t.Errorf("page decoded %dx%d, want 320x240 (low-data profile)", st.Video.FrameWidth, st.Video.FrameHeight)
	}
	eventually(t, mediaWait, "terminal decodes the browser's H.264 and Opus", func() bool {
		s := r.term.Status().Received
		return s.VideoFramesDecoded >= 30 && s.AudioSamplesDecoded >= 2*48000
	})
	// The phone sends what the terminal's offer asks for (b=TIAS, the
	// low profile's 80 kbit/s of video), not the page's own ceiling of
	// 250 kbit/s: the child's line pays for what it receives. Counted as
	// the RTP payload the terminal received over a window of the call; a
	// busy machine only sends less.
	w := measurePhone(t, r, page, 8*time.Second)
	if w.videoKbps == 0 || w.videoKbps > 1.3*80 {
		t.Errorf("phone sent %.0f kbit/s of video, want some and at most 1.3× the low profile's 80", w.videoKbps)
	}
	w.check(t, media.Low, 1.0)

	// The terminal hangs up (long press); the page leaves the call.
	if err := r.board.LongPress(r.ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after hanging up")
	eventually(t, step, "page leaves the call", func() bool {
		s, err := chromedp.Run(page, chromedp.Evaluate[string](`document.body.dataset.state`))
		return err == nil && (s == "ended" || s == "home")
	})
}

// TestBrowserPreparedCall: the page prepares the child's ringing call
// (docs/protocol.md, "Preparing a call"): its connection to the terminal
// is up before the parent taps "answer", with no picture or sound either
// way and the terminal still calling; after the tap, camera and microphone
// join that connection (replaceTrack, no second offer) and each end
// decodes the other's video and audio.
func TestBrowserPreparedCall(t *testing.T) {
	r := newRig(t, nil)
	page := pairBrowser(t, r)
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "incoming", step); err != nil {
		t.Fatal(err)
	}
	browserPreparedIdle(t, r, page, device.Calling)

	t0 := time.Now()
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#answer"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, mediaWait, "page decodes the terminal's video", func() bool {
		st, err := browsertest.Stats(page)
		return err == nil && st.Video.FramesDecoded >= 1
	})
	t.Logf("tap on answer → first picture of the child on the page: %v (includes the ~0.5 s connect sound)", time.Since(t0).Round(time.Millisecond))
	bothDecode(t, r, page)
}

// TestBrowserPreparedOwnCall: the parent rings from the page, which
// prepares its own call once it rings: the terminal's offer, with its
// accept nonce, is answered by Chromium while the child's terminal rings,
// with no media either way; the child's press then opens the call on
// that connection, and both ends decode.
func TestBrowserPreparedOwnCall(t *testing.T) {
	r := newRig(t, nil)
	page := pairBrowser(t, r)
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#call"))); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "outgoing", step); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ringing, "the terminal rings")
	browserPreparedIdle(t, r, page, device.Ringing)

	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	eventually(t, mediaWait, "page decodes the terminal's video", func() bool {
		st, err := browsertest.Stats(page)
		return err == nil && st.Video.FramesDecoded >= 1
	})
	t.Logf("the child's press → first picture of the child on the page: %v (includes the ~0.5 s connect sound)", time.Since(t0).Round(time.Millisecond))
	bothDecode(t, r, page)
}

// browserPreparedIdle waits for the page's prepared connection while the
// call rings (the terminal's lights showing pattern), then checks that no
// media went either way: no one has answered yet. It logs what the
// connection cost the phone's data plan.
func browserPreparedIdle(t *testing.T, r *rig, page context.Context, pattern device.Pattern) {
	t.Helper()
	eventually(t, mediaWait, "the page's prepared connection is up while the call rings", func() bool {
		id, err := chromedp.Run(page, chromedp.Evaluate[string](`window.tuanju.prepared`))
		return err == nil && id != ""
	})
	time.Sleep(500 * time.Millisecond) // a while for anything that would flow to flow
	st, err := browsertest.Stats(page)
	if err != nil {
		t.Fatal(err)
	}
	if st.Video.FramesDecoded != 0 || st.Audio.TotalSamplesReceived != 0 || st.Outbound.VideoBytesSent != 0 || st.Outbound.AudioBytesSent != 0 {
		t.Fatalf("media flowed before the call was answered: %+v", st)
	}
	t.Logf("prepared, not answered: %d bytes on the phone's data plan both ways", st.DataBytes)
	if st.DataBytes == 0 || st.DataBytes > 20_000 {
		t.Errorf("a prepared connection cost %d bytes, want some (ICE and DTLS) and at most 20 kB", st.DataBytes)
	}
	if p := r.board.State().Pattern; p != pattern {
		t.Fatalf("terminal shows %q with the call prepared and not answered, want %q", p, pattern)
	}
	if rx := r.term.Status().Received; rx.VideoFramesDecoded != 0 || rx.AudioSamplesDecoded != 0 {
		t.Fatalf("the terminal decoded the parent before the call was answered: %+v", rx)
	}
}

// bothDecode waits for the page and the terminal to decode each other's
// pictures and sound, and the terminal to show the call.
func bothDecode(t *testing.T, r *rig, page context.Context) {
	t.Helper()
	eventually(t, mediaWait, "page decodes ≥5 s of the terminal's video and plays its audio", func() bool {
		st, err := browsertest.Stats(page)
		return err == nil && st.Video.FramesDecoded >= minFrames && st.Audio.TotalSamplesReceived >= minSamples
	})
	eventually(t, mediaWait, "terminal decodes the browser's H.264 and Opus", func() bool {
		s := r.term.Status().Received
		return s.VideoFramesDecoded >= 30 && s.AudioSamplesDecoded >= 2*48000
	})
	r.waitPattern(device.InCall, "terminal in call")
}

// TestBrowserRingsChildThroughTURN: the parent rings from the page and the
// child answers with a press, with the server handing out the "relay" ICE
// policy, so the only path is the embedded TURN relay (what a phone behind
// CGNAT gets).
func TestBrowserRingsChildThroughTURN(t *testing.T) {
	r := newRig(t, func(c *rendezvous.Config) { c.ICETransportPolicy = "relay" })
	page := pairBrowser(t, r)

	parentCallsChild(t, r, page, "through the relay")

	// The parent hangs up from the page; the terminal is ready again.
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#hangup"))); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after the parent hung up")
}

// TestBrowserCallsThroughTURNOverTCP: a parent on a network that lets no
// UDP out (factory and dormitory Wi-Fi often does not). The relay listens on
// TCP only and the server hands out the relay policy, so Chromium and the
// terminal can reach each other only through TURN over TCP; the page's
// selected path must say so.
func TestBrowserCallsThroughTURNOverTCP(t *testing.T) {
	r := newRig(t, func(c *rendezvous.Config) {
		c.ICETransportPolicy = "relay"
		c.TURN.Listen, c.TURN.TCPListen = "", "127.0.0.1:0"
	})
	page := pairBrowser(t, r)
	answerChildsCall(t, r, page, "through TURN over TCP")
	st, err := browsertest.Stats(page)
	if err != nil {
		t.Fatal(err)
	}
	if st.Route.LocalType != "relay" || st.Route.RelayProtocol != "tcp" {
		t.Fatalf("page's path: %+v, want a relay reached over tcp", st.Route)
	}
}

// TestBrowserOverTLS: the server speaks https and wss itself, from
// certificate files (tls_cert_file), as a deployment without a proxy does.
// The terminal trusts only the programme's CA (server_ca_file); Chromium
// trusts the server's key. The page must be a secure context (WebCrypto,
// camera and service worker need one), pair, and carry a call.
func TestBrowserOverTLS(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ca := certtest.NewCA(t)
	leaf := ca.Issue(t, t.TempDir(), "server", 1, "127.0.0.1")
	turnsPort := freeTCPPort(t)
	srv := rendezvoustest.NewServer(t, func(c *rendezvous.Config) {
		c.TLSCertFile, c.TLSKeyFile = leaf.CertFile, leaf.KeyFile
		c.PublicURL = "https://127.0.0.1" // the name turns: is checked against
		c.TURN.TLSListen = net.JoinHostPort("127.0.0.1", strconv.Itoa(turnsPort))
	})
	if !strings.HasPrefix(srv.URL, "https://") || !strings.HasPrefix(srv.WSURL, "wss://") {
		t.Fatalf("server at %s and %s, want https and wss", srv.URL, srv.WSURL)
	}
	r := startTerminal(t, ctx, srv, terminalOpts{serverRoots: ca.Pool()})
	if !strings.HasPrefix(r.term.PairingURL(), "https://") {
		t.Fatalf("pairing URL %s is not https", r.term.PairingURL())
	}
	page := pairBrowser(t, r, chromedp.Flag("ignore-certificate-errors-spki-list", leaf.SPKIHash))
	secure, err := chromedp.Run(page, chromedp.Evaluate[bool](`window.isSecureContext && location.protocol === 'https:' && !!crypto.subtle`))
	if err != nil || !secure {
		t.Fatalf("page is not a secure https context (%v)", err)
	}
	eventually(t, step, "the page's service worker controls it", func() bool {
		ok, err := chromedp.Run(page, chromedp.Evaluate[bool](`navigator.serviceWorker.getRegistration().then((r) => !!(r && r.active))`, chromedp.EvalAwaitPromise))
		return err == nil && ok
	})
	answerChildsCall(t, r, page, "over TLS signalling")

	// TURN over TLS with the same certificate (turn.tls_listen): Chromium
	// allocates a relay through it, as a phone that can only reach port 443
	// would.
	user, cred := rendezvous.TURNCredentials(srv.Config.TURN.Secret, "e2e/tls", time.Now().Add(time.Minute))
	got, err := chromedp.Run(page, chromedp.Evaluate[string](fmt.Sprintf(`new Promise((resolve) => {
		const pc = new RTCPeerConnection({iceTransportPolicy: 'relay',
			iceServers: [{urls: 'turns:127.0.0.1:%d?transport=tcp', username: %q, credential: %q}]});
		const done = (v) => { pc.close(); resolve(v); };
		setTimeout(() => done('no relay candidate in time'), 15000);
		pc.onicecandidate = (e) => {
			if (e.candidate && e.candidate.type === 'relay') done('relay over ' + e.candidate.relayProtocol);
			else if (!e.candidate) done('gathering ended without a relay candidate');
		};
		pc.createDataChannel('probe');
		pc.createOffer().then((o) => pc.setLocalDescription(o));
	})`, turnsPort, user, cred), chromedp.EvalAwaitPromise))
	if err != nil || got != "relay over tls" {
		t.Fatalf("Chromium through turns: %q, %v; want a relay over tls", got, err)
	}
}

// browserAnswersChild has the child press the button and the page, once it
// rings, answer.
func browserAnswersChild(t *testing.T, r *rig, page context.Context) {
	t.Helper()
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "incoming", step); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#answer"))); err != nil {
		t.Fatal(err)
	}
}

// answerChildsCall is browserAnswersChild, then waits until each side
// decodes the other's video; over names the path.
func answerChildsCall(t *testing.T, r *rig, page context.Context, over string) {
	t.Helper()
	browserAnswersChild(t, r, page)
	eventually(t, mediaWait, "page decodes the terminal's video "+over, func() bool {
		st, err := browsertest.Stats(page)
		return err == nil && st.Video.FramesDecoded >= minFrames
	})
	eventually(t, mediaWait, "terminal decodes the page's video "+over, func() bool {
		return r.term.Status().Received.VideoFramesDecoded >= 30
	})
}

// parentCallsChild rings the terminal from the page and answers with the
// button; both ends decode the other's video. over names the path.
func parentCallsChild(t *testing.T, r *rig, page context.Context, over string) {
	t.Helper()
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#call"))); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "outgoing", step); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ringing, "the terminal rings")
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "call", step); err != nil {
		t.Fatal(err)
	}
	eventually(t, mediaWait, "page decodes the terminal's video "+over, func() bool {
		st, err := browsertest.Stats(page)
		return err == nil && st.Video.FramesDecoded >= minFrames
	})
	eventually(t, mediaWait, "terminal decodes the page's video "+over, func() bool {
		return r.term.Status().Received.VideoFramesDecoded >= 30
	})
}

// pairBrowser starts Chromium as the parent's phone and pairs it the way a
// parent does: open the label's link, press the terminal's button when its
// lights ask. It returns the page once both sides see each other online.
func pairBrowser(t *testing.T, r *rig, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	page, cancel := browsertest.Launch(r.ctx, t, opts...)
	t.Cleanup(cancel)
	if _, err := chromedp.Run(page, chromedp.Navigate(r.term.PairingURL())); err != nil {
		t.Fatal(err)
	}
	if err := r.confirmPairing(page); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "home", step); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "terminal paired and online", func() bool {
		s := r.term.Status()
		return s.Paired && s.Online && s.State == "idle"
	})
	eventually(t, step, "page shows the terminal online", func() bool {
		on, err := chromedp.Run(page, chromedp.Evaluate[bool](`window.tuanju.online === true`))
		return err == nil && on
	})
	return page
}

// TestBrowserICEOverTCPOnOnePort: the terminal set up as for a unit behind a
// TCP port forward (ICE on one fixed port, TCP only) and a server without
// TURN, so the only way media can flow is Chromium connecting to the
// terminal's passive TCP candidate on that port. The kernel-in-the-loop call
// test (tests/vm/call) relies on exactly this path through qemu's host
// forward.
func TestBrowserICEOverTCPOnOnePort(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, func(c *rendezvous.Config) { c.TURN.Listen = "" })
	r := startTerminal(t, ctx, srv, terminalOpts{ice: terminal.ICEConfig{Port: freeTCPPort(t), Networks: []string{"tcp4"}}})
	page := pairBrowser(t, r)
	answerChildsCall(t, r, page, "over ICE-TCP")
	rx := r.term.Status().Received
	t.Logf("terminal: %d frames decoded (%d key), %d undecodable", rx.VideoFramesDecoded, rx.VideoKeyFrames, rx.VideoDecodeErrors)
}

// freeTCPPort returns a loopback TCP port that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
