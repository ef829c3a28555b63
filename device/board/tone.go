package board

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/alsa"
)

// alsaErr marks a missing sound device as absent (not broken) for the
// self-test's table.
func alsaErr(err error) error {
	if errors.Is(err, alsa.ErrNoDevice) {
		return fmt.Errorf("%w (%w)", err, device.ErrAbsent)
	}
	return err
}

// openPlayback opens name for playback, mono, or stereo where the hardware
// has only that. Playback only: the microphone opens through media.Gate,
// never here.
func openPlayback(name string) (*alsa.PCM, error) {
	pcm, err := alsa.Open(name, alsa.Playback, alsa.Config{Channels: 1})
	if errors.Is(err, alsa.ErrUnsupported) {
		pcm, err = alsa.Open(name, alsa.Playback, alsa.Config{Channels: 2})
	}
	return pcm, alsaErr(err)
}

// closeOnDone closes pcm when ctx ends, unblocking its Read or Write.
func closeOnDone(ctx context.Context, pcm *alsa.PCM) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			pcm.Close()
		case <-done:
		}
	}()
	return func() { close(done) }
}

// alsaTone plays the self-test's tone on an ALSA playback device.
type alsaTone struct{ device string }

func (a alsaTone) Tone(ctx context.Context, hz float64, d time.Duration) error {
	pcm, err := openPlayback(a.device)
	if err != nil {
		return err
	}
	defer pcm.Close()
	defer closeOnDone(ctx, pcm)()
	p := pcm.Params()
	n := int(d.Seconds() * float64(p.Rate))
	buf := make([]int16, n*p.Channels)
	for i := range n {
		// A quarter of full scale, with 10 ms fades against clicks.
		env := math.Min(1, math.Min(float64(i), float64(n-i))/(0.01*float64(p.Rate)))
		v := int16(8000 * env * math.Sin(2*math.Pi*hz*float64(i)/float64(p.Rate)))
		for c := range p.Channels {
			buf[i*p.Channels+c] = v
		}
	}
	if _, err := pcm.Write(buf); err != nil {
		return fmt.Errorf("board: speaker %s: %w", a.device, err)
	}
	if err := pcm.Drain(); err != nil {
		return fmt.Errorf("board: speaker %s: drain: %w", a.device, err)
	}
	return nil
}
