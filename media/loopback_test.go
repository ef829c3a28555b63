package media_test

import (
	"context"
	"image"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/mediatest"
	"github.com/tuanju/tuanju/media/synth"
)

// TestLoopbackCall runs a whole call over real UDP sockets on 127.0.0.1: the
// terminal side offers the synthetic camera and microphone through Capture,
// the phone side decodes with Receiver.
func TestLoopbackCall(t *testing.T) {
	tests := []struct {
		profile   media.Profile
		minFrames int64 // decoded video pictures
		minAudio  time.Duration
	}{
		{media.LowData, 3 * int64(media.LowData.FPS), 3 * time.Second},
		{media.AudioOnly, 0, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.profile.Name, func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()

			api, err := media.NewAPI(media.APIConfig{SettingEngine: mediatest.LoopbackSettingEngine()})
			if err != nil {
				t.Fatal(err)
			}
			terminal := mediatest.NewPeer(t, api)
			phone := mediatest.NewPeer(t, api)

			opened := time.Now()
			capture, err := media.Open(ctx, media.CaptureConfig{
				Profile:    tt.profile,
				Camera:     media.SourceSynthetic,
				Microphone: media.SourceSynthetic,
				Log:        log,
			})
			if err != nil {
				t.Fatalf("open capture: %v", err)
			}
			defer capture.Close()
			for _, tr := range capture.Tracks() {
				if _, err := terminal.AddTrack(tr); err != nil {
					t.Fatalf("add track: %v", err)
				}
			}

			recv := media.NewReceiver(media.ReceiverConfig{WriteRTCP: phone.WriteRTCP, Log: log})
			var handlers sync.WaitGroup
			phone.OnTrack(func(tr *webrtc.TrackRemote, rr *webrtc.RTPReceiver) {
				handlers.Add(1)
				defer handlers.Done()
				if err := recv.Handle(tr, rr); err != nil {
					t.Errorf("receiver: %v", err)
				}
			})
			keyFrames := make(chan int, 1)
			terminal.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
				if s == webrtc.PeerConnectionStateConnected {
					n, err := capture.RequestKeyFrame()
					if err != nil {
						t.Errorf("request key frame: %v", err)
					}
					keyFrames <- n
				}
			})

			mediatest.Negotiate(t, terminal, phone)

			select {
			case n := <-keyFrames:
				if tt.profile.Video && n != 1 {
					t.Errorf("key frame requested from %d encoders, want 1", n)
				}
			case <-ctx.Done():
				t.Fatal("terminal never connected")
			}

			minSamples := int64(tt.minAudio / time.Second * media.AudioSampleRate)
			poll := time.NewTicker(50 * time.Millisecond)
			defer poll.Stop()
			var s media.Stats
			for s = recv.Stats(); s.VideoFramesDecoded < tt.minFrames || s.AudioSamplesDecoded < minSamples; s = recv.Stats() {
				select {
				case <-poll.C:
				case <-ctx.Done():
					t.Fatalf("deadline: decoded %d pictures (want %d) and %d samples (want %d); stats %+v",
						s.VideoFramesDecoded, tt.minFrames, s.AudioSamplesDecoded, minSamples, s)
				}
			}
			t.Logf("stats: %+v", s)
			// Each packet's header says how long it is: the profile's frame.
			if got := s.AudioFrame(); got != tt.profile.AudioFrame {
				t.Errorf("audio packets of %v (%d samples in %d packets), want the profile's %v",
					got, s.AudioPacketSamples, s.AudioPackets, tt.profile.AudioFrame)
			}

			if tt.profile.Video {
				if s.VideoWidth != tt.profile.Width || s.VideoHeight != tt.profile.Height {
					t.Errorf("decoded %dx%d, want %dx%d", s.VideoWidth, s.VideoHeight, tt.profile.Width, tt.profile.Height)
				}
				if s.VideoKeyFrames < 1 {
					t.Error("no key frame decoded")
				}
				if img := recv.LatestFrame(); img == nil || img.Bounds().Dx() != tt.profile.Width {
					t.Errorf("LatestFrame = %v, want a %dx%d picture", img, tt.profile.Width, tt.profile.Height)
				}
				if capture.Preview() == nil {
					t.Error("capture has no preview picture")
				}
				// The camera ticks at the capture rate (Profile.CaptureFPS):
				// a picture's stamp counts ticks, so the last one decoded
				// is numbered twice its place. The encoder gets the call's
				// rate, never more.
				made, sent := capture.CameraFrames()
				limit := int64(time.Since(opened).Seconds()*float64(tt.profile.FPS)) + 2
				t.Logf("camera made %d pictures, %d went to the encoder (at most %d at %d fps)", made, sent, limit, tt.profile.FPS)
				if made > limit || sent > made || sent < s.VideoFramesDecoded {
					t.Errorf("in %v at %d fps the camera made %d pictures, %d went to the encoder, %d decoded", time.Since(opened), tt.profile.FPS, made, sent, s.VideoFramesDecoded)
				}
				var tick int
				ok := false
				if img, isYCbCr := recv.LatestFrame().(*image.YCbCr); isYCbCr {
					tick, ok = synth.ReadStamp(img)
				}
				ratio := tt.profile.CaptureFPS() / tt.profile.FPS
				if !ok || int64(tick) < int64(ratio)*(s.VideoFramesDecoded-1) {
					t.Errorf("the last picture decoded (%d of them) is the camera's tick %d (stamp read: %v), want %d× its place: the camera runs at the call's rate", s.VideoFramesDecoded, tick, ok, ratio)
				}
			} else if s.VideoPackets != 0 {
				t.Errorf("audio-only call carried %d video packets", s.VideoPackets)
			}
			if s.AudioDecodeErrors != 0 {
				t.Errorf("%d audio decode errors", s.AudioDecodeErrors)
			}
			assertLoopbackOnly(t, terminal)

			if err := terminal.Close(); err != nil {
				t.Errorf("close terminal: %v", err)
			}
			if err := phone.Close(); err != nil {
				t.Errorf("close phone: %v", err)
			}
			handlers.Wait()
		})
	}
}

