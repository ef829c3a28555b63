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
		{"low-data", "low-data", nil},
		{"Low-Data", "low-data", nil},
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
	// The budget: low-data stays under 250k video, 24k audio.
	if p := media.LowData; p.VideoBitrate > 250_000 || p.AudioBitrate > 24_000 || p.Width != 320 || p.Height != 240 || p.FPS != 15 {
		t.Errorf("LowData = %+v, outside the low-data budget", p)
	}
	if p, _ := media.ProfileByName(""); p.Name != "" {
		t.Errorf("empty name resolved to %q", p.Name)
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
