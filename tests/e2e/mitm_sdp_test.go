package e2e

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// evilPeer is the compromised server's own WebRTC endpoint: it answers the
// terminal's offer with its own DTLS certificate and counts the RTP packets
// of the child's camera and microphone that reach it.
type evilPeer struct {
	pc      *webrtc.PeerConnection
	tracks  atomic.Int32
	packets atomic.Int64
}

func newEvilPeer(t *testing.T, cert webrtc.Certificate) *evilPeer {
	t.Helper()
	pc, err := loopbackAPI(t).NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	e := &evilPeer{pc: pc}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		e.tracks.Add(1)
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			e.packets.Add(1)
		}
	})
	return e
}

// answer makes the peer's own complete answer (all candidates in it) to
// the terminal's offer.
func (e *evilPeer) answer(t *testing.T, offer string) string {
	t.Helper()
	if err := e.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Errorf("evil peer: offer: %v", err)
		return ""
	}
	ans, err := e.pc.CreateAnswer(nil)
	if err != nil {
		t.Errorf("evil peer: answer: %v", err)
		return ""
	}
	done := webrtc.GatheringCompletePromise(e.pc)
	if err := e.pc.SetLocalDescription(ans); err != nil {
		t.Errorf("evil peer: local description: %v", err)
		return ""
	}
	<-done
	return e.pc.LocalDescription().SDP
}

// hideFingerprint is the outside review's SDP: the attacker's answer in
// which each fingerprint line becomes two — first the attacker's, behind a
// carriage return that a line scan does not take for a fingerprint line
// but pion's parser reads (and uses: it takes a section's first one), then
// the parent's genuine fingerprint for the scan to find and the parent's
// signature to vouch for.
func hideFingerprint(sdp, evilFP, parentFP string) string {
	return rewriteFingerprints(sdp, "\ra=fingerprint:"+evilFP+"\r\na=fingerprint:"+parentFP+"\r\n")
}

// TestMITMHiddenFingerprint: the outside review's attack, end to end. The
// server keeps the parent's genuine signed answer (its signature, its
// time) but replaces the SDP with the server's own answer carrying the
// parent's fingerprint for a line scan and its own, hidden, for pion; and
// it terminates DTLS itself. Before the fix the terminal connected to the
// server and sent it the child's camera and microphone (the review counted
// 2 tracks, 57 RTP packets). Now the terminal refuses the answer: the
// signature covers every byte of the SDP, and no SDP with a stray carriage
// return is applied at all. A control call through the same relay, left
// alone, connects.
func TestMITMHiddenFingerprint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	mm := newMITM(t, srv.WSURL)
	r := startTerminal(t, ctx, srv, terminalOpts{wsURL: mm.wsURL()})
	ph := r.phone(r.pair(), media.LowData)

	evilKey, _ := pairing.NewKey()
	evilCert, err := webrtc.GenerateCertificate(evilKey)
	if err != nil {
		t.Fatal(err)
	}
	fps, _ := evilCert.GetFingerprints()
	evilFP, err := pairing.Fingerprint(fps[0].Algorithm, fps[0].Value)
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu   sync.Mutex
		evil *evilPeer
	)
	// The terminal's trickled candidates go to the attacker's peer too.
	feed := func(m *protocol.Message) {
		if m.Type != protocol.TypeCandidate || m.Candidate == nil {
			return
		}
		mu.Lock()
		e := evil
		mu.Unlock()
		if e != nil {
			e.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid,
				SDPMLineIndex: m.Candidate.SDPMLineIndex, UsernameFragment: m.Candidate.UsernameFragment})
		}
	}
	mm.set(func(m *protocol.Message) {
		switch m.Type {
		case protocol.TypeAnswer:
			offer, ok := mm.lastSent(protocol.TypeOffer)
			if !ok || offer.CallID != m.CallID {
				t.Errorf("mitm: no offer recorded for %s", m.CallID)
				return
			}
			parentFP, err := pairing.SDPFingerprint(m.SDP)
			if err != nil {
				t.Errorf("mitm: the parent's answer: %v", err)
				return
			}
			e := newEvilPeer(t, *evilCert)
			mu.Lock()
			evil = e
			mu.Unlock()
			own := e.answer(t, offer.SDP)
			for _, c := range mm.sentAll(protocol.TypeCandidate, m.CallID) {
				feed(&c)
			}
			m.SDP = hideFingerprint(own, evilFP, parentFP) // signed_at and signature stay the parent's
		case protocol.TypeCandidate:
			// The real phone's candidates would only distract the
			// terminal's ICE from the attacker's.
			m.Candidate = &protocol.Candidate{Candidate: ""}
		}
	}, func(m *protocol.Message) { feed(m) })

	ring := childCalls(t, r, ph)
	deadline := time.Now().Add(6 * time.Second) // a connected call sends ~100 packets a second
	for time.Now().Before(deadline) {
		if s := r.term.Status().State; s == "idle" || s == "ready" {
			break // the terminal gave up on the call
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	e := evil
	mu.Unlock()
	if e == nil {
		t.Fatal("the attack never ran: the mitm saw no answer")
	}
	tracks, packets := e.tracks.Load(), e.packets.Load()
	t.Logf("hidden-fingerprint man in the middle, call %s: the attacker received %d tracks, %d RTP packets", ring.CallID, tracks, packets)
	if packets > 0 || tracks > 0 {
		t.Errorf("the server saw the child: %d tracks, %d RTP packets reached its DTLS endpoint", tracks, packets)
	}
	if r.board.State().Pattern != device.Ready {
		r.board.LongPress(r.ctx)
	}
	r.waitPattern(device.Ready, "terminal ready after the refused call")
	eventually(t, step, "the button reads released", func() bool { return !r.board.Button().Pressed() })

	// Control: the same relay, honest, carries a call with media.
	mm.set(nil, nil)
	phoneDecodes(t, ph, childCalls(t, r, ph).CallID)
}
