package audiotest

import (
	"math"
	"testing"
)

func TestMeasures(t *testing.T) {
	const rate = 48000
	tone := Tone(4800, rate, 1000, 10000, 0)
	if f := ZeroCrossingFreq(tone, rate); math.Abs(f-1000) > 1 {
		t.Errorf("ZeroCrossingFreq(1 kHz) = %.2f", f)
	}
	if r := RMS(tone); math.Abs(r-10000/math.Sqrt2) > 10 {
		t.Errorf("RMS = %.1f, want %.1f", r, 10000/math.Sqrt2)
	}
	on, off := Goertzel(tone, rate, 1000), Goertzel(tone, rate, 1300)
	if want := 10000.0 * 10000 / 4; math.Abs(on-want)/want > 0.01 {
		t.Errorf("Goertzel at the tone = %.0f, want %.0f", on, want)
	}
	if off > on/1000 {
		t.Errorf("Goertzel 300 Hz off the tone = %.0f, not far below %.0f", off, on)
	}
	d := Tone(1000, rate, 440, 5000, 50)
	if i := Find(append(make([]int16, 123), d...), d); i != 123 {
		t.Errorf("Find = %d, want 123", i)
	}
	if i := Find(make([]int16, 500), d); i != -1 {
		t.Errorf("Find in silence = %d, want -1", i)
	}
	if got := Deinterleave([]int16{1, -1, 2, -2, 3, -3}, 2, 1); len(got) != 3 || got[2] != -3 {
		t.Errorf("Deinterleave = %v", got)
	}
}
