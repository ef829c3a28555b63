package webapp_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/tuanju/tuanju/media/mediatest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// opusSilence is one 20 ms Opus frame of silence (CELT, full band): enough
// for the page's decoder to produce real samples without an encoder here.
var opusSilence = []byte{0xf8, 0xff, 0xfe}

// pionTerminal is a pion peer that plays the terminal's part of a call: it
// makes the offer, as the real terminal always does, over loopback only.
type pionTerminal struct {
	pc       *webrtc.PeerConnection
	audio    *webrtc.TrackLocalStaticSample
	ice      atomic.Int32             // the ICE connection state now
	gotBytes map[string]*atomic.Int64 // RTP payload bytes from the page, by kind
	// via, if set, carries the media (mediatest.Link): the SDP and the
	// candidates each way are pointed at its sockets.
	via *mediatest.Link
}

// cert is the DTLS certificate the page pinned at pairing.
func newPionTerminal(t *testing.T, cert webrtc.Certificate) *pionTerminal {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me))
	pc, err := api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{cert}})
	if err != nil {
		t.Fatalf("pion: new peer connection: %v", err)
	}
	t.Cleanup(func() { pc.Close() })

	p := &pionTerminal{pc: pc, gotBytes: map[string]*atomic.Int64{"audio": {}, "video": {}}}
	p.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "terminal")
	if err != nil {
		t.Fatal(err)
	}
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, "video", "terminal")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []webrtc.TrackLocal{p.audio, video} {
		if _, err := pc.AddTrack(tr); err != nil {
			t.Fatalf("pion: add track: %v", err)
		}
	}
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) { p.ice.Store(int32(s)) })
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		n := p.gotBytes[tr.Kind().String()]
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			n.Add(int64(len(pkt.Payload)))
		}
	})
	return p
}

// negotiate sends the terminal's offer for call id (restart 0: the
// first; n: ICE restart n), takes the page's answer and its trickled
// candidates (every one must pass the server's validator, which the fake
// applies, and pion must accept it) until ICE is connected, and returns how
// many candidates the page sent.
func (term *pionTerminal) negotiate(t *testing.T, c *pageConn, id string, restart int) (candidates int) {
	t.Helper()
	return term.negotiateWith(t, c, id, restart, "")
}

