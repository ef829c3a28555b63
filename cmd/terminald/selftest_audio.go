package main

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

// openAudio opens name mono, or stereo where the hardware has only that.
func openAudio(name string, s alsa.Stream) (*alsa.PCM, error) {
	pcm, err := alsa.Open(name, s, alsa.Config{Channels: 1})
	if errors.Is(err, alsa.ErrUnsupported) {
		pcm, err = alsa.Open(name, s, alsa.Config{Channels: 2})
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

// alsaSpeaker plays the self-test's tone on an ALSA playback device.
type alsaSpeaker struct{ device string }

func (a alsaSpeaker) Tone(ctx context.Context, hz float64, d time.Duration) error {
	pcm, err := openAudio(a.device, alsa.Playback)
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
		return fmt.Errorf("speaker %s: %w", a.device, err)
	}
	if err := pcm.Drain(); err != nil {
		return fmt.Errorf("speaker %s: drain: %w", a.device, err)
	}
	return nil
}

// alsaMicrophone measures the level on an ALSA capture device.
type alsaMicrophone struct{ device string }

func (a alsaMicrophone) Level(ctx context.Context, d time.Duration) (rms, peak float64, err error) {
	pcm, err := openAudio(a.device, alsa.Capture)
	if err != nil {
		return 0, 0, err
	}
	defer pcm.Close()
	defer closeOnDone(ctx, pcm)()
	p := pcm.Params()
	buf := make([]int16, int(d.Seconds()*float64(p.Rate))*p.Channels)
	if _, err := pcm.Read(buf); err != nil {
		return 0, 0, fmt.Errorf("microphone %s: %w", a.device, err)
	}
	return levels(buf)
}

// levels returns the RMS and peak of s in dBFS (-inf as -200).
func levels(s []int16) (rms, peak float64, err error) {
	if len(s) == 0 {
		return 0, 0, errors.New("no samples")
	}
	var sum float64
	var pk float64
	for _, v := range s {
		f := float64(v) / 32768
		sum += f * f
		pk = math.Max(pk, math.Abs(f))
	}
	db := func(x float64) float64 {
		if x <= 0 {
			return -200
		}
		return 20 * math.Log10(x)
	}
	return db(math.Sqrt(sum / float64(len(s)))), db(pk), nil
}
