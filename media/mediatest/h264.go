package mediatest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/tuanju/tuanju/media/h264enc"
	"github.com/tuanju/tuanju/media/internal/h264cam"
	"github.com/tuanju/tuanju/media/synth"
)

// EncodeH264 encodes frames pictures of the synthetic camera at w×h with the
// system openh264 (package h264enc, constrained baseline) and returns the
// access units in Annex B: a stream as an H.264 camera would deliver it,
// made by our own encoder at test time. Only the first unit is an IDR (with
// SPS and PPS), so the units can be replayed in a loop for a periodic one:
// openh264 numbers its parameter sets anew at every IDR it makes, so IDRs
// from one run could not share parameter sets the way a camera's do.
func EncodeH264(w, h, fps, bitrate, frames int) ([][]byte, error) {
	cam, err := synth.NewCamera(synth.CameraOptions{Width: w, Height: h, FPS: fps, Unpaced: true})
	if err != nil {
		return nil, fmt.Errorf("mediatest: camera: %w", err)
	}
	defer cam.Close()
	p, err := h264enc.NewParams()
	if err != nil {
		return nil, fmt.Errorf("mediatest: openh264: %w", err)
	}
	p.BitRate = bitrate
	p.IntraPeriod = uint(frames)
	p.FrameSkip = h264enc.SwitchOff // a camera's encoder sends every picture
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

// ReadAccessUnits reassembles the H.264 access units arriving on track (RTP
// depacketized, Annex B with 4-byte start codes) and hands each to fn until
// fn returns false or the track ends. It is the phone's side of a test call
// that wants the bytes, not only the pictures.
func ReadAccessUnits(track *webrtc.TrackRemote, fn func(au []byte) bool) error {
	sb := samplebuilder.New(256, &codecs.H264Packet{}, 90000, samplebuilder.WithMaxTimeDelay(500*time.Millisecond))
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("mediatest: read RTP: %w", err)
		}
		sb.Push(pkt)
		for s := sb.Pop(); s != nil; s = sb.Pop() {
			if !fn(s.Data) {
				return nil
			}
		}
	}
}

// IsIDR reports whether the Annex B access unit au holds an IDR picture.
func IsIDR(au []byte) bool { return h264cam.Inspect(au).IDR }

// SameNALUnits reports whether two Annex B access units hold the same NAL
// units byte for byte: RTP carries NAL units, not start codes, so a
// depacketized unit may use 4-byte start codes where the sender had 3.
func SameNALUnits(a, b []byte) bool {
	na, nb := h264cam.NALUnits(a), h264cam.NALUnits(b)
	if len(na) != len(nb) {
		return false
	}
	for i := range na {
		if !bytes.Equal(na[i], nb[i]) {
			return false
		}
	}
	return true
}

// IsTail reports whether got holds the last NAL units of want, the first of
// them possibly only its end: what a receiver that joined mid-stream builds
// when it missed the packets at the start of an access unit. Tests allow it
// for the first unit received, and only there.
func IsTail(got, want []byte) bool {
	g, w := h264cam.NALUnits(got), h264cam.NALUnits(want)
	if len(g) == 0 || len(g) > len(w) {
		return false
	}
	w = w[len(w)-len(g):]
	for i := 1; i < len(g); i++ {
		if !bytes.Equal(g[i], w[i]) {
			return false
		}
	}
	// A fragmented unit's first byte is a header the receiver rebuilt.
	return len(g[0]) > 1 && bytes.HasSuffix(w[0], g[0][1:])
}
