package terminal

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/media"
)

// TestAskRates: the offer asks the parent's phone for the profile's rates
// on each section (TIAS in bit/s, AS in kbit/s rounded up) and for its
// audio frame length (a=ptime on the audio section alone), and nothing
// else in the offer changes.
func TestAskRates(t *testing.T) {
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p            media.Profile
		video, audio string
		ptime        string
	}{
		{media.Low, "[TIAS:80000 AS:80]", "[TIAS:16000 AS:16]", "40"},
		{media.Normal, "[TIAS:300000 AS:300]", "[TIAS:24000 AS:24]", "20"},
		{media.VeryLow, "[TIAS:28000 AS:28]", "[TIAS:12000 AS:12]", "60"},
		{media.AudioOnly, "[TIAS:28000 AS:28]", "[TIAS:12000 AS:12]", "60"},
	} {
		t.Run(tc.p.Name, func(t *testing.T) {
			out, err := askRates(offer.SDP, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			var before, after sdp.SessionDescription
			if err := before.UnmarshalString(offer.SDP); err != nil {
				t.Fatal(err)
			}
			if err := after.UnmarshalString(out); err != nil {
				t.Fatalf("the offer with rates does not parse: %v", err)
			}
			if len(after.MediaDescriptions) != 2 {
				t.Fatalf("%d sections", len(after.MediaDescriptions))
			}
			for i, m := range after.MediaDescriptions {
				var got []string
				for _, b := range m.Bandwidth {
					got = append(got, fmt.Sprintf("%s:%d", b.Type, b.Bandwidth))
				}
				want := map[string]string{"video": tc.video, "audio": tc.audio}[m.MediaName.Media]
				if fmt.Sprint(got) != want {
					t.Errorf("%s: b= %v, want %s", m.MediaName.Media, got, want)
				}
				// The audio asks for the profile's frame length, once.
				var ptimes []string
				for _, a := range m.Attributes {
					if a.Key == "ptime" {
						ptimes = append(ptimes, a.Value)
					}
				}
				if want := map[string][]string{"audio": {tc.ptime}}[m.MediaName.Media]; !slices.Equal(ptimes, want) {
					t.Errorf("%s: a=ptime %v, want %v", m.MediaName.Media, ptimes, want)
				}
				// Everything else as pion made it.
				m.Bandwidth = nil
				m.Attributes = slices.DeleteFunc(m.Attributes, func(a sdp.Attribute) bool { return a.Key == "ptime" })
				if fmt.Sprint(*m) != fmt.Sprint(*before.MediaDescriptions[i]) {
					t.Errorf("%s section changed beyond its b= lines:\n%v\n%v", m.MediaName.Media, *m, *before.MediaDescriptions[i])
				}
			}
			if _, err := askRates("not an SDP", tc.p); err == nil {
				t.Error("a malformed SDP was accepted")
			}
		})
	}
}
