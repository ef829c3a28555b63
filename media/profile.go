package media

import (
	"fmt"
	"strings"
	"time"
)

// Profile says what a call sends. Parents pay for data by the megabyte, so the
// default (Low) costs under 1 MB a minute per direction on the wire, headers
// included (BenchmarkBytesPerMinute in tests/e2e).
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
	// at low rates: 20 ms frames add ~20 kbit/s of headers, 40 ms ~10, 60 ms
	// ~7 (TestAudioSweep).
	AudioFrame time.Duration
	// KeyFrameInterval is how often the H.264 encoder sends an IDR picture
	// unprompted, so a receiver that lost one (or joined late) recovers even
	// if its PLI is lost too; 0 means DefaultKeyFrameInterval.
	KeyFrameInterval time.Duration
}

// DefaultKeyFrameInterval is the unprompted IDR period of a profile that
// sets none. A receiver that misses a picture asks for a key frame (PLI) at
// once, so the periodic one is only the backstop; every IDR costs several
// times a P picture, and on the realistic scene at 100 kbit/s a key frame
// every 10 s instead of every 2 s gave +1.6 dB PSNR-Y (30 s only +0.3 more,
// for a three times longer wait when a PLI is lost too): TestVideoSweep.
const DefaultKeyFrameInterval = 10 * time.Second

func (p Profile) keyFrameInterval() time.Duration {
	if p.KeyFrameInterval > 0 {
		return p.KeyFrameInterval
	}
	return DefaultKeyFrameInterval
}

// maxCaptureFPS is the fastest a camera is asked to run.
const maxCaptureFPS = 30

// CaptureFPS is the rate the camera is asked for: twice the call's, up to
// 30. A camera's first picture comes a frame period after it opens, and by
// the never-silent rule it opens only once the connect sound has ended, so
// that period is what the parent waits on top of the sound: 67 ms at 15
// fps, 33 at 30 (issue 12's "sound + 50 ms", BenchmarkAnswerToFirstFrame).
// The frames the call does not send are dropped before the encoder
// (frameThrottle), so the encoders' work, the data and the picture's timing
// are the call's rate's; what the faster camera costs a board is handing
// over the pictures dropped (mediadevices converts each to I420; not
// measured: the synthetic camera paints only the ones sent). A camera with
// no such mode gives its nearest one, and a camera's own H.264
// (passthrough) runs at the call's rate.
func (p Profile) CaptureFPS() int {
	return min(2*p.FPS, max(p.FPS, maxCaptureFPS))
}

// The built-in profiles, from the richest to audio only. Every figure was
// chosen from measurements on the realistic scene (package synth) and a
// synthetic voice with pauses: TestVideoSweep and TestAudioSweep print them
// (TUANJU_SWEEP=video,audio), BenchmarkBytesPerMinute (tests/e2e) measures
// what each costs in a whole call on the wire, with the quality received.
// Opus runs with in-band FEC and DTX at complexity 5 in all of them, H.264
// with openh264's denoiser at medium complexity (see encoders.go).
var (
	// Normal is for a good, unmetered link: VGA at 15 fps. 300 kbit/s gave
	// 37.5 dB PSNR-Y on the scene by day; 400 kbit/s only 0.7 dB more for a
	// third more data. Audio in 20 ms frames: the lowest latency, the
	// headers are a small share here.
	Normal = Profile{
		Name:         "normal",
		Video:        true,
		Width:        640,
		Height:       480,
		FPS:          15,
		VideoBitrate: 300_000,
		AudioBitrate: 24_000,
		AudioFrame:   20 * time.Millisecond,
	}

	// Low is the default: a child's face clear enough on a cheap phone on a
	// metered plan, under 1 MB a minute per direction on the wire. At
	// 320×240 and 15 fps, 80 kbit/s gives ~33 dB PSNR-Y by day. 10 fps
	// would give each picture 2 dB more, but shown on a 30 Hz timeline
	// (what a viewer sees of a child who keeps moving) 15 fps scored 1.7 dB
	// better, with the same SSIM; a bitrate controller lowers the rate on a
	// poor link. 40 ms Opus frames save 10 kbit/s of headers against 20 ms
	// for 20 ms of latency. H.264 because every phone decodes it in
	// hardware and openh264 hits its targets (within ~1% once the frame
	// rate is set, see encoders.go).
	Low = Profile{
		Name:         "low",
		Video:        true,
		Width:        320,
		Height:       240,
		FPS:          15,
		VideoBitrate: 80_000,
		AudioBitrate: 16_000,
		AudioFrame:   40 * time.Millisecond,
	}

	// VeryLow is for a budget running out or a poor link, before audio
	// only: under 0.5 MB a minute, a smaller and slower picture (160×120 at
	// 10 fps, 28 kbit/s: ~30 dB by day) and 12 kbit/s speech in 60 ms
	// frames, whose headers cost 7 kbit/s rather than 20. A call's RTCP
	// (reports, congestion-control feedback) and headers come to ~20
	// kbit/s here, as much as the picture.
	VeryLow = Profile{
		Name:         "very-low",
		Video:        true,
		Width:        160,
		Height:       120,
		FPS:          10,
		VideoBitrate: 28_000,
		AudioBitrate: 12_000,
		AudioFrame:   60 * time.Millisecond,
	}

	// AudioOnly is a voice call for the thinnest links, an exhausted budget,
	// or when there is no camera: under 0.2 MB a minute, the same speech as
	// VeryLow without the picture. 60 ms Opus frames cut header overhead
	// from ~20 to ~7 kbit/s at the cost of 40 ms of extra latency, which a
	// voice call tolerates; 12 kbit/s rather than 16 keeps a child who
	// talks without pause under the budget too.
	AudioOnly = Profile{
		Name:         "audio-only",
		AudioBitrate: 12_000,
		AudioFrame:   60 * time.Millisecond,
	}

	// LowData is Low under the name it had before there were four
	// profiles; the name "low-data" still selects it (ProfileByName).
	LowData = Low
)

// Profiles lists the built-in profiles, default first.
func Profiles() []Profile { return []Profile{Low, Normal, VeryLow, AudioOnly} }

// Ladder is the built-in profiles from the richest to the leanest: the
// steps a bitrate controller or a running-out data budget takes down (and,
// when the link or the budget allows, back up).
func Ladder() []Profile { return []Profile{Normal, Low, VeryLow, AudioOnly} }

// aliases are former profile names, still accepted in configuration.
var aliases = map[string]string{"low-data": "low"}

// ProfileByName returns the built-in profile with that name
// (case-insensitive), also under a former name ("low-data" is Low).
func ProfileByName(name string) (Profile, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := aliases[n]; ok {
		n = a
	}
	for _, p := range Profiles() {
		if p.Name == n {
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
	if p.VideoBitrate < 16_000 || p.VideoBitrate > 4_000_000 {
		return bad("video bitrate %d outside 16000..4000000", p.VideoBitrate)
	}
	return nil
}
