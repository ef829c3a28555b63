package speaker

import (
	"testing"
	"time"
)

// BenchmarkMix is one 20 ms period of the playback goroutine's work
// without the sink: the voice through the jitter buffer (WritePCM's copy
// included) mixed under a looping cue. At 50 periods a second, ns/op ÷
// 20 ms is the share of one core the speaker costs.
func BenchmarkMix(b *testing.B) {
	for _, rate := range []int{48000, 44100} {
		b.Run(map[int]string{48000: "48k", 44100: "44k1-resampled"}[rate], func(b *testing.B) {
			f := Format{Rate: rate, Channels: 1, PeriodFrames: rate / 50}
			opts := Options{}.withDefaults()
			s := &Speaker{format: f, opts: opts, jb: newJitterBuffer(VoiceRate/4, VoiceRate/20, VoiceRate/25, VoiceRate)}
			if rate != VoiceRate {
				s.rs = &resampler{step: float64(VoiceRate) / float64(rate)}
			}
			ring, err := Synthesize(CueRing, rate)
			if err != nil {
				b.Fatal(err)
			}
			s.cue = &playing{name: CueRing, pcm: ring, loop: true, left: int64(time.Hour.Seconds()) * int64(rate), done: make(chan error, 1)}
			voice := make([]int16, 960)
			for i := range voice {
				voice[i] = int16(i)
			}
			mono := make([]int16, f.PeriodFrames)
			for b.Loop() {
				s.mu.Lock()
				s.jb.push(voice)
				s.renderLocked(mono, 0)
				s.mu.Unlock()
			}
		})
	}
}
