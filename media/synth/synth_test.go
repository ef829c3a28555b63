package synth

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"slices"
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

// TestCamerasShareTheirScene: a camera opened again finds its scene made,
// the same frames a scene made afresh renders, and the cache keeps the
// last few options only.
func TestCamerasShareTheirScene(t *testing.T) {
	open := func(o CameraOptions) *Camera {
		t.Helper()
		o.Unpaced = true
		c, err := NewCamera(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	o := CameraOptions{Width: 64, Height: 48, FPS: 30, Seed: 11}
	first, again := open(o), open(o)
	if first.scene != again.scene {
		t.Error("a camera opened again made its scene anew")
	}
	fresh := newScene(t, o.SceneOptions())
	for n := range 3 {
		img, _, err := again.Read()
		if err != nil {
			t.Fatal(err)
		}
		want := fresh.Frame(n)
		got := img.(*image.YCbCr)
		if !bytes.Equal(got.Y, want.Y) || !bytes.Equal(got.Cb, want.Cb) || !bytes.Equal(got.Cr, want.Cr) {
			t.Fatalf("frame %d of the kept scene differs from a fresh scene's", n)
		}
	}
	if other := open(CameraOptions{Width: 64, Height: 48, FPS: 15, Seed: 11}); other.scene == first.scene {
		t.Error("another frame rate shares the scene")
	}
	for i := range keptScenes {
		open(CameraOptions{Width: 32, Height: 32, FPS: 1 + i})
	}
	if open(o).scene == first.scene {
		t.Errorf("the scene stayed kept after %d others were opened", keptScenes)
	}
	sceneCache.Lock()
	n := len(sceneCache.recent)
	sceneCache.Unlock()
	if n != keptScenes {
		t.Errorf("%d scenes kept, want %d", n, keptScenes)
	}
}

// BenchmarkNewCamera is what opening the synthetic camera costs: made is a
// scene prepared afresh, kept one found from an earlier camera.
func BenchmarkNewCamera(b *testing.B) {
	o := CameraOptions{Width: 320, Height: 240, FPS: 30, Unpaced: true}
	b.Run("made", func(b *testing.B) {
		for b.Loop() {
			if _, err := NewScene(o.SceneOptions()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kept", func(b *testing.B) {
		for b.Loop() {
			c, err := NewCamera(o)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}

// TestCameraSentFPS: a camera asked for more pictures than it sends paints
// the first tick's, then SentFPS of every FPS ticks evenly, numbered by
// tick so the scene keeps its time.
func TestCameraSentFPS(t *testing.T) {
	tests := []struct {
		fps, sent int
		want      []int
	}{
		{30, 15, []int{0, 2, 4, 6, 8}},
		{20, 10, []int{0, 2, 4, 6, 8}},
		{30, 20, []int{0, 2, 3, 5, 6}},
		{30, 10, []int{0, 3, 6, 9, 12}},
		{15, 0, []int{0, 1, 2, 3, 4}},
		{15, 15, []int{0, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-of-%d", tt.sent, tt.fps), func(t *testing.T) {
			c, err := NewCamera(CameraOptions{Width: 160, Height: 120, FPS: tt.fps, SentFPS: tt.sent, Unpaced: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var got []int
			for range tt.want {
				img, _, err := c.Read()
				if err != nil {
					t.Fatal(err)
				}
				n, ok := ReadStamp(img.(*image.YCbCr))
				if !ok {
					t.Fatal("no stamp")
				}
				got = append(got, n)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("stamps %v, want %v", got, tt.want)
			}
			if c.Frames() != int64(len(tt.want)) {
				t.Errorf("Frames() = %d, want %d painted", c.Frames(), len(tt.want))
			}
		})
	}
}