// negotiateWith is negotiate with an offer that carries nonce (none if
// ""): the terminal's accept nonce, in its offer to the page's prepare of
// its own call. The fake signs it over the ring's nonce and this one (and
// the offer's hash), and the page's answer must sign them too.
func (term *pionTerminal) negotiateWith(t *testing.T, c *pageConn, id string, restart int, nonce string) (candidates int) {
	t.Helper()
	// Candidates gathered before the offer has gone out wait for it, as
	// the terminal's do: one that reached the page first would be taken
	// for the previous ICE generation's (a restart then never connected).
	var mu sync.Mutex
	var held []protocol.Message
	offered := false
	term.pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		init := cand.ToJSON()
		if term.via != nil {
			var ok bool
			if init.Candidate, ok = term.via.RewriteCandidate(init.Candidate, mediatest.BtoA); !ok {
				return
			}
		}
		m := protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: &protocol.Candidate{
			Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment,
		}}
		mu.Lock()
		defer mu.Unlock()
		if !offered {
			held = append(held, m)
			return
		}
		c.send(m)
	})
	offer, err := term.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart > 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := term.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	sdp := offer.SDP
	if term.via != nil {
		sdp = term.via.Rewrite(sdp, mediatest.BtoA)
	}
	mu.Lock()
	c.send(protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp, Restart: restart, Nonce: nonce})
	for _, m := range held {
		c.send(m)
	}
	offered = true
	mu.Unlock()

	connected := func() bool { return webrtc.ICEConnectionState(term.ice.Load()) == webrtc.ICEConnectionStateConnected }
	answered := false
	var early []webrtc.ICECandidateInit
	deadline := time.After(20 * time.Second)
	for !answered || !connected() {
		select {
		case m := <-c.msgs:
			if m.CallID != id {
				t.Fatalf("page sent %s for call %q, want %q", m.Type, m.CallID, id)
			}
			switch m.Type {
			case protocol.TypeAnswer:
				c.checkSigned(m)
				if m.Restart != restart {
					t.Fatalf("page answered restart %d, want %d", m.Restart, restart)
				}
				if term.via != nil {
					m.SDP = term.via.Rewrite(m.SDP, mediatest.AtoB)
				}
				if err := term.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
					t.Fatalf("pion rejects the page's answer: %v", err)
				}
				answered = true
				for _, ci := range early {
					if err := term.pc.AddICECandidate(ci); err != nil {
						t.Errorf("pion rejects candidate %q: %v", ci.Candidate, err)
					}
				}
			case protocol.TypeCandidate:
				candidates++
				ci := webrtc.ICECandidateInit{Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid, SDPMLineIndex: m.Candidate.SDPMLineIndex, UsernameFragment: m.Candidate.UsernameFragment}
				if term.via != nil {
					var ok bool
					if ci.Candidate, ok = term.via.RewriteCandidate(ci.Candidate, mediatest.AtoB); !ok {
						continue
					}
				}
				if !answered {
					early = append(early, ci)
				} else if err := term.pc.AddICECandidate(ci); err != nil {
					t.Errorf("pion rejects candidate %q: %v", ci.Candidate, err)
				}
			default:
				t.Fatalf("page sent %s during call setup", m.Type)
			}
		case <-time.After(50 * time.Millisecond): // look at the ICE state again
		case <-deadline:
			t.Fatalf("no ICE connection within 20 s (restart %d, answered %v, %d candidates from the page; pion's ICE %s)", restart, answered, candidates, webrtc.ICEConnectionState(term.ice.Load()))
		}
	}
	return candidates
}

// sendSilence sends the terminal's audio (Opus silence) every 20 ms until
// the test ends, so the page's decoder runs.
func (term *pionTerminal) sendSilence(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				term.audio.WriteSample(media.Sample{Data: opusSilence, Duration: 20 * time.Millisecond})
			}
		}
	}()
}

func TestCallWithPionTerminal(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx, c, _ := parentPage(t, f)
	term := newPionTerminal(t, c.term.cert)

	id := protocol.NewID()
	c.send(protocol.Message{Type: protocol.TypeRing, CallID: id})
	waitState(t, ctx, "incoming")
	click(t, ctx, "#answer")
	if m := c.expect(protocol.TypeAccept); m.CallID != id {
		t.Fatalf("accept call_id = %q, want %q", m.CallID, id)
	}

	if candidates := term.negotiate(t, c, id, 0); candidates == 0 {
		t.Error("the page sent no ICE candidates")
	}

	term.sendSilence(t)

	waitFor(t, ctx, `document.getElementById("call-status").hidden`) // the page saw connectionState "connected"
	waitState(t, ctx, "call")
	// Media flows both ways: the page decodes the terminal's audio, and sends
	// its own camera and microphone.
	waitFor(t, ctx, `window.tuanju.stats().then(s => s.audio.totalSamplesReceived > 0 && s.outbound.videoBytesSent > 0 && s.outbound.audioBytesSent > 0)`)
	st, err := browsertest.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Audio.BytesReceived == 0 || st.Audio.TotalSamplesReceived == 0 {
		t.Errorf("page stats %+v: no audio received from the terminal", st)
	}
	if st.DataBytes == 0 {
		t.Errorf("page stats %+v: data-used counter is zero", st)
	}
	for _, kind := range []string{"audio", "video"} {
		if n := term.gotBytes[kind].Load(); n == 0 {
			t.Errorf("the terminal received no %s from the page", kind)
		}
	}
	screenshot(t, ctx, "6-call")

	click(t, ctx, "#hangup")
	for {
		m := c.expect2(protocol.TypeHangup, protocol.TypeCandidate)
		if m.Type == protocol.TypeHangup {
			if m.CallID != id || m.Reason != protocol.ReasonHangup {
				t.Errorf("hang up sent %+v, want reason hangup for %s", m, id)
			}
			break
		}
	}
	waitState(t, ctx, "ended")
	// The meter counts both ways, and says so.
	waitText(t, ctx, "#ended-detail", "Data used")
	waitText(t, ctx, "#ended-detail", "sent")
	waitText(t, ctx, "#ended-detail", "received")
	last, err := browsertest.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last.DataSent <= 0 || last.DataReceived <= 0 || last.DataBytes != last.DataSent+last.DataReceived {
		t.Errorf("data meter: sent %d + received %d, total %d: want both counted and the total their sum", last.DataSent, last.DataReceived, last.DataBytes)
	}
	screenshot(t, ctx, "8-ended")
}

