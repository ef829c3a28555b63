package media

import (
	"testing"

	"github.com/pion/mediadevices/pkg/frame"
	"github.com/pion/mediadevices/pkg/prop"
)

func TestCameraFormats(t *testing.T) {
	mode := func(f frame.Format, w, h int, fps float32) prop.Media {
		return prop.Media{Video: prop.Video{Width: w, Height: h, FrameRate: fps, FrameFormat: f}}
	}
	tests := []struct {
		name  string
		modes []prop.Media
		want  string
	}{
		{"raw at the size and rate", []prop.Media{mode(frame.FormatMJPEG, 320, 240, 30), mode(frame.FormatYUYV, 320, 240, 30)}, "raw"},
		{"raw of unknown rate", []prop.Media{mode(frame.FormatYUYV, 352, 288, 0), mode(frame.FormatMJPEG, 320, 240, 30)}, "raw"},
		{"raw too slow, MJPEG fast", []prop.Media{mode(frame.FormatYUYV, 320, 240, 5), mode(frame.FormatMJPEG, 320, 240, 30)}, "mjpeg"},
		{"raw only at 1080p", []prop.Media{mode(frame.FormatYUYV, 1920, 1080, 30), mode(frame.FormatMJPEG, 640, 480, 30)}, "mjpeg"},
		{"MJPEG only", []prop.Media{mode(frame.FormatMJPEG, 640, 360, 30)}, "mjpeg"},
		{"nothing near", []prop.Media{mode(frame.FormatYUYV, 1920, 1080, 30)}, "nearest"},
		{"no modes reported", nil, "nearest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, got := cameraFormats(tt.modes, LowData)
			if got != tt.want {
				t.Fatalf("cameraFormats = %s, want %s", got, tt.want)
			}
			// The constraint must accept what the choice says and refuse the rest.
			for _, m := range tt.modes {
				_, ok := c.Compare(m.FrameFormat)
				accepted := ok
				wantAccepted := map[string]bool{
					"raw":     m.FrameFormat != frame.FormatMJPEG,
					"mjpeg":   m.FrameFormat == frame.FormatMJPEG,
					"nearest": true,
				}[tt.want]
				if accepted != wantAccepted {
					t.Errorf("%s: format %s accepted=%v, want %v", got, m.FrameFormat, accepted, wantAccepted)
				}
			}
		})
	}
}
