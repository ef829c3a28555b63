package media_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/tuanju/tuanju/media"
)

// TestOpenNoCamera: asking for a V4L2 camera on a machine without one is
// "hardware absent", which the terminal and self-test treat differently from
// a broken camera.
func TestOpenNoCamera(t *testing.T) {
	if devs, _ := filepath.Glob("/dev/video*"); len(devs) > 0 {
		t.Skipf("this machine has cameras: %v", devs)
	}
	for _, device := range []string{"", "/dev/video7", "usb-nothing"} {
		c, err := media.Open(t.Context(), media.CaptureConfig{
			Profile:      media.LowData,
			Camera:       media.SourceV4L2,
			CameraDevice: device,
			Microphone:   media.SourceSynthetic,
		})
		if err == nil {
			c.Close()
			t.Fatalf("device %q: opened a camera that does not exist", device)
		}
		if !errors.Is(err, media.ErrNoCamera) {
			t.Errorf("device %q: error %v does not wrap ErrNoCamera", device, err)
		}
	}
}

// TestOpenNoMicrophone: an ALSA microphone that is not there is "hardware
// absent" too. (No name here can exist: real capture is tested against the
// kernel's snd-aloop in tests/vm.)
func TestOpenNoMicrophone(t *testing.T) {
	for _, device := range []string{"hw:NoSuchCard", "hw:31,0", "hw:NoSuchCard,1,2"} {
		c, err := media.Open(t.Context(), media.CaptureConfig{
			Profile:          media.AudioOnly,
			Microphone:       media.SourceALSA,
			MicrophoneDevice: device,
		})
		if err == nil {
			c.Close()
			t.Fatalf("device %q: opened a microphone that does not exist", device)
		}
		if !errors.Is(err, media.ErrNoMicrophone) {
			t.Errorf("device %q: error %v does not wrap ErrNoMicrophone", device, err)
		}
	}
	c, err := media.Open(t.Context(), media.CaptureConfig{
		Profile: media.AudioOnly, Microphone: media.SourceALSA, MicrophoneDevice: "plughw:0",
	})
	if err == nil {
		c.Close()
		t.Fatal("opened an ALSA plugin name")
	}
	if errors.Is(err, media.ErrNoMicrophone) {
		t.Errorf("a bad device name is reported as an absent microphone: %v", err)
	}
}

func TestOpenConfig(t *testing.T) {
	tests := []struct {
		name       string
		cfg        media.CaptureConfig
		wantErr    error
		wantTracks int
		wantVideo  bool
	}{
		{"synthetic both", media.CaptureConfig{Profile: media.LowData, Camera: media.SourceSynthetic, Microphone: media.SourceSynthetic}, nil, 2, true},
		{"audio-only ignores camera", media.CaptureConfig{Profile: media.AudioOnly, Camera: media.SourceSynthetic, Microphone: media.SourceSynthetic}, nil, 1, false},
		{"no sources", media.CaptureConfig{Profile: media.LowData, Camera: media.SourceNone, Microphone: media.SourceNone}, nil, 0, false},
		{"unknown camera", media.CaptureConfig{Profile: media.LowData, Camera: "webcam", Microphone: media.SourceSynthetic}, media.ErrUnknownSource, 0, false},
		{"unknown microphone", media.CaptureConfig{Profile: media.LowData, Camera: media.SourceSynthetic, Microphone: "pulseaudio"}, media.ErrUnknownSource, 0, false},
		{"invalid profile", media.CaptureConfig{Profile: media.Profile{Name: "x"}, Camera: media.SourceSynthetic}, media.ErrInvalidProfile, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := media.Open(t.Context(), tt.cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer c.Close()
			if got := len(c.Tracks()); got != tt.wantTracks {
				t.Errorf("%d tracks, want %d", got, tt.wantTracks)
			}
			if c.HasVideo() != tt.wantVideo {
				t.Errorf("HasVideo = %v, want %v", c.HasVideo(), tt.wantVideo)
			}
			for _, tr := range c.Tracks() {
				if tr.StreamID() != c.Tracks()[0].StreamID() {
					t.Errorf("tracks in different streams: %q, %q", tr.StreamID(), c.Tracks()[0].StreamID())
				}
			}
			if n, err := c.RequestKeyFrame(); n != 0 || err != nil {
				t.Errorf("RequestKeyFrame before any binding = %d, %v; want 0, nil", n, err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}
