package mediatest

import (
	"net"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// NewPeer returns a PeerConnection from api that is closed when the test ends.
func NewPeer(t testing.TB, api *webrtc.API) *webrtc.PeerConnection {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// NewCall returns a terminal peer sending tracks and a phone peer, both from
// api and closed when the test ends, ready for Negotiate.
func NewCall(t testing.TB, api *webrtc.API, tracks []webrtc.TrackLocal) (terminal, phone *webrtc.PeerConnection) {
	t.Helper()
	terminal, phone = NewPeer(t, api), NewPeer(t, api)
	for _, tr := range tracks {
		if _, err := terminal.AddTrack(tr); err != nil {
			t.Fatalf("add track: %v", err)
		}
	}
	return terminal, phone
}

// Negotiate does a non-trickle offer/answer (the offerer plays the terminal,
// which always offers) and fails the test unless both sides gathered
// candidates and every one is a loopback address.
func Negotiate(t testing.TB, offerer, answerer *webrtc.PeerConnection) {
	t.Helper()
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		t.Fatalf("create offer: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(offer); err != nil {
		t.Fatalf("set offer: %v", err)
	}
	<-gathered
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		t.Fatalf("apply offer: %v", err)
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		t.Fatalf("create answer: %v", err)
	}
	gathered = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(answer); err != nil {
		t.Fatalf("set answer: %v", err)
	}
	<-gathered
	if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
		t.Fatalf("apply answer: %v", err)
	}
	n := 0
	for _, sdp := range []string{offerer.LocalDescription().SDP, answerer.LocalDescription().SDP} {
		for line := range strings.Lines(sdp) {
			if f := strings.Fields(line); strings.HasPrefix(line, "a=candidate:") && len(f) > 4 {
				n++
				if ip := net.ParseIP(f[4]); ip == nil || !ip.IsLoopback() {
					t.Fatalf("non-loopback candidate offered: %s", strings.TrimSpace(line))
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no ICE candidates gathered: is lo up?")
	}
}
