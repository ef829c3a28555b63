package media

import (
	"testing"
	"time"

	"github.com/pion/mediadevices"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/opusdec"
	"github.com/tuanju/tuanju/media/synth"
)

// tolerance for encoded bitrate versus target.
const tolerance = 0.35

// encodeVideo runs an unpaced synthetic camera through the same selector and
// mediadevices track path Capture uses (so the frame-rate fix is under test)
// and returns the encoded access units.
func encodeVideo(tb testing.TB, p Profile, frames int) [][]byte {
	tb.Helper()
	set := &encoderSet{}
	sel, err := newCodecSelector(p, set)
	if err != nil {
		tb.Fatal(err)
	}
	cam, err := synth.NewCamera(synth.CameraOptions{Width: p.Width, Height: p.Height, FPS: p.FPS, Unpaced: true})
	if err != nil {
		tb.Fatal(err)
	}
	track := mediadevices.NewVideoTrack(cam, sel)
	defer track.Close()
	r, err := track.NewEncodedReader(webrtc.MimeTypeH264)
	if err != nil {
		tb.Fatalf("build H.264 encoder: %v", err)
	}
	defer r.Close()
	out := make([][]byte, 0, frames)
	for range frames {
		buf, release, err := r.Read()
		if err != nil {
			tb.Fatalf("encode: %v", err)
		}
		out = append(out, append([]byte(nil), buf.Data...))
		release()
	}
	return out
}

func TestH264RoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		bitrate int
	}{
		{"low", 120_000},
		{"LowData", LowData.VideoBitrate},
		{"high", 400_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := LowData
			p.VideoBitrate = tt.bitrate
			p.KeyFrameInterval = 2 * time.Second // shorter than the test, to see it honoured
			const seconds = 8
			aus := encodeVideo(t, p, seconds*p.FPS)

			dec, err := h264dec.New()
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			var bytes, decoded, keys int
			for i, au := range aus {
				bytes += len(au)
				img, err := dec.Decode(au)
				if err != nil {
					t.Fatalf("decode access unit %d: %v", i, err)
				}
				if img == nil {
					continue // frame skipped by rate control
				}
				decoded++
				if hasIDR(au) {
					keys++
				}
				if got := img.Rect.Size(); got.X != p.Width || got.Y != p.Height {
					t.Fatalf("frame %d is %v, want %dx%d", i, got, p.Width, p.Height)
				}
			}
			if decoded < len(aus)*9/10 {
				t.Errorf("decoded %d of %d frames, want ≥90%%", decoded, len(aus))
			}
			// Periodic IDR every KeyFrameInterval, plus the first.
			if want := seconds / int(p.KeyFrameInterval.Seconds()); keys < want {
				t.Errorf("%d key frames in %d s, want ≥%d", keys, seconds, want)
			}
			bps := float64(bytes*8) / (float64(len(aus)) / float64(p.FPS))
			t.Logf("target %d bit/s: encoded %.0f bit/s (%+.1f%%), %d/%d frames decoded, %d key frames",
				p.VideoBitrate, bps, 100*(bps/float64(p.VideoBitrate)-1), decoded, len(aus), keys)
			if lo, hi := float64(p.VideoBitrate)*(1-tolerance), float64(p.VideoBitrate)*(1+tolerance); bps < lo || bps > hi {
				t.Errorf("encoded %.0f bit/s, want %d ±%.0f%%", bps, p.VideoBitrate, tolerance*100)
			}
		})
	}
}

func TestOpusRoundTrip(t *testing.T) {
	music := LowData // a rate far from the others proves the setting reaches libopus
	music.Name, music.AudioBitrate = "48k", 48_000
	for _, p := range []Profile{LowData, AudioOnly, music} {
		t.Run(p.Name, func(t *testing.T) {
			set := &encoderSet{}
			sel, err := newCodecSelector(p, set)
			if err != nil {
				t.Fatal(err)
			}
			mic, err := synth.NewMicrophone(synth.MicrophoneOptions{Unpaced: true})
			if err != nil {
				t.Fatal(err)
			}
			track := mediadevices.NewAudioTrack(mic, sel)
			defer track.Close()
			r, err := track.NewEncodedReader(webrtc.MimeTypeOpus)
			if err != nil {
				t.Fatalf("build Opus encoder: %v", err)
			}
			defer r.Close()
			dec, err := opusdec.New(AudioSampleRate, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()

			const seconds = 6
			perPacket := int(AudioSampleRate * p.AudioFrame / time.Second)
			packets := int(seconds * time.Second / p.AudioFrame)
			pcm := make([]int16, opusdec.MaxFrameSamples)
			var bytes, samples, sent int
			var energy float64
			for i := range packets {
				buf, release, err := r.Read()
				if err != nil {
					t.Fatalf("encode: %v", err)
				}
				// DTX: an empty packet is not sent; the receiver conceals
				// (comfort noise) for a frame's length.
				if len(buf.Data) > 0 {
					sent++
				}
				bytes += len(buf.Data)
				n, err := dec.Decode(buf.Data, pcm[:perPacket])
				release()
				if err != nil {
					t.Fatalf("decode packet %d: %v", i, err)
				}
				if n != perPacket {
					t.Fatalf("packet %d decoded to %d samples, want %d", i, n, perPacket)
				}
				samples += n
				for _, s := range pcm[:n] {
					energy += float64(s) * float64(s)
				}
			}
			if in := mic.Samples(); int64(samples) > in {
				t.Errorf("decoded %d samples but the microphone produced only %d", samples, in)
			}
			if want := seconds * AudioSampleRate; samples != want {
				t.Errorf("decoded %d samples, want %d", samples, want)
			}
			// The chime must survive: silence would mean a broken pipeline.
			if rms := energy / float64(samples); rms < 100*100 {
				t.Errorf("decoded audio is near silence (mean square %.0f)", rms)
			}
			// DTX sends nothing in the hum between chimes (30% of each
			// second is chime), but never stops a chime.
			if sent == packets || sent < packets/4 {
				t.Errorf("%d of %d packets sent: want DTX to drop the hum's, not the chimes'", sent, packets)
			}
			// The rate while sending: Opus is VBR, the chime needs less than
			// the target, so only the ceiling is tight. The floor catches an
			// encoder that ignores the setting.
			bps := float64(bytes*8) / (float64(sent) * p.AudioFrame.Seconds())
			t.Logf("target %d bit/s at %v frames: %d of %d packets sent, %.0f bit/s while sending (%+.1f%%)", p.AudioBitrate, p.AudioFrame, sent, packets, bps, 100*(bps/float64(p.AudioBitrate)-1))
			if lo, hi := float64(p.AudioBitrate)*0.4, float64(p.AudioBitrate)*(1+tolerance); bps < lo || bps > hi {
				t.Errorf("encoded %.0f bit/s while sending, want %.0f..%.0f (target %d)", bps, lo, hi, p.AudioBitrate)
			}
		})
	}
}
