package media

import (
	"fmt"
	"math"
	"math/cmplx"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/mediadevices/pkg/io/audio"
	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/mediadevices/pkg/wave"

	"github.com/tuanju/tuanju/media/opusdec"
	"github.com/tuanju/tuanju/media/opusenc"
)

// voice is a child's voice, roughly, at 48 kHz: voiced syllables (a 280 Hz
// glottal buzz through the formants of a vowel) at ~4.5 a second in phrases
// of 1–2.6 s, pauses of 0.6–2 s between them with only room noise: what
// Opus' speech coder, its DTX and its FEC are tuned for, unlike a chime.
func voice(seconds int, seed uint64) []int16 {
	const rate = 48000
	out := make([]int16, seconds*rate)
	r := seed*0x9e3779b97f4a7c15 + 1
	rnd := func() float64 { // xorshift64*, 0..1
		r ^= r >> 12
		r ^= r << 25
		r ^= r >> 27
		return float64((r*0x2545f4914f6cdd1d)>>11) / (1 << 53)
	}
	vowels := [][3]float64{{1000, 1600, 3300}, {600, 2600, 3500}, {400, 3200, 4000}, {650, 1100, 3200}, {450, 1000, 3000}}
	var phase [40]float64
	i := 0
	for i < len(out) {
		// A phrase, then a pause.
		talk := int((1 + 1.6*rnd()) * rate)
		syll := int((0.19 + 0.06*rnd()) * rate)
		for s := 0; s < talk && i < len(out); s += syll {
			v := vowels[int(rnd()*float64(len(vowels)))]
			f0 := 260 + 50*rnd()
			var amp [40]float64
			for k := 1; k < len(amp); k++ {
				f := float64(k) * f0
				if f > 7500 {
					break
				}
				for j, fm := range v {
					bw := 80 + 60*float64(j)
					amp[k] += math.Exp(-(f-fm)*(f-fm)/(2*bw*bw)) / float64(1+j)
				}
				amp[k] += 0.3 / float64(k)
			}
			for n := range syll {
				if i >= len(out) {
					break
				}
				u := float64(n) / float64(syll)
				env := math.Pow(math.Sin(math.Pi*u), 0.6)
				fk := f0 * (1 - 0.08*u) // falling pitch through the syllable
				var x float64
				for k := 1; k < len(amp) && amp[k] > 0; k++ {
					phase[k] += 2 * math.Pi * float64(k) * fk / rate
					x += amp[k] * math.Sin(phase[k])
				}
				if u < 0.15 { // a consonant's hiss at the onset
					x += 0.6 * (rnd() - 0.5) * (1 - u/0.15)
				}
				out[i] = int16(5000*env*x + 60*(rnd()-0.5))
				i++
			}
		}
		pause := int((0.6 + 1.4*rnd()) * rate)
		for n := 0; n < pause && i < len(out); n++ {
			out[i] = int16(60 * (rnd() - 0.5)) // room noise, ~−60 dBFS
			i++
		}
	}
	return out
}

// pcmReader replays samples in 10 ms chunks, as the microphone would.
func pcmReader(pcm []int16) audio.Reader {
	pos := 0
	return audio.ReaderFunc(func() (wave.Audio, func(), error) {
		c := wave.NewInt16Interleaved(wave.ChunkInfo{Len: 480, Channels: 1, SamplingRate: 48000})
		for i := range c.Data {
			c.Data[i] = pcm[(pos+i)%len(pcm)]
		}
		pos += 480
		return c, func() {}, nil
	})
}

// audioRun encodes the voice with opusenc and decodes it again, as a
// receiver would (a DTX gap decoded as concealment, i.e. comfort noise).
type audioRun struct {
	Seconds    int
	Frame      time.Duration
	BitRate    int
	Complexity int
	FEC        bool
	Loss       int
	DTX        bool
	Bandwidth  opusenc.Bandwidth
}

type audioResult struct {
	Bytes, Packets int
	Encode         time.Duration
	LSD            float64 // log-spectral distance in dB over the voiced frames, 0–8 kHz
}

func (a audioRun) run(tb testing.TB, pcm []int16) audioResult {
	tb.Helper()
	p, err := opusenc.NewParams()
	if err != nil {
		tb.Fatal(err)
	}
	p.BitRate, p.Latency, p.Complexity, p.FEC, p.PacketLoss, p.DTX, p.MaxBandwidth = a.BitRate, a.Frame, a.Complexity, a.FEC, a.Loss, a.DTX, a.Bandwidth
	enc, err := p.BuildAudioEncoder(pcmReader(pcm), prop.Media{Audio: prop.Audio{SampleRate: 48000, ChannelCount: 1}})
	if err != nil {
		tb.Fatal(err)
	}
	defer enc.Close()
	dec, err := opusdec.New(48000, 1)
	if err != nil {
		tb.Fatal(err)
	}
	defer dec.Close()
	per := int(a.Frame * 48000 / time.Second)
	out := make([]int16, 0, len(pcm))
	buf := make([]int16, opusdec.MaxFrameSamples)
	var res audioResult
	for len(out) < len(pcm) {
		t0 := time.Now()
		pkt, release, err := enc.Read()
		res.Encode += time.Since(t0)
		if err != nil {
			tb.Fatal(err)
		}
		if len(pkt) > 0 {
			res.Bytes += len(pkt)
			res.Packets++
		}
		n, err := dec.Decode(pkt, buf[:per])
		release()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, buf[:n]...)
	}
	res.LSD = lsd(pcm, out[:len(pcm)])
	return res
}

