package media

import (
	"fmt"
	"strings"
	"time"
)

// Profile says what a call sends. Parents pay for data by the megabyte, so the
// default is small: LowData costs about 1.6 MB a minute on the wire.
type Profile struct {
	Name  string
	Video bool
	// Width, Height and FPS are the picture asked of the camera when Video is
	// set. A V4L2 camera without that exact mode gives its nearest one (a
	// webcam offering 320x180 but not 320x240 sends 320x180); the bitrate
	// target holds either way. Scaling to the exact size is left out: it
	// would cost the board CPU for no saving in data.
	Width, Height, FPS int
	// VideoBitrate and AudioBitrate are encoder targets in bits per second
	// (payload; RTP/UDP/IP and SRTP add to it).
	VideoBitrate, AudioBitrate int
	// AudioFrame is the Opus frame (and RTP packet) duration. Longer frames
	// send fewer packets, and at ~50 bytes of headers per packet that matters
	// at low rates: 20 ms frames add ~20 kbit/s of headers, 60 ms ~7 kbit/s.
	AudioFrame time.Duration
}

// keyFrameInterval is how often the H.264 encoder sends an IDR picture
// unprompted, so a receiver that lost one (or joined late) recovers even if its
// PLI is lost too.
const keyFrameInterval = 2 * time.Second

// LowData is the default profile: enough for a child to see a parent's face on
// a cheap phone on a metered plan. H.264 because every phone decodes it in
// hardware and openh264 hits its targets (within ~3% once the frame rate is
// set, see capture.go).
var LowData = Profile{
	Name:         "low-data",
	Video:        true,
	Width:        320,
	Height:       240,
	FPS:          15,
	VideoBitrate: 200_000,
	AudioBitrate: 20_000,
	AudioFrame:   20 * time.Millisecond,
}

// AudioOnly is a voice call for the thinnest links or when there is no camera.
// 60 ms Opus frames cut header overhead from ~20 to ~7 kbit/s at the cost of
// 40 ms of extra latency, which a voice call tolerates.
var AudioOnly = Profile{
	Name:         "audio-only",
	AudioBitrate: 16_000,
	AudioFrame:   60 * time.Millisecond,
}

// Profiles lists the built-in profiles, default first.
func Profiles() []Profile { return []Profile{LowData, AudioOnly} }

// ProfileByName returns the built-in profile with that name (case-insensitive).
func ProfileByName(name string) (Profile, error) {
	for _, p := range Profiles() {
		if strings.EqualFold(p.Name, strings.TrimSpace(name)) {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("media: profile %q: %w", name, ErrUnknownProfile)
}

// Validate checks that the encoders can honour the profile.
func (p Profile) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("media: profile %q: %s: %w", p.Name, fmt.Sprintf(format, args...), ErrInvalidProfile)
	}
	if p.Name == "" {
		return bad("empty name")
	}
	// libopus accepts 6–510 kbit/s.
	if p.AudioBitrate < 6_000 || p.AudioBitrate > 510_000 {
		return bad("audio bitrate %d outside 6000..510000", p.AudioBitrate)
	}
	switch p.AudioFrame {
	case 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond:
	default:
		// 2.5 and 5 ms are legal Opus but pure overhead for a call.
		return bad("audio frame %v is not 10, 20, 40 or 60 ms", p.AudioFrame)
	}
	if !p.Video {
		return nil
	}
	// I420 needs even sizes; openh264 needs at least one 16×16 macroblock.
	if p.Width < 16 || p.Height < 16 || p.Width%2 != 0 || p.Height%2 != 0 || p.Width > 1920 || p.Height > 1080 {
		return bad("video size %dx%d: want even sizes from 16x16 to 1920x1080", p.Width, p.Height)
	}
	if p.FPS < 1 || p.FPS > 30 {
		return bad("video frame rate %d outside 1..30", p.FPS)
	}
	if p.VideoBitrate < 30_000 || p.VideoBitrate > 4_000_000 {
		return bad("video bitrate %d outside 30000..4000000", p.VideoBitrate)
	}
	return nil
}