// TestPageKeepsCallThroughFailedPath: the call's media path goes dead
// (a mediatest.Link between Chromium and the pion terminal drops every
// packet) until the browser calls the path failed (~30 s), with the
// page's socket up. The page keeps the call, saying it is reconnecting;
// when the path is back, the terminal's ICE restart (signed, restart 1)
// is answered and media flows again in the same call. Before, "failed"
// ended the call at once, ~30 s into an outage the terminal and the
// server wait 75 s for (docs/protocol.md, "Resuming a call").
func TestPageKeepsCallThroughFailedPath(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx, c, _ := parentPage(t, f)
	term := newPionTerminal(t, c.term.cert)
	term.via = mediatest.NewLink(t, 3)

	id := protocol.NewID()
	c.send(protocol.Message{Type: protocol.TypeRing, CallID: id})
	waitState(t, ctx, "incoming")
	click(t, ctx, "#answer")
	if m := c.expect(protocol.TypeAccept); m.CallID != id {
		t.Fatalf("accept call_id = %q, want %q", m.CallID, id)
	}
	term.negotiate(t, c, id, 0)
	term.sendSilence(t)
	waitState(t, ctx, "call")
	samples := func() float64 {
		st, err := browsertest.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return float64(st.Audio.TotalSamplesReceived)
	}
	waitFor(t, ctx, `window.tuanju.stats().then(s => s.audio.totalSamplesReceived > 0)`)

	term.via.SetBoth(mediatest.Impairment{Down: true})
	cut := time.Now()
	var failedAfter time.Duration
	for failedAfter == 0 {
		lastError, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.tuanju.lastError || ""`))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case lastError == "ice_failed":
			failedAfter = time.Since(cut)
		case time.Since(cut) > 60*time.Second:
			t.Fatalf("the browser did not call the dead path failed within 60 s (last error %q)", lastError)
		}
		time.Sleep(200 * time.Millisecond) // polling the page; not an assertion
	}
	if err := browsertest.WaitStateFor(ctx, "call", time.Second); err != nil {
		t.Fatalf("the page left the call when its path failed: %v", err)
	}
	waitFor(t, ctx, `!document.getElementById("call-status").hidden`)
	before := samples()

	term.via.SetBoth(mediatest.Impairment{})
	back := time.Now()
	term.negotiate(t, c, id, 1)
	waitFor(t, ctx, `document.getElementById("call-status").hidden`) // "connected" again
	waitFor(t, ctx, fmt.Sprintf(`window.tuanju.stats().then(s => s.audio.totalSamplesReceived > %.0f + 48000)`, before))
	if err := browsertest.WaitStateFor(ctx, "call", time.Second); err != nil {
		t.Fatalf("the page is not in the call after the restart: %v", err)
	}
	t.Logf("path dead: the browser called it failed after %v; media back %v after the path (ICE restart 1)",
		failedAfter.Round(100*time.Millisecond), time.Since(back).Round(100*time.Millisecond))
}

// TestPreparedCallWithPionTerminal: the page answers the terminal's offer
// while it still rings (it prepared the call: docs/protocol.md, "Preparing
// a call") with no camera or microphone, and its connection comes up
// before the parent answers, sending nothing. After the tap its camera and
// microphone go out on that connection (replaceTrack), or, when the
// terminal makes a fresh first offer instead (its prepared connection
// failed), on a new connection answering that one.
func TestPreparedCallWithPionTerminal(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		name := map[bool]string{false: "the prepared connection carries the call", true: "a fresh offer after the accept"}[fresh]
		t.Run(name, func(t *testing.T) {
			f := newFakeRendezvous(t)
			ctx, c, _ := parentPage(t, f)
			term := newPionTerminal(t, c.term.cert)

			id := protocol.NewID()
			was := c.prepares.Load()
			c.send(protocol.Message{Type: protocol.TypeRing, CallID: id})
			waitState(t, ctx, "incoming")
			for deadline := time.Now().Add(10 * time.Second); c.prepares.Load() == was; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the page sent no prepare")
				}
			}
			term.negotiate(t, c, id, 0) // while the page still rings
			waitFor(t, ctx, fmt.Sprintf(`window.tuanju.prepared === %q`, id))
			time.Sleep(300 * time.Millisecond)
			if s := eval[string](t, ctx, `window.tuanju.state`); s != "incoming" {
				t.Fatalf("state %q after the prepared connection came up, want incoming", s)
			}
			st, err := browsertest.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Outbound.VideoBytesSent != 0 || st.Outbound.AudioBytesSent != 0 || term.gotBytes["video"].Load() != 0 || term.gotBytes["audio"].Load() != 0 {
				t.Fatalf("the page sent media before the parent answered: %+v", st.Outbound)
			}

			click(t, ctx, "#answer")
			if m := c.expect(protocol.TypeAccept); m.CallID != id || m.Nonce != c.calls.Get(id).AcceptNonce {
				t.Fatalf("accept %+v, want the prepare's nonce", m)
			}
			if fresh {
				old := term
				term = newPionTerminal(t, c.term.cert)
				old.pc.Close()
				term.negotiate(t, c, id, 0)
			}
			term.sendSilence(t)
			waitState(t, ctx, "call")
			for deadline := time.Now().Add(20 * time.Second); term.gotBytes["video"].Load() == 0 || term.gotBytes["audio"].Load() == 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the terminal got %d bytes of the page's video and %d of its audio", term.gotBytes["video"].Load(), term.gotBytes["audio"].Load())
				}
			}
			waitFor(t, ctx, `window.tuanju.stats().then(s => s.audio.totalSamplesReceived > 0)`)
		})
	}
}

// TestPreparedOwnCallWithPionTerminal: the page prepares the call it rang
// (docs/protocol.md, "Preparing a call"): once ringing, its prepare (no
// nonce) gets the terminal's offer bringing the terminal's accept nonce,
// and the page's connection comes up while it still rings, with nothing
// sent or shown either way. The terminal's accept with that nonce goes on
// over that connection, the page's camera and microphone on its senders
// with no second offer; an accept with another nonce (the terminal dropped
// its prepared connection) is followed by a fresh first offer, answered on
// a new connection. A terminal that answers no prepare is served as
// before: its accept, then its first offer.
func TestPreparedOwnCallWithPionTerminal(t *testing.T) {
	tests := []struct {
		name string
		// prepared: the terminal answers the prepare with an offer and a
		// nonce; same: its accept brings that nonce (else a fresh one, and
		// a fresh first offer follows the accept).
		prepared, same bool
	}{
		{"the prepared connection carries the call", true, true},
		{"a fresh offer after an accept with another nonce", true, false},
		{"a terminal that answers no prepare", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRendezvous(t)
			ctx, c, _ := parentPage(t, f)
			term := newPionTerminal(t, c.term.cert)

			click(t, ctx, "#call")
			id := c.expect(protocol.TypeRing).CallID
			was := c.prepares.Load()
			c.send(protocol.Message{Type: protocol.TypeRinging, CallID: id})
			if p := c.nextPrepare(t, was); p.CallID != id || p.Nonce != "" {
				t.Fatalf("prepare %+v, want one for %s with no nonce", p, id)
			}
			offered := ""
			if tc.prepared {
				offered = pairing.NewNonce()
				term.negotiateWith(t, c, id, 0, offered) // while the page still rings
				waitFor(t, ctx, fmt.Sprintf(`window.tuanju.prepared === %q`, id))
				time.Sleep(300 * time.Millisecond)
				if s := eval[string](t, ctx, `window.tuanju.state`); s != "outgoing" {
					t.Fatalf("state %q after the prepared connection came up, want outgoing", s)
				}
				st, err := browsertest.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st.DataBytes == 0 {
					t.Fatalf("page stats %+v: no ICE or DTLS counted: not the prepared connection's", st)
				}
				if st.Outbound.VideoBytesSent != 0 || st.Outbound.AudioBytesSent != 0 || term.gotBytes["video"].Load() != 0 || term.gotBytes["audio"].Load() != 0 {
					t.Fatalf("the page sent media before the terminal accepted: %+v; the terminal got %d bytes of video, %d of audio",
						st.Outbound, term.gotBytes["video"].Load(), term.gotBytes["audio"].Load())
				}
				if eval[bool](t, ctx, `!!(document.getElementById("remote-video").srcObject || document.getElementById("remote-audio").srcObject)`) {
					t.Fatal("the page put the terminal's tracks on the screen before its accept")
				}
			}

			nonce := offered
			if !tc.same {
				nonce = pairing.NewNonce()
			}
			c.send(protocol.Message{Type: protocol.TypeAccept, CallID: id, Nonce: nonce})
			if !tc.same {
				old := term
				term = newPionTerminal(t, c.term.cert)
				old.pc.Close()
				term.negotiate(t, c, id, 0)
			}
			term.sendSilence(t)
			waitState(t, ctx, "call")
			for deadline := time.Now().Add(20 * time.Second); term.gotBytes["video"].Load() == 0 || term.gotBytes["audio"].Load() == 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the terminal got %d bytes of the page's video and %d of its audio", term.gotBytes["video"].Load(), term.gotBytes["audio"].Load())
				}
			}
			waitFor(t, ctx, `window.tuanju.stats().then(s => s.audio.totalSamplesReceived > 0)`)
			waitFor(t, ctx, `!!document.getElementById("remote-audio").srcObject`)
			if tc.same {
				// The prepared connection carried it: no second answer.
				quiet := time.After(500 * time.Millisecond)
				for done := false; !done; {
					select {
					case m := <-c.msgs:
						if m.Type != protocol.TypeCandidate {
							t.Fatalf("the page sent %s after the accept of its prepared call", m.Type)
						}
					case <-quiet:
						done = true
					}
				}
			} else if tc.prepared {
				if p := eval[string](t, ctx, `window.tuanju.prepared`); p != "" {
					t.Errorf("tuanju.prepared %q after an accept with another nonce, want \"\" (dropped)", p)
				}
			}
		})
	}
}

// TestPreparedOwnCallDropped: what the page does with the prepared
// connection of its own call when the call does not go on over it. A
// cancel closes it (the terminal's side sees DTLS closed). One that fails
// while the call rings is dropped and prepared again, with a fresh
// prepare, at most twice a call (the terminal takes 3 prepares); the call
// then goes on as an unprepared one. The first failure is a real one (the
// terminal's side gone: Chromium calls it failed after ~15 s); the next two
// are offers Chromium cannot apply (no ICE credentials), signed by the
// terminal with the pinned fingerprint, so only applying them fails.
func TestPreparedOwnCallDropped(t *testing.T) {
	// start rings from the page, answers its first prepare and waits for
	// the prepared connection.
	start := func(t *testing.T) (context.Context, *pageConn, *pionTerminal, protocol.Message) {
		t.Helper()
		f := newFakeRendezvous(t)
		ctx, c, _ := parentPage(t, f)
		term := newPionTerminal(t, c.term.cert)
		click(t, ctx, "#call")
		ring := c.expect(protocol.TypeRing)
		was := c.prepares.Load()
		c.send(protocol.Message{Type: protocol.TypeRinging, CallID: ring.CallID})
		c.nextPrepare(t, was)
		term.negotiateWith(t, c, ring.CallID, 0, pairing.NewNonce())
		waitFor(t, ctx, fmt.Sprintf(`window.tuanju.prepared === %q`, ring.CallID))
		return ctx, c, term, ring
	}

	t.Run("a cancel closes it", func(t *testing.T) {
		ctx, c, term, ring := start(t)
		click(t, ctx, "#cancel")
		for {
			if m := c.expect2(protocol.TypeHangup, protocol.TypeCandidate); m.Type == protocol.TypeHangup {
				if m.CallID != ring.CallID || m.Reason != protocol.ReasonCancel {
					t.Fatalf("cancel sent %+v, want hangup cancel for %s", m, ring.CallID)
				}
				break
			}
		}
		for deadline := time.Now().Add(5 * time.Second); term.pc.SCTP().Transport().State() != webrtc.DTLSTransportStateClosed; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the terminal's DTLS is %s 5 s after the cancel, want closed", term.pc.SCTP().Transport().State())
			}
		}
	})

	t.Run("a failed one is prepared again, twice at most", func(t *testing.T) {
		ctx, c, term, ring := start(t)
		id := ring.CallID
		own := pairing.Binding{CallID: id, RingNonce: ring.Nonce}
		// reprepared waits for the page's prepare number n of the call, and
		// checks that it is the caller's again: no nonce, signed over the
		// ring's alone.
		reprepared := func(n int64, within time.Duration) {
			t.Helper()
			for deadline := time.Now().Add(within); c.prepares.Load() < n; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d prepares %v after the prepared connection was gone, want %d", c.prepares.Load(), within, n)
				}
			}
			p := *c.lastPrepare.Load()
			sig := pairing.CallSig{SignedAt: p.SignedAt, Signature: p.Signature}
			if err := pairing.VerifyCall(c.term.parent, protocol.TypePrepare, own, "", sig, time.Now()); p.CallID != id || p.Nonce != "" || err != nil {
				t.Fatalf("prepare %d: %+v (%v), want the caller's prepare of %s", n, p, err, id)
			}
		}
		was := c.prepares.Load() // the first
		term.pc.Close()
		reprepared(was+1, 30*time.Second)
		if p := eval[string](t, ctx, `window.tuanju.prepared`); p != "" {
			t.Errorf("tuanju.prepared %q after the prepared connection failed, want \"\"", p)
		}
		unusable := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:" + c.term.fp +
			"\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\n"
		c.send(protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: unusable, Nonce: pairing.NewNonce()})
		reprepared(was+2, 10*time.Second)
		c.send(protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: unusable, Nonce: pairing.NewNonce()})
		time.Sleep(time.Second) // a fourth would follow at once
		if n := c.prepares.Load(); n != was+2 {
			t.Fatalf("the page sent %d prepares of its call, want %d (the terminal takes no more)", n, was+2)
		}
		if s := eval[string](t, ctx, `window.tuanju.state`); s != "outgoing" || eval[int](t, ctx, `window.tuanju.refused`) != 0 {
			t.Fatalf("state %q, %d messages refused, after the prepared connections failed: want the call still ringing, nothing refused", s, eval[int](t, ctx, `window.tuanju.refused`))
		}

		// The call goes on unprepared: the terminal's accept, its first
		// offer, media.
		c.send(protocol.Message{Type: protocol.TypeAccept, CallID: id})
		term = newPionTerminal(t, c.term.cert)
		term.negotiate(t, c, id, 0)
		waitState(t, ctx, "call")
		for deadline := time.Now().Add(20 * time.Second); term.gotBytes["video"].Load() == 0 || term.gotBytes["audio"].Load() == 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the terminal got %d bytes of the page's video and %d of its audio", term.gotBytes["video"].Load(), term.gotBytes["audio"].Load())
			}
		}
	})
}
