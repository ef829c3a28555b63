package media

import (
	"fmt"
	"image"
	"syscall"
	"testing"
	"time"

	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/opusenc"
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

// processCPU is the CPU time this process has used, every thread counted
// (openh264 may run its own): on a busy machine a fairer measure of a
// codec's cost than the wall-clock ns/op, which counts time waiting for a
// core.
func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEncode is the per-frame cost of each video profile's H.264
// encoder (openh264 with the profile's settings) on the realistic scene:
// core-%@fps is the share of one core a call's video encoding takes at the
// profile's frame rate (from CPU time, see processCPU).
func BenchmarkEncode(b *testing.B) {
	for _, p := range Ladder() {
		if !p.Video {
			continue
		}
		b.Run(p.Name, func(b *testing.B) {
			hb, err := newH264Builder(p, &encoderSet{})
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
			cpu0 := processCPU(b)
			for b.Loop() {
				data, release, err := enc.Read()
				if err != nil {
					b.Fatal(err)
				}
				bytes += len(data)
				release()
			}
			b.ReportMetric(float64(bytes*8)/(float64(b.N)/float64(p.FPS)), "bit/s")
			b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N)*float64(p.FPS)/1e7, "core-%@fps")
		})
	}
}

// BenchmarkOpusEncode is Opus' cost per complexity on the synthetic voice
// (16 kbit/s, 20 ms frames, 48 kHz mono in), as the share of one core it
// takes in real time: what opusenc.DefaultComplexity was chosen from.
func BenchmarkOpusEncode(b *testing.B) {
	pcm := voice(10, 1)
	for _, cx := range []int{0, 3, 5, 9, 10} {
		b.Run(fmt.Sprintf("complexity-%d", cx), func(b *testing.B) {
			p, err := opusenc.NewParams()
			if err != nil {
				b.Fatal(err)
			}
			p.BitRate, p.Complexity = 16000, cx
			enc, err := p.BuildAudioEncoder(pcmReader(pcm), prop.Media{Audio: prop.Audio{SampleRate: 48000, ChannelCount: 1}})
			if err != nil {
				b.Fatal(err)
			}
			defer enc.Close()
			cpu0 := processCPU(b)
			for b.Loop() {
				_, release, err := enc.Read()
				if err != nil {
					b.Fatal(err)
				}
				release()
			}
			perFrame := float64((processCPU(b) - cpu0).Nanoseconds()) / float64(b.N)
			b.ReportMetric(100*perFrame/float64(p.Latency.Nanoseconds()), "core-%")
		})
	}
}

// BenchmarkDecode is the per-frame cost of decoding a Low stream, what the
// terminal spends to show the parent.
func BenchmarkDecode(b *testing.B) {
	aus := encodeVideo(b, Low, 4*Low.FPS) // starts with an IDR
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
// the camera's encoder. core-%@fps is the share of one core at Low's
// 15 fps.
func BenchmarkCameraPath(b *testing.B) {
	p := Low
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
