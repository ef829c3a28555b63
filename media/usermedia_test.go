package media

import (
	"image"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/mediadevices"
	"github.com/pion/mediadevices/pkg/io/video"
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
			for range 60 {
				if _, _, err := r.Read(); err != nil {
					t.Fatal(err)
				}
			}
			var live int64
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				runtime.GC()
				if live = src.live.Load(); live <= tc.max {
					break
				}
			}
			runtime.KeepAlive(r)
			t.Logf("%d of 60 pictures alive", live)
			if live < tc.min || live > tc.max {
				t.Errorf("%d pictures alive after 60 read, want %d–%d", live, tc.min, tc.max)
			}
		})
	}
}
