package media

import (
	"image"
	"testing"

	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

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

// BenchmarkCameraPath compares, on the same synthetic frames in the same
// run, what a call's video costs the board per frame on the two camera
// paths, from the camera's buffer to RTP packets: "software" encodes each
// picture with openh264 (the raw/MJPEG camera path, before the YUYV→I420 or
// JPEG decode it also needs), "passthrough" only inspects the camera's own
// access unit (its SPS/PPS cache) and packetizes it (passthrough.go). The
// passthrough's units are openh264's of the same frames, standing in for
// the camera's encoder. core-%@fps is the share of one core at LowData's
// 15 fps.
func BenchmarkCameraPath(b *testing.B) {
	p := LowData
	frames := 4 * p.FPS
	packetizer := func() rtp.Packetizer {
		return rtp.NewPacketizer(1200, 125, 1, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	}
	report := func(b *testing.B, bytes int) {
		perFrame := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(perFrame*float64(p.FPS)/1e7, "core-%@fps")
		b.ReportMetric(float64(bytes)/float64(b.N), "B/frame")
	}
	b.Run("software", func(b *testing.B) {
		hb, err := newH264Builder(p, &encoderSet{})
		if err != nil {
			b.Fatal(err)
		}
		enc, err := hb.BuildVideoEncoder(cycleFrames(b, p, frames), prop.Media{Video: prop.Video{Width: p.Width, Height: p.Height}})
		if err != nil {
			b.Fatal(err)
		}
		defer enc.Close()
		pk := packetizer()
		bytes := 0
		b.ReportAllocs()
		for b.Loop() {
			au, release, err := enc.Read()
			if err != nil {
				b.Fatal(err)
			}
			for _, pkt := range pk.Packetize(au, 90000/uint32(p.FPS)) {
				bytes += len(pkt.Payload)
			}
			release()
		}
		report(b, bytes)
	})
	b.Run("passthrough", func(b *testing.B) {
		aus := encodeVideo(b, p, frames)
		pt := &passthrough{}
		pk := packetizer()
		bytes, i := 0, 0
		b.ReportAllocs()
		for b.Loop() {
			// The copy out of the mmap'd V4L2 buffer (h264cam) is counted too.
			au, _ := pt.withParameterSets(append([]byte(nil), aus[i%len(aus)]...))
			i++
			for _, pkt := range pk.Packetize(au, 90000/uint32(p.FPS)) {
				bytes += len(pkt.Payload)
			}
		}
		report(b, bytes)
	})
}
