package media

import (
	"errors"
	"image"
	"io"
	"testing"
	"time"

	"github.com/pion/mediadevices/pkg/io/video"
)

// TestFrameThrottle feeds the throttle frames at given gaps on a fake clock
// and checks which it lets through to the encoder: the first at once (the
// call's first picture must not wait for a second one), then the set rate
// out of a faster camera, evenly, through timing wobble.
func TestFrameThrottle(t *testing.T) {
	const ms = time.Millisecond
	steady := func(gap time.Duration, n int) []time.Duration {
		g := make([]time.Duration, n)
		for i := range g {
			g[i] = gap
		}
		return g
	}
	tests := []struct {
		name   string
		fps    float64
		paused bool
		gaps   []time.Duration // before each frame; the first frame's is ignored
		want   string          // "x" passed, "." dropped, frame by frame
	}{
		{"every frame when unset", 0, false, steady(33*ms, 6), "xxxxxx"},
		{"15 of a 30 fps camera", 15, false, steady(33333*time.Microsecond, 8), "x.x.x.x."},
		{"10 of a 30 fps camera", 10, false, steady(33333*time.Microsecond, 9), "x..x..x.."},
		{"10 of a 15 fps camera", 10, false, steady(66667*time.Microsecond, 6), "x.xx.x"},
		{"15 of a 15 fps camera", 15, false, steady(66667*time.Microsecond, 6), "xxxxxx"},
		// A frame read 2 ms early still goes; one 4 ms early waits a frame,
		// and the credit kept brings the rate back.
		{"15 of 30 with wobble", 15, false, []time.Duration{0, 33 * ms, 31 * ms, 33 * ms, 29 * ms, 33 * ms, 33 * ms, 33 * ms}, "x.x..x.x"},
		{"a late 15 fps frame costs the next nothing", 15, false, []time.Duration{0, 90 * ms, 43 * ms, 67 * ms}, "xxxx"},
		{"paused", 15, true, steady(33*ms, 4), "...."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := time.Unix(0, 0)
			f := &frameThrottle{now: func() time.Time { return clock }}
			f.set(tt.fps, tt.paused)
			i := 0
			src := video.ReaderFunc(func() (image.Image, func(), error) {
				if i == len(tt.gaps) {
					return nil, func() {}, io.EOF
				}
				if i > 0 {
					clock = clock.Add(tt.gaps[i])
				}
				i++
				return image.NewGray(image.Rect(0, 0, 2, 2)), func() {}, nil
			})
			r := f.transform(src)
			var got []byte
			for {
				before := i
				_, _, err := r.Read()
				for range i - before - 1 {
					got = append(got, '.')
				}
				if errors.Is(err, io.EOF) {
					if i > before {
						got = append(got, '.')
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, 'x')
			}
			if string(got) != tt.want {
				t.Errorf("frames %s, want %s", got, tt.want)
			}
			if n := f.passed.Load() + f.dropped.Load(); n != int64(i) {
				t.Errorf("passed %d + dropped %d = %d, %d read", f.passed.Load(), f.dropped.Load(), n, i)
			}
		})
	}
}
