package media

import (
	"image"
	"testing"

	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/synth"
)

// cycleFrames renders n synthetic frames once and replays them, so the
// benchmarks measure the codec, not the picture generator.
func cycleFrames(b *testing.B, p Profile, n int) video.Reader {
	b.Helper()
	cam, err := synth.NewCamera(synth.CameraOptions{Width: p.Width, Height: p.Height, FPS: p.FPS, Unpaced: true})
	if err != nil {
		b.Fatal(err)
	}
	frames := make([]image.Image, n)
	for i := range frames {
		if frames[i], _, err = cam.Read(); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	return video.ReaderFunc(func() (image.Image, func(), error) {
		img := frames[i%n]
		i++
		return img, func() {}, nil
	})
}

// BenchmarkEncodeLowData is the per-frame cost of the LowData H.264 encoder
// (openh264, 320×240, 200 kbit/s). At 15 fps, ns/op × 15 is the share of one
// core a call's video encoding takes.
func BenchmarkEncodeLowData(b *testing.B) {
	p := LowData
	sel := &encoderSet{}
	hb, err := newH264Builder(p, sel)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := hb.BuildVideoEncoder(cycleFrames(b, p, 4*p.FPS), prop.Media{Video: prop.Video{Width: p.Width, Height: p.Height}})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	var bytes int
	b.ReportAllocs()
	for b.Loop() {
		data, release, err := enc.Read()
		if err != nil {
			b.Fatal(err)
		}
		bytes += len(data)
		release()
	}
	b.ReportMetric(float64(bytes*8)/(float64(b.N)/float64(p.FPS)), "bit/s")
}

// BenchmarkDecode is the per-frame cost of decoding a LowData stream, what the
// terminal spends to show the parent.
func BenchmarkDecode(b *testing.B) {
	aus := encodeVideo(b, LowData, 4*LowData.FPS) // starts with an IDR, periodic IDRs after
	dec, err := h264dec.New()
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decode(aus[i%len(aus)]); err != nil {
			b.Fatalf("decode %d: %v", i%len(aus), err)
		}
		i++
	}
}
