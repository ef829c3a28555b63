package webapp_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// opusSilence is one 20 ms Opus frame of silence (CELT, full band): enough
// for the page's decoder to produce real samples without an encoder here.
var opusSilence = []byte{0xf8, 0xff, 0xfe}

// pionTerminal is a pion peer that plays the terminal's part of a call: it
// makes the offer, as the real terminal always does, over loopback only.
type pionTerminal struct {
	pc        *webrtc.PeerConnection
	audio     *webrtc.TrackLocalStaticSample
	connected chan struct{}
	gotBytes  map[string]*atomic.Int64 // RTP payload bytes from the page, by kind
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

	p := &pionTerminal{pc: pc, connected: make(chan struct{}), gotBytes: map[string]*atomic.Int64{"audio": {}, "video": {}}}
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
	var once atomic.Bool
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s == webrtc.ICEConnectionStateConnected && once.CompareAndSwap(false, true) {
			close(p.connected)
		}
	})
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

	term.pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		init := cand.ToJSON()
		c.send(protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: &protocol.Candidate{
			Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment,
		}})
	})
	offer, err := term.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := term.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	c.send(protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: offer.SDP})

	// The page answers, then trickles its candidates; every one must pass
	// the server's validator (the fake checks) and pion must accept it.
	answered := false
	var early []webrtc.ICECandidateInit
	candidates := 0
	deadline := time.After(20 * time.Second)
	for !answered || !isClosed(term.connected) {
		select {
		case m := <-c.msgs:
			if m.CallID != id {
				t.Fatalf("page sent %s for call %q, want %q", m.Type, m.CallID, id)
			}
			switch m.Type {
			case protocol.TypeAnswer:
				c.checkSigned(m)
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
				if !answered {
					early = append(early, ci)
				} else if err := term.pc.AddICECandidate(ci); err != nil {
					t.Errorf("pion rejects candidate %q: %v", ci.Candidate, err)
				}
			default:
				t.Fatalf("page sent %s during call setup", m.Type)
			}
		case <-term.connected:
			if answered {
				continue
			}
		case <-deadline:
			t.Fatalf("no ICE connection within 20 s (answered %v, %d candidates from the page)", answered, candidates)
		}
	}
	if candidates == 0 {
		t.Error("the page sent no ICE candidates")
	}

	// Send the terminal's audio (Opus silence) so the page's decoder runs.
	audioCtx, stopAudio := context.WithCancel(context.Background())
	defer stopAudio()
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-audioCtx.Done():
				return
			case <-tick.C:
				term.audio.WriteSample(media.Sample{Data: opusSilence, Duration: 20 * time.Millisecond})
			}
		}
	}()

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

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
