package selftest

import (
	"context"
	"fmt"
	"time"
)

// Frame is what the camera check learned from one captured picture.
type Frame struct {
	Width, Height int
	// MeanLuma is the picture's average brightness, 0-255: a capped lens
	// or a dead sensor gives ~0, which is worth showing the technician.
	MeanLuma float64
	// EncodedBytes is the size of the first encoded (H.264) frame.
	EncodedBytes int
	// Announced says how the never-silent rule was honoured before the
	// camera opened ("in-call light on, tone played").
	Announced string
}

// CameraCheck captures one frame through grab. grab must announce the
// camera (in-call light and a sound) before opening it.
func CameraCheck(fitted bool, grab func(ctx context.Context) (Frame, error)) Check {
	return Check{Name: "camera", Fitted: fitted, Run: func(ctx context.Context, _ *T) (Status, string) {
		if grab == nil {
			return Absent, "no camera configured (camera = none)"
		}
		f, err := grab(ctx)
		if err != nil {
			return statusOf(err), err.Error()
		}
		d := fmt.Sprintf("one %dx%d frame, mean luma %.0f, first H.264 frame %d bytes; %s", f.Width, f.Height, f.MeanLuma, f.EncodedBytes, f.Announced)
		if f.MeanLuma < 8 {
			return Pass, d + "; very dark: lens covered?"
		}
		return Pass, d
	}}
}

// Microphone measures the input level, for the microphone check.
type Microphone interface {
	// Level captures for d and returns the RMS and peak levels in dBFS.
	Level(ctx context.Context, d time.Duration) (rms, peak float64, err error)
}

// Speaker plays a test tone, for the speaker check.
type Speaker interface {
	// Tone plays a sine of hz for d and returns once it has been played.
	Tone(ctx context.Context, hz float64, d time.Duration) error
}

// NoAudioDriver is the detail for builds without an audio path.
const NoAudioDriver = "no audio driver in this build"

// MicrophoneCheck records about a second and reports the level. Digital
// silence (every sample zero) fails: a live microphone always hears some
// noise.
func MicrophoneCheck(fitted bool, mic Microphone) Check {
	return Check{Name: "microphone", Fitted: fitted, Run: func(ctx context.Context, t *T) (Status, string) {
		if mic == nil {
			return Absent, NoAudioDriver
		}
		t.Say("speak or clap near the microphone")
		rms, peak, err := mic.Level(ctx, time.Second)
		if err != nil {
			return statusOf(err), err.Error()
		}
		d := fmt.Sprintf("1 s level: RMS %.1f dBFS, peak %.1f dBFS", rms, peak)
		if peak <= -120 {
			return Fail, d + ": digital silence (muted, or nothing connected)"
		}
		return Pass, d
	}}
}

// SpeakerCheck plays a one-second 440 Hz tone.
func SpeakerCheck(fitted bool, sp Speaker) Check {
	return Check{Name: "speaker", Fitted: fitted, Run: func(ctx context.Context, t *T) (Status, string) {
		if sp == nil {
			return Absent, NoAudioDriver
		}
		t.Say("a tone plays for one second")
		if err := sp.Tone(ctx, 440, time.Second); err != nil {
			return statusOf(err), err.Error()
		}
		return Pass, "played 1 s of 440 Hz; listen: was it heard?"
	}}
}
