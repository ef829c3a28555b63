package media_test

import (
	"context"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/mediatest"
)

// TestReceiverSkipsAudioPadding: packets of padding alone on the audio
// stream (a sender's bandwidth probes: Chromium sends them in a call
// without video, each with the last packet's timestamp) are not audio:
// the receiver counts only the Opus packets, their frame length is the
// sender's, and none of them is taken for a late packet.
func TestReceiverSkipsAudioPadding(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	api, err := media.NewAPI(media.APIConfig{SettingEngine: mediatest.LoopbackSettingEngine()})
	if err != nil {
		t.Fatal(err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "phone")
	if err != nil {
		t.Fatal(err)
	}
	phone, term := mediatest.NewCall(t, api, []webrtc.TrackLocal{track})
	recv := media.NewReceiver(media.ReceiverConfig{})
	defer recv.Stop()
	term.OnTrack(func(tr *webrtc.TrackRemote, rr *webrtc.RTPReceiver) { _ = recv.Handle(tr, rr) })
	mediatest.Negotiate(t, phone, term)

	// 20 ms Opus packets (a SILK 20 ms TOC byte and its frame), a probe of
	// padding alone after every fourth.
	const packets, frame = 60, 960
	frameBytes := make([]byte, 40)
	frameBytes[0] = 1 << 3 // config 1: SILK narrowband, 20 ms; mono; one frame
	for i := 1; i < len(frameBytes); i++ {
		frameBytes[i] = byte(i * 37)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var seq uint16
	var probes int
	for i := range packets {
		<-tick.C
		ts := uint32(i * frame)
		seq++
		if err := track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}, Payload: frameBytes}); err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 {
			seq++
			probes++
			pad := &rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, PaddingSize: 200, SequenceNumber: seq, Timestamp: ts}}
			if err := track.WriteRTP(pad); err != nil {
				t.Fatal(err)
			}
		}
	}
	var s media.Stats
	for s = recv.Stats(); s.AudioPackets < packets; s = recv.Stats() {
		select {
		case <-ctx.Done():
			t.Fatalf("%d audio packets received, want %d: %+v", s.AudioPackets, packets, s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	time.Sleep(300 * time.Millisecond) // the last packets play; then no more come
	s = recv.Stats()
	t.Logf("%d packets and %d probes sent: %+v", packets, probes, s)
	if s.AudioPackets != packets || s.AudioFrame() != 20*time.Millisecond {
		t.Errorf("%d audio packets of %v, want %d of 20ms: the %d probes counted", s.AudioPackets, s.AudioFrame(), packets, probes)
	}
	if s.AudioPacketsLate != 0 || s.AudioDecodeErrors != 0 {
		t.Errorf("%d packets late, %d decode errors, want none", s.AudioPacketsLate, s.AudioDecodeErrors)
	}
}
