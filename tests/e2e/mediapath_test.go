package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/mediatest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestCallSurvivesMediaPathChange: the call's media path goes away while
// signalling stays up: the phone moved to another network, its old address
// is dead and its new one is not among the candidates either end knows.
// The terminal sees its peer connection go "disconnected" and makes a
// signed ICE restart (docs/protocol.md, "Resuming a call"); both ends
// gather afresh, and the call goes on over the new path. Without the
// restart ICE would fail (pion declares a connection failed 25 s after it
// went quiet) and the call with it.
func TestCallSurvivesMediaPathChange(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	r := startTerminal(t, ctx, srv, terminalOpts{})
	cred := r.pair()
	conn, err := rendezvoustest.DialPaired(ctx, srv.WSURL, cred)
	if err != nil {
		t.Fatal(err)
	}
	old := mediatest.NewLink(t, 1)
	ph := NewPhone(conn, PhoneConfig{API: loopbackAPI(t), Path: old, Log: testLog(t),
		Capture: media.CaptureConfig{Profile: media.LowData, Camera: media.SourceSynthetic, Microphone: media.SourceSynthetic}})
	pctx, pcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); ph.Run(pctx) }()
	t.Cleanup(func() { pcancel(); conn.Close(); <-done })

	if err := r.board.Press(ctx); err != nil {
		t.Fatal(err)
	}
	ring := await(t, ph, protocol.TypeRing)
	if err := ph.Accept(ctx, ring.CallID); err != nil {
		t.Fatal(err)
	}
	await(t, ph, protocol.TypeOffer)
	r.waitPattern(device.InCall, "terminal shows in call")
	waitMedia(t, r, ph.Current())
	if s := old.Stats(mediatest.AtoB); s.DeliveredPackets == 0 {
		t.Fatal("the call's media did not go through the phone's path")
	}
	phoneBefore, termBefore := ph.Current().Stats().VideoFramesDecoded, r.term.Status().Received.VideoFramesDecoded

	next := mediatest.NewLink(t, 2)
	ph.SetPath(next)
	old.SetBoth(mediatest.Impairment{Down: true})
	cut := time.Now()
	eventually(t, mediaWait, "the terminal restarts ICE and the phone answers", func() bool {
		answered, _ := ph.Restarts()
		return answered >= 1
	})
	restarted := time.Since(cut)
	eventually(t, mediaWait, "both ends decode new frames over the new path", func() bool {
		return ph.Current().Stats().VideoFramesDecoded > phoneBefore+15 && r.term.Status().Received.VideoFramesDecoded > termBefore+15
	})
	for _, d := range []mediatest.Direction{mediatest.AtoB, mediatest.BtoA} {
		if s := next.Stats(d); s.DeliveredPackets == 0 {
			t.Errorf("nothing went over the new path (direction %d): the media did not move", d)
		}
	}
	if s := r.term.Status(); s.State != "in_call" {
		t.Fatalf("terminal %s after the path changed, want in_call", s.State)
	}
	answered, refused := ph.Restarts()
	t.Logf("media path changed mid-call: ICE restart answered %v after the old path died (%d answered, %d refused); frames decoded after: phone %d, terminal %d",
		restarted.Round(100*time.Millisecond), answered, refused, ph.Current().Stats().VideoFramesDecoded-phoneBefore, r.term.Status().Received.VideoFramesDecoded-termBefore)
}
