// Package speakertest has fakes for code that plays sound: Speaker, a
// speaker.Player that records what it was asked to play, and Sink, a
// speaker.Sink whose every Write the test receives (and so paces).
package speakertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/tuanju/tuanju/device/speaker"
)

// Speaker records cues and voice. PlayCueWait returns WaitErr (nil: the
// cue "played" at once) or ctx's error if ctx is already done. Safe for
// concurrent use.
type Speaker struct {
	WaitErr error

	mu      sync.Mutex
	cues    []string
	stops   int
	samples int
	closed  bool
}

var _ speaker.Player = (*Speaker)(nil)

// PlayCue records cue (unknown names too: the real one logs them).
func (f *Speaker) PlayCue(cue string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cues = append(f.cues, cue)
}

// PlayCueWait records cue and returns at once.
func (f *Speaker) PlayCueWait(ctx context.Context, cue string) error {
	if !slices.Contains(speaker.Cues(), cue) {
		return fmt.Errorf("speakertest: cue %q: %w", cue, speaker.ErrUnknownCue)
	}
	f.PlayCue(cue)
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return speaker.ErrClosed
	}
	return f.WaitErr
}

// StopCue counts the call.
func (f *Speaker) StopCue() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
}

// WritePCM counts the samples.
func (f *Speaker) WritePCM(pcm []int16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.samples += len(pcm)
}

// Close marks the fake closed.
func (f *Speaker) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// Cues returns the cues played so far, in order.
func (f *Speaker) Cues() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cues)
}

// Stops counts StopCue calls.
func (f *Speaker) Stops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stops
}

// Samples counts the voice samples written.
func (f *Speaker) Samples() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.samples
}

// ErrSinkClosed is what Sink's Write returns once closed.
var ErrSinkClosed = errors.New("speakertest: sink closed")

// Sink hands every Write to the test through Next: a Write blocks until
// the test takes it, so the test is the speaker's clock. Delay reports
// SetDelay's value, standing for the frames a real PCM holds unplayed.
type Sink struct {
	writes chan []int16
	done   chan struct{}
	once   sync.Once

	mu    sync.Mutex
	delay int
	drops int
}

var _ speaker.Sink = (*Sink)(nil)

// NewSink returns an open Sink.
func NewSink() *Sink {
	return &Sink{writes: make(chan []int16), done: make(chan struct{})}
}

// Write blocks until Next takes a copy of frames, or the sink closes.
func (s *Sink) Write(frames []int16) (int, error) {
	select {
	case s.writes <- slices.Clone(frames):
		return len(frames), nil
	case <-s.done:
		return 0, ErrSinkClosed
	}
}

// Next returns the next Write's frames.
func (s *Sink) Next(ctx context.Context) ([]int16, error) {
	select {
	case f := <-s.writes:
		return f, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, ErrSinkClosed
	}
}

// SetDelay sets what Delay reports, in frames.
func (s *Sink) SetDelay(frames int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = frames
}

// Delay reports SetDelay's value.
func (s *Sink) Delay() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delay, nil
}

// Drop counts the call.
func (s *Sink) Drop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops++
	return nil
}

// Drops counts Drop calls (the speaker going idle).
func (s *Sink) Drops() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drops
}

// Close unblocks a pending Write.
func (s *Sink) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}
