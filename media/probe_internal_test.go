package media

import (
	"math"
	"testing"
)

func TestLevels(t *testing.T) {
	sine := make([]int16, 4800)
	for i := range sine {
		sine[i] = int16(16384 * math.Sin(2*math.Pi*440*float64(i)/48000))
	}
	tests := []struct {
		name      string
		s         []int16
		rms, peak float64
	}{
		{"digital silence", make([]int16, 480), -200, -200},
		{"half-scale sine", sine, -9.03, -6.02}, // 0.5/√2 and 0.5
		{"full-scale square", []int16{-32768, -32768}, 0, 0},
	}
	for _, tt := range tests {
		rms, peak, err := levels(tt.s)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(rms-tt.rms) > 0.05 || math.Abs(peak-tt.peak) > 0.05 {
			t.Errorf("%s: rms %.2f peak %.2f dBFS, want %.2f %.2f", tt.name, rms, peak, tt.rms, tt.peak)
		}
	}
	if _, _, err := levels(nil); err == nil {
		t.Error("levels(nil) succeeded")
	}
}
