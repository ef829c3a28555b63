package media_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tuanju/tuanju/media"
)

func TestProfileByName(t *testing.T) {
	tests := []struct {
		name    string
		want    string
		wantErr error
	}{
		{"low", "low", nil},
		{"low-data", "low", nil}, // the former name, still in configurations
		{"Low-Data", "low", nil},
		{"normal", "normal", nil},
		{"VERY-LOW", "very-low", nil},
		{" audio-only ", "audio-only", nil},
		{"hd", "", media.ErrUnknownProfile},
		{"", "", media.ErrUnknownProfile},
	}
	for _, tt := range tests {
		p, err := media.ProfileByName(tt.name)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("ProfileByName(%q) error = %v, want %v", tt.name, err, tt.wantErr)
			continue
		}
		if p.Name != tt.want {
			t.Errorf("ProfileByName(%q) = %q, want %q", tt.name, p.Name, tt.want)
		}
	}
}

func TestBuiltinProfilesValid(t *testing.T) {
	for _, p := range media.Profiles() {
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
	}
	if media.Profiles()[0] != media.Low || media.LowData != media.Low {
		t.Errorf("the default profile is %q, want low (also as LowData)", media.Profiles()[0].Name)
	}
	if p, _ := media.ProfileByName(""); p.Name != "" {
		t.Errorf("empty name resolved to %q", p.Name)
	}
}

// TestLadder: the steps down go from the richest to audio only, each
// cheaper than the one before, and are the built-in profiles.
func TestLadder(t *testing.T) {
	l := media.Ladder()
	want := []string{"normal", "low", "very-low", "audio-only"}
	if len(l) != len(want) {
		t.Fatalf("ladder has %d steps, want %d", len(l), len(want))
	}
	for i, p := range l {
		if p.Name != want[i] {
			t.Errorf("step %d is %q, want %q", i, p.Name, want[i])
		}
		if got, err := media.ProfileByName(p.Name); err != nil || got != p {
			t.Errorf("step %q is not the built-in profile of that name (%v)", p.Name, err)
		}
		if i > 0 && wireKbit(p) >= wireKbit(l[i-1]) {
			t.Errorf("step %q costs %.0f kbit/s, not less than %q's %.0f", p.Name, wireKbit(p), l[i-1].Name, wireKbit(l[i-1]))
		}
	}
	if last := l[len(l)-1]; last.Video {
		t.Errorf("the last step %q has video", last.Name)
	}
	l[0].Name = "changed" // the caller's copy
	if media.Ladder()[0].Name != "normal" {
		t.Error("Ladder returned a shared slice")
	}
}

// wireKbit estimates what p sends on the wire (kbit/s) with a voice that
// talks 60% of the time (DTX sends nothing in the rest): the encoder
// targets plus ~58 bytes of RTP (with its congestion-control extension),
// SRTP, UDP and IPv4 headers per packet, an H.264 picture in 1188-byte RTP
// payloads, and ~10 kbit/s of RTCP (congestion-control feedback ten times
// a second, reports). The real figure, in a whole call, is
// BenchmarkBytesPerMinute's (tests/e2e).
func wireKbit(p media.Profile) float64 {
	const header, talk = 58 * 8, 0.6
	bits := talk*(float64(p.AudioBitrate)+header*float64(time.Second/p.AudioFrame)) + 10_000
	if p.Video {
		perFrame := float64(p.VideoBitrate) / 8 / float64(p.FPS)
		packets := float64(p.FPS) * float64(int(perFrame/1188)+1)
		bits += float64(p.VideoBitrate) + header*packets
	}
	return bits / 1000
}

// TestProfileBudgets: the per-direction budgets, on the estimate
// with a 5% margin for what it leaves out (DTLS, STUN, rate control's
// error; DTX, which it also leaves out, saves more): low ≤ 1 MB/min,
// very-low ≤ 0.5, audio only ≤ 0.2.
func TestProfileBudgets(t *testing.T) {
	for _, tt := range []struct {
		p        media.Profile
		maxMBMin float64
	}{
		{media.Low, 1.0},
		{media.VeryLow, 0.5},
		{media.AudioOnly, 0.2},
	} {
		mb := wireKbit(tt.p) * 1000 / 8 * 60 / 1e6
		t.Logf("%s: ~%.0f kbit/s, ~%.2f MB/min on the wire", tt.p.Name, wireKbit(tt.p), mb)
		if mb*1.05 > tt.maxMBMin {
			t.Errorf("%s: ~%.2f MB/min (+5%%) over its budget of %.1f", tt.p.Name, mb, tt.maxMBMin)
		}
	}
}

func TestProfileValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*media.Profile)
		ok     bool
	}{
		{"low-data as is", func(*media.Profile) {}, true},
		{"no name", func(p *media.Profile) { p.Name = "" }, false},
		{"odd width", func(p *media.Profile) { p.Width = 321 }, false},
		{"tiny", func(p *media.Profile) { p.Width, p.Height = 8, 8 }, false},
		{"zero fps", func(p *media.Profile) { p.FPS = 0 }, false},
		{"60 fps", func(p *media.Profile) { p.FPS = 60 }, false},
		{"video bitrate too low", func(p *media.Profile) { p.VideoBitrate = 1000 }, false},
		{"audio bitrate too low", func(p *media.Profile) { p.AudioBitrate = 5000 }, false},
		{"audio bitrate too high", func(p *media.Profile) { p.AudioBitrate = 600_000 }, false},
		{"odd audio frame", func(p *media.Profile) { p.AudioFrame = 30 * time.Millisecond }, false},
		{"40 ms audio frame", func(p *media.Profile) { p.AudioFrame = 40 * time.Millisecond }, true},
		{"no video ignores size", func(p *media.Profile) { p.Video, p.Width, p.FPS = false, 0, 0 }, true},
	}
	for _, tt := range tests {
		p := media.LowData
		tt.change(&p)
		err := p.Validate()
		if tt.ok && err != nil {
			t.Errorf("%s: unexpected error %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, media.ErrInvalidProfile) {
			t.Errorf("%s: error = %v, want ErrInvalidProfile", tt.name, err)
		}
	}
}
