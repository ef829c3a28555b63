package speaker

import (
	"math"
	"slices"
	"testing"

	"github.com/tuanju/tuanju/tests/audiotest"
)

// seq returns n samples counting from start, to see order and loss.
func seq(start, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(start + i)
	}
	return s
}

func TestJitterBuffer(t *testing.T) {
	type op struct {
		push     []int16 // push these, or
		pull     int     // pull this many and expect:
		want     []int16 // the samples (nil: all silence)
		wantRead int     // how many were voice
	}
	tests := []struct {
		name                          string
		capacity, target, slack, win  int
		ops                           []op
		wantDropped, wantUnder, wantT int64
	}{
		{
			name: "waits for target, then plays in order", capacity: 100, target: 30, slack: 100, win: 1000,
			ops: []op{
				{push: seq(1, 20)},
				{pull: 10, want: make([]int16, 10)}, // below target: silence, nothing consumed
				{push: seq(21, 20)},
				{pull: 25, want: seq(1, 25), wantRead: 25},
				{pull: 15, want: seq(26, 15), wantRead: 15},
			},
		},
		{
			name: "underrun plays what is left then silence and buffers again", capacity: 100, target: 10, slack: 100, win: 1000,
			ops: []op{
				{push: seq(1, 12)},
				{pull: 8, want: seq(1, 8), wantRead: 8},
				{pull: 8, want: append(seq(9, 4), 0, 0, 0, 0), wantRead: 4},
				{push: seq(13, 5)},
				{pull: 4, want: make([]int16, 4)}, // 5 < target 10: still buffering
				{push: seq(18, 5)},
				{pull: 4, want: seq(13, 4), wantRead: 4},
			},
			wantUnder: 1,
		},
		{
			name: "overflow drops the oldest", capacity: 10, target: 1, slack: 100, win: 1000,
			ops: []op{
				{push: seq(1, 8)},
				{push: seq(9, 5)}, // 13 > 10: 1..3 dropped
				{pull: 10, want: seq(4, 10), wantRead: 10},
				{push: seq(100, 25)}, // bigger than the buffer: only the last 10 kept
				{pull: 10, want: seq(115, 10), wantRead: 10},
			},
			wantDropped: 3 + 15,
		},
		{
			name: "wraps around the ring", capacity: 8, target: 1, slack: 100, win: 1000,
			ops: []op{
				{push: seq(1, 6)}, {pull: 5, want: seq(1, 5), wantRead: 5},
				{push: seq(7, 6)}, {pull: 7, want: seq(6, 7), wantRead: 7},
			},
		},
		{
			name: "latency creeping above target is trimmed", capacity: 100, target: 10, slack: 5, win: 20,
			ops: []op{
				{push: seq(1, 50)},
				{pull: 10, want: seq(1, 10), wantRead: 10},  // level 40
				{pull: 10, want: seq(11, 10), wantRead: 10}, // level 30 at window end: 20 above target, trim to 10
				{pull: 10, want: seq(41, 10), wantRead: 10},
			},
			wantT: 20,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJitterBuffer(tt.capacity, tt.target, tt.slack, tt.win)
			for i, o := range tt.ops {
				if o.push != nil {
					j.push(o.push)
					continue
				}
				out := slices.Repeat([]int16{-1}, o.pull) // garbage to be overwritten
				n := j.pull(out)
				want := o.want
				if want == nil {
					want = make([]int16, o.pull)
				}
				if n != o.wantRead || !slices.Equal(out, want) {
					t.Fatalf("op %d: pull(%d) = %d, %v; want %d, %v", i, o.pull, n, out, o.wantRead, want)
				}
			}
			if j.dropped != tt.wantDropped || j.underruns != tt.wantUnder || j.trimmed != tt.wantT {
				t.Errorf("dropped %d underruns %d trimmed %d; want %d %d %d", j.dropped, j.underruns, j.trimmed, tt.wantDropped, tt.wantUnder, tt.wantT)
			}
		})
	}
}

// TestResampler converts a 1 kHz tone from 48 kHz to other rates: the
// frequency and loudness must survive, and no input may be lost or
// repeated (the rates' ratio of samples is consumed).
func TestResampler(t *testing.T) {
	for _, rate := range []int{44100, 32000, 16000} {
		in := audiotest.Tone(VoiceRate, VoiceRate, 1000, 10000, 0)
		src := in
		pull := func(p []int16) int {
			n := copy(p, src)
			src = src[n:]
			return n
		}
		rs := &resampler{step: float64(VoiceRate) / float64(rate)}
		var out []int16
		chunk := make([]int16, rate/50)
		for range 45 { // 0.9 s of 20 ms periods
			rs.fill(chunk, pull)
			out = append(out, chunk...)
		}
		consumed := len(in) - len(src)
		if want := VoiceRate * 9 / 10; abs(consumed-want) > 1 {
			t.Errorf("%d Hz: consumed %d input samples for 0.9 s, want %d", rate, consumed, want)
		}
		if f := audiotest.ZeroCrossingFreq(out[10:], rate); math.Abs(f-1000) > 2 {
			t.Errorf("%d Hz: tone at %.1f Hz after resampling, want 1000", rate, f)
		}
		if r := audiotest.RMS(out[10:]); math.Abs(r-10000/math.Sqrt2) > 200 {
			t.Errorf("%d Hz: RMS %.0f after resampling, want %.0f", rate, r, 10000/math.Sqrt2)
		}
	}
}