// lsd is the log-spectral distance between ref and got (got delayed by
// the codec, found by cross-correlation), over 1024-sample Hann frames
// where ref has speech, on 0–8 kHz: phase-blind, as a speech coder is, and
// so a fair yardstick for comparing settings of one coder with each other
// (not a perceptual score).
func lsd(ref, got []int16) float64 {
	// The codec's delay: the lag (0..2000 samples) with the best correlation.
	best, delay := math.Inf(-1), 0
	for lag := 0; lag < 2000; lag += 1 {
		var c float64
		for i := 48000; i < 48000*4 && i+lag < len(got); i += 3 {
			c += float64(ref[i]) * float64(got[i+lag])
		}
		if c > best {
			best, delay = c, lag
		}
	}
	const n = 1024
	win := make([]float64, n)
	for i := range win {
		win[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/n)
	}
	bins := 8000 * n / 48000
	var sum float64
	frames := 0
	a, b := make([]complex128, n), make([]complex128, n)
	for start := 0; start+n+delay <= len(got); start += n / 2 {
		var e float64
		for i := range n {
			v := float64(ref[start+i])
			e += v * v
			a[i] = complex(v*win[i], 0)
			b[i] = complex(float64(got[start+delay+i])*win[i], 0)
		}
		if e/n < 500*500 { // a pause: room noise, not speech
			continue
		}
		fft(a)
		fft(b)
		var d float64
		for k := 1; k <= bins; k++ {
			pa := 10 * math.Log10(real(a[k])*real(a[k])+imag(a[k])*imag(a[k])+1e3)
			pb := 10 * math.Log10(real(b[k])*real(b[k])+imag(b[k])*imag(b[k])+1e3)
			d += (pa - pb) * (pa - pb)
		}
		sum += math.Sqrt(d / float64(bins))
		frames++
	}
	return sum / float64(frames)
}

// fft is an in-place radix-2 FFT; len(x) is a power of two.
func fft(x []complex128) {
	n := len(x)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		w := cmplx.Exp(complex(0, -2*math.Pi/float64(size)))
		for start := 0; start < n; start += size {
			wk := complex(1, 0)
			for k := range size / 2 {
				u, v := x[start+k], x[start+k+size/2]*wk
				x[start+k], x[start+k+size/2] = u+v, u-v
				wk *= w
			}
		}
	}
}

// TestAudioSweep (TUANJU_SWEEP=audio) prints the measurements the Opus
// settings of the profiles were chosen from: bytes and packets on the wire
// per frame size and bitrate, the cost and effect of DTX and FEC, and CPU
// against fidelity per complexity, on a synthetic voice with pauses.
func TestAudioSweep(t *testing.T) {
	if !strings.Contains(os.Getenv("TUANJU_SWEEP"), "audio") {
		t.Skip("set TUANJU_SWEEP=audio to run the Opus sweep")
	}
	const seconds = 30
	pcm := voice(seconds, 1)
	type c struct {
		name string
		run  audioRun
	}
	var cases []c
	add := func(name string, a audioRun) { a.Seconds = seconds; cases = append(cases, c{name, a}) }
	ms := time.Millisecond
	for _, frame := range []time.Duration{20 * ms, 40 * ms, 60 * ms} {
		for _, kbit := range []int{10, 12, 16, 20, 24} {
			add(fmt.Sprintf("%v %dk", frame, kbit), audioRun{Frame: frame, BitRate: kbit * 1000, Complexity: 5})
		}
		add(fmt.Sprintf("%v 16k dtx", frame), audioRun{Frame: frame, BitRate: 16000, Complexity: 5, DTX: true})
	}
	for _, cx := range []int{0, 2, 3, 5, 7, 9, 10} {
		add(fmt.Sprintf("20ms 16k complexity %d", cx), audioRun{Frame: 20 * ms, BitRate: 16000, Complexity: cx})
	}
	for _, loss := range []int{0, 5, 10, 20} {
		add(fmt.Sprintf("40ms 16k fec loss %d%%", loss), audioRun{Frame: 40 * ms, BitRate: 16000, Complexity: 5, FEC: true, Loss: loss})
	}
	add("40ms 16k wideband cap", audioRun{Frame: 40 * ms, BitRate: 16000, Complexity: 5, Bandwidth: opusenc.BandwidthWide})
	add("60ms 12k wideband cap", audioRun{Frame: 60 * ms, BitRate: 12000, Complexity: 5, Bandwidth: opusenc.BandwidthWide})
	only := os.Getenv("TUANJU_SWEEP_ONLY")
	t.Logf("%-28s %8s %6s %8s %7s %10s", "case", "kbit/s", "pkt/s", "wire", "LSD dB", "enc %core")
	for _, cc := range cases {
		if only != "" && !strings.Contains(cc.name, only) {
			continue
		}
		r := cc.run.run(t, pcm)
		wire := float64(r.Bytes+r.Packets*rtpOverhead) * 8 / seconds / 1000
		t.Logf("%-28s %8.2f %6.1f %8.2f %7.2f %10.3f", cc.name, float64(r.Bytes)*8/seconds/1000, float64(r.Packets)/seconds, wire, r.LSD,
			100*r.Encode.Seconds()/seconds)
	}
}
