package synth

import (
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"time"

	"github.com/pion/mediadevices/pkg/wave"
)

// MicrophoneOptions configure a synthetic microphone. Zero values pick 48 kHz
// mono in 10 ms chunks; a call asks for chunks of its Opus frame, as it
// asks an ALSA microphone for periods of it (the Opus encoder re-chunks
// any length to its frame).
type MicrophoneOptions struct {
	SampleRate int
	Chunk      time.Duration
	// Unpaced makes Read return at once instead of in real time (tests).
	Unpaced bool
}

// captureBuffer is how far behind real time a reader may fall and still get
// every chunk, as an ALSA capture buffer holds what was recorded meanwhile.
const captureBuffer = 500 * time.Millisecond

// Microphone is a synthetic microphone: a soft two-note chime (C5 then E5,
// 150 ms each with smooth edges) once a second over near-silence. It implements
// mediadevices' AudioSource (audio.Reader plus ID and Close).
type Microphone struct {
	rate  int
	chunk int // samples per Read
	pace  *pacer
	pos   int64 // samples produced; owned by the reading goroutine
	total atomic.Int64
}

// NewMicrophone returns a synthetic microphone.
func NewMicrophone(opts MicrophoneOptions) (*Microphone, error) {
	if opts.SampleRate == 0 {
		opts.SampleRate = 48000
	}
	if opts.Chunk == 0 {
		opts.Chunk = 10 * time.Millisecond
	}
	chunk := int(time.Duration(opts.SampleRate) * opts.Chunk / time.Second)
	if opts.SampleRate < 8000 || chunk <= 0 {
		return nil, fmt.Errorf("synth: microphone %d Hz, chunk %v: unsupported", opts.SampleRate, opts.Chunk)
	}
	return &Microphone{rate: opts.SampleRate, chunk: chunk, pace: newBufferedPacer(opts.Chunk, captureBuffer, opts.Unpaced)}, nil
}

// ID implements mediadevices.Source.
func (m *Microphone) ID() string { return "synthetic-microphone" }

// Close ends the stream: a blocked or later Read returns io.EOF.
func (m *Microphone) Close() error {
	m.pace.close()
	return nil
}

// Samples returns how many samples (per channel) have been produced.
func (m *Microphone) Samples() int64 { return m.total.Load() }

// Read returns the next chunk of 16-bit mono PCM, paced in real time unless
// Unpaced. The returned chunk is not reused.
func (m *Microphone) Read() (wave.Audio, func(), error) {
	if !m.pace.wait() {
		return nil, func() {}, io.EOF
	}
	a := wave.NewInt16Interleaved(wave.ChunkInfo{Len: m.chunk, Channels: 1, SamplingRate: m.rate})
	for i := range a.Data {
		a.Data[i] = m.sample(m.pos + int64(i))
	}
	m.pos += int64(m.chunk)
	m.total.Add(int64(m.chunk))
	return a, func() {}, nil
}

// sample computes sample n of the chime.
func (m *Microphone) sample(n int64) int16 {
	rate := float64(m.rate)
	t := float64(n%int64(m.rate)) / rate // position within the second
	const note = 0.150
	var f, start float64
	switch {
	case t < note:
		f, start = 523.25, 0 // C5
	case t >= 0.2 && t < 0.2+note:
		f, start = 659.25, 0.2 // E5
	default:
		// Room tone: a quiet hum keeps the encoder out of DTX-like silence so
		// every packet carries audio.
		return int16(60 * math.Sin(2*math.Pi*110*float64(n)/rate))
	}
	u := (t - start) / note                // 0..1 through the note
	env := 0.5 - 0.5*math.Cos(2*math.Pi*u) // raised cosine: no clicks
	return int16(8000 * env * math.Sin(2*math.Pi*f*float64(n)/rate))
}
