package media_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/mediatest"
)

// TestReceiverCapsTheSender: a Receiver with MaxBitrate tells the sender,
// over a real call, the most it may send (REMB with that rate, for the
// stream it receives), again every second; one without sends none.
func TestReceiverCapsTheSender(t *testing.T) {
	for _, tt := range []struct {
		name string
		max  int
	}{{"capped", 123_000}, {"uncapped", 0}} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var seen rembLog
			api, err := media.NewAPI(media.APIConfig{SettingEngine: mediatest.LoopbackSettingEngine(),
				Interceptors: func(_ *webrtc.MediaEngine, reg *interceptor.Registry) error {
					reg.Add(&seen)
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			capture, err := media.Open(ctx, media.CaptureConfig{Profile: media.LowData,
				Camera: media.SourceSynthetic, Microphone: media.SourceSynthetic})
			if err != nil {
				t.Fatal(err)
			}
			// Cleanups run last first: the peers close before the capture,
			// as mediadevices' unbind waits for the track's running loop.
			t.Cleanup(func() { capture.Close() })
			sender, phone := mediatest.NewPeer(t, api), mediatest.NewPeer(t, api)
			ssrcs := map[uint32]bool{}
			for _, tr := range capture.Tracks() {
				s, err := sender.AddTrack(tr)
				if err != nil {
					t.Fatal(err)
				}
				ssrcs[uint32(s.GetParameters().Encodings[0].SSRC)] = true
			}
			recv := media.NewReceiver(media.ReceiverConfig{WriteRTCP: phone.WriteRTCP, MaxBitrate: tt.max})
			phone.OnTrack(func(tr *webrtc.TrackRemote, rr *webrtc.RTPReceiver) { _ = recv.Handle(tr, rr) })
			mediatest.Negotiate(t, sender, phone)
			// Pictures decoded for 2.5 s: the tracks are up, and each has
			// had time to say its cap three times.
			for recv.Stats().VideoFramesDecoded == 0 {
				select {
				case <-ctx.Done():
					t.Fatal("no picture decoded")
				case <-time.After(20 * time.Millisecond):
				}
			}
			time.Sleep(2500 * time.Millisecond) // the call runs; not an assertion
			recv.Stop()
			got := seen.take()
			if tt.max == 0 {
				if len(got) != 0 {
					t.Fatalf("the sender got %d REMBs from a receiver with no cap", len(got))
				}
				return
			}
			per := map[uint32]int{}
			for _, r := range got {
				if int(r.Bitrate) != tt.max || len(r.SSRCs) != 1 || !ssrcs[r.SSRCs[0]] {
					t.Fatalf("REMB %v: want %d bit/s for one of the streams sent (%v)", r, tt.max, ssrcs)
				}
				per[r.SSRCs[0]]++
			}
			for ssrc := range ssrcs {
				if per[ssrc] < 3 {
					t.Errorf("stream %d: %d REMBs in 2.5 s and more, want one at once and one a second", ssrc, per[ssrc])
				}
			}
		})
	}
}

// rembLog records the REMB packets a peer connection receives.
type rembLog struct {
	interceptor.NoOp
	mu    sync.Mutex
	rembs []rtcp.ReceiverEstimatedMaximumBitrate
}

func (l *rembLog) NewInterceptor(string) (interceptor.Interceptor, error) { return l, nil }

func (l *rembLog) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := r.Read(b, a)
		if err != nil {
			return n, attr, err
		}
		pkts, err := rtcp.Unmarshal(b[:n])
		if err == nil {
			l.mu.Lock()
			for _, p := range pkts {
				if remb, ok := p.(*rtcp.ReceiverEstimatedMaximumBitrate); ok {
					l.rembs = append(l.rembs, *remb)
				}
			}
			l.mu.Unlock()
		}
		return n, attr, nil
	})
}

func (l *rembLog) take() []rtcp.ReceiverEstimatedMaximumBitrate {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rembs
}
