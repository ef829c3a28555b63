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
	Exchange(t, offerer, answerer, nil)
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

// Exchange makes the offer and the answer, each with its candidates
// gathered, and applies them, calling beforeAnswer (if set) once the
// answerer has the offer: a browser answers on the offer's transceivers,
// so that is when an answerer adds its own tracks. Unlike Negotiate it
// does not ask for loopback candidates.
func Exchange(t testing.TB, offerer, answerer *webrtc.PeerConnection, beforeAnswer func()) {
	t.Helper()
	exchange(t, offerer, answerer, nil, nil, beforeAnswer)
}

// exchange is Exchange with each description passed through toAnswerer
// or toOfferer (if set) on its way to the other side.
func exchange(t testing.TB, offerer, answerer *webrtc.PeerConnection, toAnswerer, toOfferer func(string) string, beforeAnswer func()) {
	t.Helper()
	pass := func(f func(string) string, sdp string) string {
		if f == nil {
			return sdp
		}
		return f(sdp)
	}
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		t.Fatalf("create offer: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(offer); err != nil {
		t.Fatalf("set offer: %v", err)
	}
	<-gathered
	o := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: pass(toAnswerer, offerer.LocalDescription().SDP)}
	if err := answerer.SetRemoteDescription(o); err != nil {
		t.Fatalf("apply offer: %v", err)
	}
	if beforeAnswer != nil {
		beforeAnswer()
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
	a := webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: pass(toOfferer, answerer.LocalDescription().SDP)}
	if err := offerer.SetRemoteDescription(a); err != nil {
		t.Fatalf("apply answer: %v", err)
	}
}