// assertLoopbackOnly checks the pair ICE actually chose.
func assertLoopbackOnly(t *testing.T, pc *webrtc.PeerConnection) {
	t.Helper()
	for _, s := range pc.GetStats() {
		cp, ok := s.(webrtc.ICECandidatePairStats)
		if !ok || !cp.Nominated {
			continue
		}
		for _, id := range []string{cp.LocalCandidateID, cp.RemoteCandidateID} {
			c, ok := pc.GetStats()[id].(webrtc.ICECandidateStats)
			if !ok {
				continue
			}
			if ip := net.ParseIP(c.IP); ip == nil || !ip.IsLoopback() {
				t.Errorf("nominated candidate %s is not loopback", c.IP)
			}
		}
	}
}

// TestDetachThenCloseNeverConnected: a call whose ICE never connects (no
// candidates ever exchanged) must still close. pion's Close on its own
// deadlocks in mediadevices' Unbind here; Detach first avoids it.
func TestDetachThenCloseNeverConnected(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	api, err := media.NewAPI(media.APIConfig{SettingEngine: mediatest.LoopbackSettingEngine()})
	if err != nil {
		t.Fatal(err)
	}
	terminal := mediatest.NewPeer(t, api)
	phone := mediatest.NewPeer(t, api)
	capture, err := media.Open(ctx, media.CaptureConfig{Profile: media.LowData, Camera: media.SourceSynthetic, Microphone: media.SourceSynthetic})
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	for _, tr := range capture.Tracks() {
		if _, err := terminal.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
	}
	// Offer and answer, but never a candidate: the senders bind and start
	// encoding, and ICE can never connect.
	offer, err := terminal.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := terminal.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if err := phone.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: stripCandidates(terminal.LocalDescription().SDP)}); err != nil {
		t.Fatal(err)
	}
	answer, err := phone.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := phone.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	if err := terminal.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: stripCandidates(answer.SDP)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the senders' goroutines run (not an assertion)

	done := make(chan struct{})
	go func() {
		capture.Detach(terminal)
		terminal.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("closing a never-connected call hung")
	}
	for _, s := range terminal.GetSenders() {
		if s.Track() != nil {
			t.Errorf("sender still has track %s after Detach", s.Track().ID())
		}
	}
}

// stripCandidates removes a=candidate lines: this test's peers must never connect.
func stripCandidates(sdp string) string {
	var out []string
	for _, l := range strings.Split(sdp, "\r\n") {
		if !strings.HasPrefix(l, "a=candidate:") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}
