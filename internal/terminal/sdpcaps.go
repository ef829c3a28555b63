package terminal

import (
	"fmt"

	"github.com/pion/sdp/v3"

	"github.com/tuanju/tuanju/media"
)

// askRates writes into the terminal's offer what the parent's phone may send:
// b=TIAS (RFC 3890, bit/s without headers) and b=AS (kbit/s, which older
// stacks read) on each media section, from the terminal's profile. A
// browser caps its encoders to the remote description's bandwidth, so the
// parent's phone sends the same low-data call the child's does: the child's
// broadband or 4G dongle pays for what it receives too, and the parent's
// metered plan for what it sends. The audio section also asks for the
// profile's frame length (a=ptime, which Chromium's Opus encoder takes):
// at 20 ms a phone's audio headers cost ~23 kbit/s beside the low
// profile's 16 of speech, at 40 ms half that. The offer is signed after
// this, so the lines cannot be raised on the way. A profile without video
// asks for no video: the section is recvonly on our side, and its cap is
// the very-low picture's, so a parent on a video-less unit still shows a
// face cheaply.
func askRates(s string, p media.Profile) (string, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(s); err != nil {
		return "", fmt.Errorf("terminal: own offer: %w", err)
	}
	video, audio := askedRates(p)
	for _, m := range d.MediaDescriptions {
		var bps int
		switch m.MediaName.Media {
		case "video":
			bps = video
		case "audio":
			bps = audio
		default:
			continue
		}
		m.Bandwidth = []sdp.Bandwidth{
			{Type: "TIAS", Bandwidth: uint64(bps)},
			{Type: "AS", Bandwidth: uint64((bps + 999) / 1000)},
		}
		if m.MediaName.Media == "audio" && p.AudioFrame > 0 {
			m.Attributes = append(m.Attributes, sdp.NewAttribute("ptime", fmt.Sprint(p.AudioFrame.Milliseconds())))
		}
	}
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("terminal: own offer: %w", err)
	}
	return string(out), nil
}

// askedRates are the encoder rates the offer asks the parent's phone for,
// video and audio, in bit/s.
func askedRates(p media.Profile) (video, audio int) {
	if !p.Video {
		return media.VeryLow.VideoBitrate, p.AudioBitrate
	}
	return p.VideoBitrate, p.AudioBitrate
}

// PhoneRateCap is the most the parent's phone may send in all, in bit/s,
// which the terminal's receiver says as REMB (media.ReceiverConfig.MaxBitrate):
// the asked rates and 30% more, for packet headers (~25 kbit/s in a low
// call with 40 ms audio) and retransmissions. Chromium pads its sending
// up to this on a jittery or lossy path to test for more, and puts ~4%
// more on the wire than its estimate: at 1.3 that is ~130 kbit/s, under
// the low profile's 1 MB a minute, where half again (144) reached 1.12
// MB/min. 1.25 left Chromium 11–12 pictures a second at 10% loss in two
// runs of two; 1.3, 10.8–15.3 in eight (TestBrowserImpairedCall, README).
func PhoneRateCap(p media.Profile) int {
	v, a := askedRates(p)
	return (v + a) * 13 / 10
}
