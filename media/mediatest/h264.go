package mediatest

import (
	"fmt"

	"github.com/pion/mediadevices/pkg/codec/openh264"
	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/media/synth"
)

// EncodeH264 encodes frames pictures of the synthetic camera at w×h with the
// openh264 bundled in mediadevices (constrained baseline, an IDR with SPS and
// PPS every fps frames) and returns the access units in Annex B: a stream as
// an H.264 camera would deliver it, made by our own encoder at test time.
func EncodeH264(w, h, fps, bitrate, frames int) ([][]byte, error) {
	cam, err := synth.NewCamera(synth.CameraOptions{Width: w, Height: h, FPS: fps, Unpaced: true})
	if err != nil {
		return nil, fmt.Errorf("mediatest: camera: %w", err)
	}
	defer cam.Close()
	p, err := openh264.NewParams()
	if err != nil {
		return nil, fmt.Errorf("mediatest: openh264: %w", err)
	}
	p.BitRate = bitrate
	p.IntraPeriod = uint(fps)
	enc, err := p.BuildVideoEncoder(cam, prop.Media{Video: prop.Video{Width: w, Height: h, FrameRate: float32(fps)}})
	if err != nil {
		return nil, fmt.Errorf("mediatest: build encoder: %w", err)
	}
	defer enc.Close()
	out := make([][]byte, 0, frames)
	for range frames {
		au, release, err := enc.Read()
		if err != nil {
			return nil, fmt.Errorf("mediatest: encode: %w", err)
		}
		out = append(out, append([]byte(nil), au...))
		release()
	}
	return out, nil
}
