package media

import (
	"image"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/mediadevices"
	"github.com/pion/mediadevices/pkg/io/audio"
	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/wave"
)

// pictureSource makes a new 320×240 picture per Read, counting those not
// yet collected.
type pictureSource struct{ live atomic.Int64 }

func (s *pictureSource) ID() string   { return "pictures" }
func (s *pictureSource) Close() error { return nil }
func (s *pictureSource) Read() (image.Image, func(), error) {
	img := image.NewYCbCr(image.Rect(0, 0, 320, 240), image.YCbCrSubsampleRatio420)
	s.live.Add(1)
	runtime.AddCleanup(img, func(l *atomic.Int64) { l.Add(-1) }, &s.live)
	return img, func() {}, nil
}

var _ video.Reader = (*pictureSource)(nil)

// TestSmallRing: a video track read picture by picture keeps trackRing
// pictures alive, not mediadevices' 32 (3.7 MB at 320×240).
func TestSmallRing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shrink   bool
		min, max int64
	}{
		{"mediadevices' ring", false, 30, 40},
		{"smallRing", true, 0, trackRing + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &pictureSource{}
			track := mediadevices.NewVideoTrack(src, nil)
			defer track.Close()
			if tc.shrink {
				smallRing(track)
			}
			r := track.(*mediadevices.VideoTrack).NewReader(false)
			live := liveAfterReads(t, func() error { _, _, err := r.Read(); return err }, &src.live, tc.max)
			t.Logf("%d of 60 pictures alive", live)
			if live < tc.min || live > tc.max {
				t.Errorf("%d pictures alive after 60 read, want %d–%d", live, tc.min, tc.max)
			}
		})
	}
}

// chunkSource makes a new 40 ms mono chunk per Read, counting those not yet
// collected.
type chunkSource struct{ live atomic.Int64 }

func (s *chunkSource) ID() string   { return "chunks" }
func (s *chunkSource) Close() error { return nil }
func (s *chunkSource) Read() (wave.Audio, func(), error) {
	a := wave.NewInt16Interleaved(wave.ChunkInfo{Len: 1920, Channels: 1, SamplingRate: 48000})
	s.live.Add(1)
	runtime.AddCleanup(a, func(l *atomic.Int64) { l.Add(-1) }, &s.live)
	return a, func() {}, nil
}

var _ audio.Reader = (*chunkSource)(nil)

// TestAudioRing: an audio track read in 40 ms chunks keeps audioRingTime
// of them (8), not mediadevices' 32 (1.3 s, 123 KB).
func TestAudioRing(t *testing.T) {
	want := int64(audioRingTime / (40 * time.Millisecond))
	for _, tc := range []struct {
		name     string
		ring     bool
		min, max int64
	}{
		{"mediadevices' ring", false, 30, 40},
		{"audioRing", true, want - 1, want + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &chunkSource{}
			track := mediadevices.NewAudioTrack(src, nil)
			defer track.Close()
			if tc.ring {
				audioRing(track, 40*time.Millisecond)
			}
			r := track.(*mediadevices.AudioTrack).NewReader(false)
			live := liveAfterReads(t, func() error { _, _, err := r.Read(); return err }, &src.live, tc.max)
			t.Logf("%d of 60 chunks alive", live)
			if live < tc.min || live > tc.max {
				t.Errorf("%d chunks alive after 60 read, want %d–%d", live, tc.min, tc.max)
			}
		})
	}
}

// liveAfterReads reads 60 times through read (a track's reader, which the
// closure keeps alive), then collects until at most max of a source's
// items are alive, or 5 s pass, and returns how many are.
func liveAfterReads(t *testing.T, read func() error, live *atomic.Int64, max int64) int64 {
	t.Helper()
	for range 60 {
		if err := read(); err != nil {
			t.Fatal(err)
		}
	}
	n := live.Load()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		runtime.GC()
		if n = live.Load(); n <= max {
			break
		}
	}
	runtime.KeepAlive(read) // and the reader it holds, until the count is taken
	return n
}
