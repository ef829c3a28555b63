package media

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/pion/mediadevices"
	"github.com/pion/mediadevices/pkg/wave"
)

// The technician's self-test checks the camera and the microphone through a
// Capture like a call's (opened by a Gate, so announced the same way), with
// these two probes instead of a peer connection.

// FirstVideoFrame encodes the camera's first frame and returns its size in
// bytes. A camera whose own H.264 is passed through has no encoder here:
// that is reported as 0 bytes with the preview as the proof of frames.
func (c *Capture) FirstVideoFrame(ctx context.Context) (int, error) {
	var track mediadevices.Track
	for _, t := range c.tracks {
		if t.Kind().String() == "video" {
			track = t
		}
	}
	if track == nil {
		if c.pass != nil {
			return 0, nil
		}
		return 0, fmt.Errorf("media: camera opened without a video track: %w", ErrNoCamera)
	}
	enc, err := track.NewEncodedReader("H264")
	if err != nil {
		return 0, fmt.Errorf("media: camera: encoder: %w", err)
	}
	defer enc.Close()
	type read struct {
		n   int
		err error
	}
	done := make(chan read, 1)
	go func() {
		buf, release, err := enc.Read()
		if err == nil {
			release()
		}
		done <- read{len(buf.Data), err}
	}()
	select {
	case got := <-done:
		if got.err != nil {
			return 0, fmt.Errorf("media: camera: read frame: %w", got.err)
		}
		return got.n, nil
	case <-ctx.Done():
		c.Close() // unblocks the read
		return 0, fmt.Errorf("media: camera: no frame: %w", ctx.Err())
	}
}

// MicrophoneLevel listens for d and returns the RMS and peak levels in dBFS
// (silence as -200).
func (c *Capture) MicrophoneLevel(ctx context.Context, d time.Duration) (rms, peak float64, err error) {
	var track *mediadevices.AudioTrack
	for _, t := range c.tracks {
		if a, ok := t.(*mediadevices.AudioTrack); ok {
			track = a
		}
	}
	if track == nil {
		return 0, 0, fmt.Errorf("media: capture has no microphone: %w", ErrNoMicrophone)
	}
	r := track.NewReader(false)
	type result struct {
		samples []int16
		err     error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		for start := time.Now(); time.Since(start) < d; {
			chunk, release, err := r.Read()
			if err != nil {
				res.err = err
				break
			}
			info := chunk.ChunkInfo()
			for i := range info.Len {
				for ch := range info.Channels {
					res.samples = append(res.samples, int16(wave.Int16SampleFormat.Convert(chunk.At(i, ch)).(wave.Int16Sample)))
				}
			}
			release()
		}
		done <- res
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		c.Close() // unblocks the read
		return 0, 0, fmt.Errorf("media: microphone: %w", ctx.Err())
	}
	if res.err != nil {
		return 0, 0, fmt.Errorf("media: microphone: read: %w", res.err)
	}
	return levels(res.samples)
}

// levels returns the RMS and peak of s in dBFS (-inf as -200).
func levels(s []int16) (rms, peak float64, err error) {
	if len(s) == 0 {
		return 0, 0, errors.New("media: microphone: no samples")
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
