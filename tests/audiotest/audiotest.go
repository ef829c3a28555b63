// Package audiotest measures PCM in tests: tone power at a frequency
// (Goertzel), the frequency of a single tone (zero crossings), loudness
// (RMS), and where one signal starts inside another. The speaker's unit
// tests and the kernel-in-the-loop ALSA tests share it.
package audiotest

import (
	"math"
	"slices"
)

// Goertzel returns the power of freq in samples (mono, at rate), normalised
// so a full-block sine of amplitude A gives about A²/4 whatever the block
// length: powers of different blocks compare.
func Goertzel(samples []int16, rate int, freq float64) float64 {
	n := len(samples)
	if n == 0 {
		return 0
	}
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	p := s1*s1 + s2*s2 - coeff*s1*s2
	return p / float64(n) / float64(n)
}

// ZeroCrossingFreq estimates the frequency of a single tone from its
// rising zero crossings (interpolated): the mean period between the first
// and the last crossing. It returns 0 with fewer than two crossings.
func ZeroCrossingFreq(samples []int16, rate int) float64 {
	var first, last float64
	n := 0
	for i := 1; i < len(samples); i++ {
		a, b := float64(samples[i-1]), float64(samples[i])
		if a < 0 && b >= 0 {
			x := float64(i-1) + a/(a-b)
			if n == 0 {
				first = x
			}
			last = x
			n++
		}
	}
	if n < 2 {
		return 0
	}
	return float64(n-1) * float64(rate) / (last - first)
}

// RMS is the root mean square of samples.
func RMS(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, x := range samples {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum / float64(len(samples)))
}

// Peak is the largest absolute sample.
func Peak(samples []int16) int {
	p := 0
	for _, x := range samples {
		p = max(p, abs(int(x)))
	}
	return p
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Find returns the first index at which needle's first min(len(needle), 64)
// samples appear in haystack, or -1.
func Find(haystack, needle []int16) int {
	head := needle[:min(len(needle), 64)]
	for i := 0; i+len(head) <= len(haystack); i++ {
		if slices.Equal(haystack[i:i+len(head)], head) {
			return i
		}
	}
	return -1
}

// Deinterleave returns channel ch of interleaved frames of n channels.
func Deinterleave(frames []int16, n, ch int) []int16 {
	out := make([]int16, 0, len(frames)/n)
	for i := ch; i < len(frames); i += n {
		out = append(out, frames[i])
	}
	return out
}

// Tone returns n samples of a sine of freq Hz and amplitude amp at rate,
// plus a deterministic pseudo-random dither of ±dither (0: none), which
// makes every stretch of the signal unique so Find locates it exactly.
func Tone(n, rate int, freq, amp float64, dither int) []int16 {
	out := make([]int16, n)
	seed := uint32(1)
	for i := range out {
		v := amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))
		if dither > 0 {
			seed = seed*1664525 + 1013904223
			v += float64(int(seed>>16)%(2*dither+1) - dither)
		}
		out[i] = int16(math.Round(v))
	}
	return out
}
