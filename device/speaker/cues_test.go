package speaker

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/tuanju/tuanju/tests/audiotest"
)

// TestSynthesize checks every note of every cue sounds at its frequency
// (Goertzel: far above two semitones either side), rests are silent, the
// cue is as long as its score, no sample is loud, and notes start and end
// at zero with no step bigger than the tone itself makes (no clicks).
func TestSynthesize(t *testing.T) {
	for _, rate := range []int{48000, 16000, 44100} {
		for _, name := range Cues() {
			pcm, err := Synthesize(name, rate)
			if err != nil {
				t.Fatalf("Synthesize(%s, %d): %v", name, rate, err)
			}
			notes, loopFor, err := Timeline(name)
			if err != nil {
				t.Fatal(err)
			}
			if (loopFor > 0) != (name == CueRing || name == CueCalling) {
				t.Errorf("%s loops for %v; only ring and calling should loop", name, loopFor)
			}
			at := func(d time.Duration) int { return int(int64(d) * int64(rate) / int64(time.Second)) }
			last := notes[len(notes)-1]
			if want := at(last.Start + last.Dur); abs(len(pcm)-want) > len(notes) {
				t.Errorf("%s at %d Hz: %d samples, want %d", name, rate, len(pcm), want)
			}
			if p := audiotest.Peak(pcm); p > 32767*4/10 || p < 32767/10 {
				t.Errorf("%s: peak %d, want between 10%% and 40%% of full scale", name, p)
			}
			for _, n := range notes {
				a, b := at(n.Start), min(at(n.Start+n.Dur), len(pcm))
				seg := pcm[a:b]
				if n.Freq == 0 {
					if audiotest.Peak(seg) != 0 {
						t.Errorf("%s: rest at %v is not silent", name, n.Start)
					}
					continue
				}
				if abs(int(seg[0])) > 50 || abs(int(seg[len(seg)-1])) > 50 {
					t.Errorf("%s: note at %v starts at %d, ends at %d: want ~0", name, n.Start, seg[0], seg[len(seg)-1])
				}
				// The steepest a sine of this frequency and peak can go,
				// with room for the harmonic and the envelope.
				maxStep := 2 * math.Pi * n.Freq / float64(rate) * float64(audiotest.Peak(seg)) * 1.6
				for i := 1; i < len(seg); i++ {
					if d := math.Abs(float64(seg[i]) - float64(seg[i-1])); d > maxStep+2 {
						t.Errorf("%s: note at %v jumps %v at sample %d (max %v): a click", name, n.Start, d, i, maxStep)
						break
					}
				}
				mid := seg[len(seg)/8 : len(seg)*5/8]
				on := audiotest.Goertzel(mid, rate, n.Freq)
				semi := math.Pow(2, 2.0/12)
				for _, off := range []float64{n.Freq / semi, n.Freq * semi} {
					if p := audiotest.Goertzel(mid, rate, off); p*20 > on {
						t.Errorf("%s: note %.0f Hz at %v: power at %.0f Hz is %.0f, not ≪ %.0f", name, n.Freq, n.Start, off, p, on)
					}
				}
			}
		}
	}
	if _, err := Synthesize("bogus", 48000); !errors.Is(err, ErrUnknownCue) {
		t.Errorf("Synthesize(bogus) = %v, want ErrUnknownCue", err)
	}
	if _, _, err := Timeline("bogus"); !errors.Is(err, ErrUnknownCue) {
		t.Errorf("Timeline(bogus) = %v, want ErrUnknownCue", err)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
