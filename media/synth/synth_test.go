package synth

import (
	"errors"
	"image"
	"io"
	"testing"
	"time"
)

func TestCamera(t *testing.T) {
	tests := []struct{ w, h, fps int }{{320, 240, 15}, {640, 480, 30}, {160, 120, 5}}
	for _, tt := range tests {
		c, err := NewCamera(CameraOptions{Width: tt.w, Height: tt.h, FPS: tt.fps, Unpaced: true})
		if err != nil {
			t.Fatal(err)
		}
		if c.Latest() != nil {
			t.Error("Latest before the first frame is not nil")
		}
		a, _, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		y, ok := b.(*image.YCbCr)
		if !ok || y.SubsampleRatio != image.YCbCrSubsampleRatio420 {
			t.Fatalf("frame is %T, want I420 *image.YCbCr", b)
		}
		if got := b.Bounds().Size(); got != image.Pt(tt.w, tt.h) {
			t.Errorf("frame size %v, want %dx%d", got, tt.w, tt.h)
		}
		if c.Latest() != b || c.Frames() != 2 {
			t.Errorf("Latest/Frames do not follow Read (frames=%d)", c.Frames())
		}
		// Frames must differ (motion, counter, noise) and must not be reused.
		if a.(*image.YCbCr) == y || string(a.(*image.YCbCr).Y) == string(y.Y) {
			t.Error("consecutive frames are identical")
		}
		c.Close()
		if _, _, err := c.Read(); !errors.Is(err, io.EOF) {
			t.Errorf("Read after Close = %v, want io.EOF", err)
		}
	}
}

func TestCameraRejectsBadSizes(t *testing.T) {
	for _, o := range []CameraOptions{{Width: 321, Height: 240, FPS: 15}, {Width: 0, Height: 240, FPS: 15}, {Width: 320, Height: 240}} {
		if _, err := NewCamera(o); err == nil {
			t.Errorf("NewCamera(%+v) succeeded", o)
		}
	}
}

// TestCameraCloseUnblocksRead: a paced Read waiting for its tick returns at
// Close, so closing a call never hangs on the camera.
func TestCameraCloseUnblocksRead(t *testing.T) {
	c, err := NewCamera(CameraOptions{Width: 32, Height: 32, FPS: 1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { _, _, err := c.Read(); done <- err }()
	c.Close()
	if err := <-done; err != nil && !errors.Is(err, io.EOF) {
		t.Errorf("Read = %v, want a frame or io.EOF", err)
	}
}

func TestMicrophone(t *testing.T) {
	tests := []struct {
		rate  int
		chunk time.Duration
		want  int
	}{{0, 0, 480}, {48000, 20 * time.Millisecond, 960}, {16000, 10 * time.Millisecond, 160}}
	for _, tt := range tests {
		m, err := NewMicrophone(MicrophoneOptions{SampleRate: tt.rate, Chunk: tt.chunk, Unpaced: true})
		if err != nil {
			t.Fatal(err)
		}
		var peak int16
		for range 100 { // one second at 10 ms chunks covers a chime
			a, _, err := m.Read()
			if err != nil {
				t.Fatal(err)
			}
			info := a.ChunkInfo()
			if info.Len != tt.want || info.Channels != 1 || (tt.rate == 0 && info.SamplingRate != 48000) {
				t.Fatalf("chunk %+v, want %d mono samples", info, tt.want)
			}
			for i := range info.Len {
				if v := int16(a.At(i, 0).Int() >> 16); v > peak {
					peak = v
				}
			}
		}
		if peak < 1000 {
			t.Errorf("peak %d: the chime is missing", peak)
		}
		m.Close()
		if _, _, err := m.Read(); !errors.Is(err, io.EOF) {
			t.Errorf("Read after Close = %v, want io.EOF", err)
		}
	}
}
