package alsa

import (
	"fmt"
	"log/slog"
	"time"
)

// DefaultDir is where the kernel's devtmpfs puts ALSA's device nodes.
const DefaultDir = "/dev/snd"

// Stream is a PCM direction.
type Stream int

const (
	Playback Stream = iota
	Capture
)

func (s Stream) String() string {
	switch s {
	case Playback:
		return "playback"
	case Capture:
		return "capture"
	}
	return fmt.Sprintf("stream(%d)", int(s))
}

// suffix is the letter ending the device node's name.
func (s Stream) suffix() byte {
	if s == Capture {
		return 'c'
	}
	return 'p'
}

func (s Stream) kernel() int32 {
	if s == Capture {
		return streamCapture
	}
	return streamPlayback
}

// Defaults chosen for a voice appliance: a 20 ms period is the Opus frame
// length and keeps wake-ups at 50 a second; four of them buffered ride out a
// busy moment without making the far side wait long.
const (
	DefaultRate       = 48000
	DefaultPeriodTime = 20 * time.Millisecond
	DefaultPeriods    = 4
)

// Config says what to open. Zero fields take the defaults.
type Config struct {
	// Channels is 1 or 2 (interleaved); 0 means 1. The hardware must have
	// exactly this count: no channel mapping is done.
	Channels int
	// Rate is the wanted sample rate in Hz (0: 48000); the nearest rate the
	// hardware has is taken and reported in Params.Rate.
	Rate int
	// PeriodTime is the wanted period (the unit the hardware interrupts
	// and Read/Write wake up at); the nearest size the hardware has is taken.
	PeriodTime time.Duration
	// Periods is how many periods the ring buffer holds (nearest taken).
	// For playback, Periods×PeriodTime is the output latency when the
	// writer keeps the buffer full.
	Periods int
	// Dir holds the device nodes; "" is DefaultDir.
	Dir string
	// Log gets xrun and suspend recoveries; nil discards.
	Log *slog.Logger
}

// WithDefaults returns c with its zero fields set as Open sets them, for a
// caller that reports what it asked for.
func (c Config) WithDefaults() Config {
	if c.Channels == 0 {
		c.Channels = 1
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.PeriodTime == 0 {
		c.PeriodTime = DefaultPeriodTime
	}
	if c.Periods == 0 {
		c.Periods = DefaultPeriods
	}
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks a Config after WithDefaults.
func (c Config) validate() error {
	switch {
	case c.Channels < 1 || c.Channels > 2:
		return fmt.Errorf("alsa: %d channels: want 1 or 2: %w", c.Channels, ErrUnsupported)
	case c.Rate < 1000 || c.Rate > 768000:
		return fmt.Errorf("alsa: rate %d Hz out of range: %w", c.Rate, ErrUnsupported)
	case c.PeriodTime < time.Millisecond || c.PeriodTime > time.Second:
		return fmt.Errorf("alsa: period %v out of 1ms..1s: %w", c.PeriodTime, ErrUnsupported)
	case c.Periods < 2 || c.Periods > 64:
		return fmt.Errorf("alsa: %d periods out of 2..64: %w", c.Periods, ErrUnsupported)
	}
	return nil
}

// Params is the setup the hardware accepted.
type Params struct {
	Channels     int
	Rate         int // Hz, the nearest the hardware has to Config.Rate
	PeriodFrames int // frames per period
	BufferFrames int // frames in the ring buffer
}

// PeriodTime is the duration of one period.
func (p Params) PeriodTime() time.Duration { return p.FramesTime(p.PeriodFrames) }

// BufferTime is the duration of the whole ring buffer.
func (p Params) BufferTime() time.Duration { return p.FramesTime(p.BufferFrames) }

// FramesTime is the duration of n frames at the rate.
func (p Params) FramesTime(n int) time.Duration {
	if p.Rate == 0 {
		return 0
	}
	return time.Duration(int64(n) * int64(time.Second) / int64(p.Rate))
}
