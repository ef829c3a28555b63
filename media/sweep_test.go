package media

import (
	"fmt"
	"image"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/h264enc"
	"github.com/tuanju/tuanju/media/quality"
	"github.com/tuanju/tuanju/media/synth"
)

// videoRun is one encoding of the realistic scene, decoded and compared
// frame by frame with what was sent.
type videoRun struct {
	W, H, FPS   int
	BitRate     int
	KeyInterval time.Duration
	Light       synth.Light
	Seed        uint64
	Seconds     int
	// Production starts from the settings a call uses (CodecParams);
	// otherwise from openh264's defaults, as the comparisons need.
	Production bool
	Tune       func(*h264enc.Params)
	// Timeline, when set, also scores what a viewer sees at that many
	// ticks a second: at each tick the last picture decoded by then,
	// against the scene at that moment (the same scene rendered at the
	// timeline's rate). A lower frame rate loses there what it gains per
	// picture: motion shown late.
	Timeline int
}

// videoResult is what a videoRun gave.
type videoResult struct {
	Frames, Decoded, Keys int
	Bytes, Packets        int
	PSNR, MinPSNR, SSIM   float64
	EncodeCPU             time.Duration // openh264's encode time
	ShownPSNR, ShownSSIM  float64       // on the Timeline
}

// KbitPerSec is the elementary stream's rate.
func (r videoResult) KbitPerSec(seconds int) float64 {
	return float64(r.Bytes) * 8 / float64(seconds) / 1000
}

// rtpOverhead is the per-packet cost on the wire that rides on a payload:
// RTP header 12, SRTP tag 10, UDP 8, IPv4 20 (IPv6 would add 20 more).
const rtpOverhead = 12 + 10 + 8 + 20

// rtpPayloadMTU is pion's packetizer's payload per packet (1200 minus the
// RTP header), as mediadevices packetizes H.264 (FU-A fragments).
const rtpPayloadMTU = 1188

// run encodes the scene with openh264 (a call's settings or openh264's
// defaults, then Tune), decodes
// every access unit and compares each decoded picture with the frame sent.
func (v videoRun) run(tb testing.TB) videoResult {
	tb.Helper()
	scene, err := synth.NewScene(synth.SceneOptions{Width: v.W, Height: v.H, FPS: v.FPS, Seed: v.Seed, Light: v.Light})
	if err != nil {
		tb.Fatal(err)
	}
	frames := make([]*image.YCbCr, v.Seconds*v.FPS)
	for i := range frames {
		frames[i] = scene.Frame(i)
	}
	n := 0
	src := video.ReaderFunc(func() (image.Image, func(), error) {
		n++
		return frames[n-1], func() {}, nil
	})
	p := Profile{Name: "sweep", Video: true, Width: v.W, Height: v.H, FPS: v.FPS, VideoBitrate: v.BitRate, KeyFrameInterval: v.KeyInterval}
	params, _, err := CodecParams(p)
	if err != nil {
		tb.Fatal(err)
	}
	if !v.Production {
		plain, err := h264enc.NewParams()
		if err != nil {
			tb.Fatal(err)
		}
		plain.BitRate, plain.IntraPeriod = params.BitRate, params.IntraPeriod
		params = plain
	}
	if v.Tune != nil {
		v.Tune(&params)
	}
	enc, err := params.BuildVideoEncoder(src, prop.Media{Video: prop.Video{Width: v.W, Height: v.H, FrameRate: float32(v.FPS)}})
	if err != nil {
		tb.Fatal(err)
	}
	defer enc.Close()
	dec, err := h264dec.New()
	if err != nil {
		tb.Fatal(err)
	}
	defer dec.Close()
	var res videoResult
	var m quality.Meter
	decoded := make([]*image.YCbCr, len(frames))
	for i := range frames {
		t0 := time.Now()
		au, release, err := enc.Read()
		res.EncodeCPU += time.Since(t0)
		if err != nil {
			tb.Fatal(err)
		}
		res.Frames++
		if len(au) == 0 {
			release()
			continue
		}
		res.Bytes += len(au)
		res.Packets += (len(au) + rtpPayloadMTU - 1) / rtpPayloadMTU
		if hasIDR(au) {
			res.Keys++
		}
		img, err := dec.Decode(au)
		release()
		if err != nil {
			tb.Fatalf("decode frame %d: %v", i, err)
		}
		if img == nil {
			continue
		}
		res.Decoded++
		decoded[i] = img
		if err := m.Add(frames[i], img); err != nil {
			tb.Fatal(err)
		}
	}
	res.PSNR, res.MinPSNR, res.SSIM = m.PSNR(), m.MinPSNR(), m.SSIM()
	if v.Timeline > 0 {
		ticks, err := synth.NewScene(synth.SceneOptions{Width: v.W, Height: v.H, FPS: v.Timeline, Seed: v.Seed, Light: v.Light})
		if err != nil {
			tb.Fatal(err)
		}
		var shown quality.Meter
		var last *image.YCbCr
		for k := range v.Seconds * v.Timeline {
			for i := range k*v.FPS/v.Timeline + 1 { // pictures due by tick k
				if decoded[i] != nil {
					last = decoded[i]
				}
			}
			if last == nil {
				continue
			}
			// Below the stamps, which count frames, not time.
			below := image.Rect(0, synth.StampHeight, v.W, v.H)
			if err := shown.Add(ticks.Frame(k).SubImage(below).(*image.YCbCr), last.SubImage(below).(*image.YCbCr)); err != nil {
				tb.Fatal(err)
			}
		}
		res.ShownPSNR, res.ShownSSIM = shown.PSNR(), shown.SSIM()
	}
	return res
}

// TestVideoSweep (TUANJU_SWEEP=video) prints the measurements the video
// parameters of the profiles were chosen from: openh264 on the realistic
// scene at candidate sizes, frame rates, bitrates and settings, with the
// quality of the decoded pictures. Not part of the normal run: it takes
// minutes. TUANJU_SWEEP_ONLY=substring runs only matching cases.
func TestVideoSweep(t *testing.T) {
	if !strings.Contains(os.Getenv("TUANJU_SWEEP"), "video") {
		t.Skip("set TUANJU_SWEEP=video to run the profile sweep")
	}
	type c struct {
		name string
		run  videoRun
	}
	base := func(w, h, fps, kbit int) videoRun {
		return videoRun{W: w, H: h, FPS: fps, BitRate: kbit * 1000, KeyInterval: 10 * time.Second, Seconds: 60}
	}
	with := func(v videoRun, f func(*videoRun)) videoRun { f(&v); return v }
	tune := func(v videoRun, f func(*h264enc.Params)) videoRun { v.Tune = f; return v }
	var cases []c
	add := func(name string, v videoRun) { cases = append(cases, c{name, v}) }
	// Size, rate and frame rate.
	for _, kbit := range []int{60, 80, 100, 120, 200} {
		for _, fps := range []int{10, 15} {
			add(fmt.Sprintf("320x240@%d %dk", fps, kbit), base(320, 240, fps, kbit))
		}
	}
	for _, kbit := range []int{30, 40, 50} {
		add(fmt.Sprintf("160x120@10 %dk", kbit), base(160, 120, 10, kbit))
		add(fmt.Sprintf("240x180@10 %dk", kbit), base(240, 180, 10, kbit))
		add(fmt.Sprintf("320x240@7 %dk", kbit), base(320, 240, 7, kbit))
	}
	for _, kbit := range []int{250, 350, 500} {
		add(fmt.Sprintf("640x480@15 %dk", kbit), base(640, 480, 15, kbit))
		add(fmt.Sprintf("480x360@15 %dk", kbit), base(480, 360, 15, kbit))
	}
	// Key frame interval at the low rate.
	for _, sec := range []int{2, 5, 10, 30} {
		add(fmt.Sprintf("320x240@15 100k key %ds", sec), with(base(320, 240, 15, 100), func(v *videoRun) { v.KeyInterval = time.Duration(sec) * time.Second }))
	}
	// openh264's own settings at the low rate.
	b := base(320, 240, 15, 100)
	add("100k complexity low", tune(b, func(p *h264enc.Params) { p.Complexity = h264enc.ComplexityLow }))
	add("100k complexity medium", tune(b, func(p *h264enc.Params) { p.Complexity = h264enc.ComplexityMedium }))
	add("100k complexity high", tune(b, func(p *h264enc.Params) { p.Complexity = h264enc.ComplexityHigh }))
	add("100k denoise", tune(b, func(p *h264enc.Params) { p.Denoise = h264enc.SwitchOn }))
	add("100k no background detection", tune(b, func(p *h264enc.Params) { p.BackgroundDetection = h264enc.SwitchOff }))
	add("100k no adaptive quant", tune(b, func(p *h264enc.Params) { p.AdaptiveQuant = h264enc.SwitchOff }))
	add("100k max rate x1.5", tune(b, func(p *h264enc.Params) { p.MaxBitRateRatio = 1.5 }))
	add("100k max rate x2", tune(b, func(p *h264enc.Params) { p.MaxBitRateRatio = 2 }))
	add("100k idr ratio 200", tune(b, func(p *h264enc.Params) { p.IDRBitRateRatio = 200 }))
	add("100k idr ratio 800", tune(b, func(p *h264enc.Params) { p.IDRBitRateRatio = 800 }))
	add("100k max qp 40", tune(b, func(p *h264enc.Params) { p.MaxQP = 40 }))
	// Low light, the hard case.
	add("320x240@15 100k low light", with(b, func(v *videoRun) { v.Light = synth.LowLight }))
	add("320x240@15 100k low light denoise", tune(with(b, func(v *videoRun) { v.Light = synth.LowLight }), func(p *h264enc.Params) { p.Denoise = h264enc.SwitchOn }))
	add("320x240@10 100k low light", with(base(320, 240, 10, 100), func(v *videoRun) { v.Light = synth.LowLight }))

	// Second round, around the first one's findings.
	dn := func(p *h264enc.Params) { p.Denoise = h264enc.SwitchOn }
	low := func(v *videoRun) { v.Light = synth.LowLight }
	for _, fps := range []int{10, 12, 15} {
		for _, kbit := range []int{85, 100} {
			add(fmt.Sprintf("B: 320x240@%d %dk denoise", fps, kbit), tune(base(320, 240, fps, kbit), dn))
			add(fmt.Sprintf("B: 320x240@%d %dk denoise low light", fps, kbit), tune(with(base(320, 240, fps, kbit), low), dn))
		}
	}
	add("B: 320x240@15 100k denoise medium", tune(b, func(p *h264enc.Params) { dn(p); p.Complexity = h264enc.ComplexityMedium }))
	add("B: 320x240@15 100k low light no scene change", tune(with(b, low), func(p *h264enc.Params) { p.SceneChangeDetect = h264enc.SwitchOff }))
	add("B: 320x240@15 100k denoise no scene change", tune(b, func(p *h264enc.Params) { dn(p); p.SceneChangeDetect = h264enc.SwitchOff }))
	add("B: 320x240@15 100k denoise idr 600", tune(b, func(p *h264enc.Params) { dn(p); p.IDRBitRateRatio = 600 }))
	for _, kbit := range []int{35, 40, 45} {
		add(fmt.Sprintf("B: 160x120@10 %dk denoise", kbit), tune(base(160, 120, 10, kbit), dn))
		add(fmt.Sprintf("B: 160x120@8 %dk denoise", kbit), tune(base(160, 120, 8, kbit), dn))
		add(fmt.Sprintf("B: 240x180@8 %dk denoise", kbit), tune(base(240, 180, 8, kbit), dn))
		add(fmt.Sprintf("B: 160x120@10 %dk denoise low light", kbit), tune(with(base(160, 120, 10, kbit), low), dn))
	}
	for _, kbit := range []int{300, 400} {
		add(fmt.Sprintf("B: 640x480@15 %dk denoise", kbit), tune(base(640, 480, 15, kbit), dn))
		add(fmt.Sprintf("B: 640x480@15 %dk denoise low light", kbit), tune(with(base(640, 480, 15, kbit), low), dn))
	}

	// Third round: frame rate against motion, scored on a 30 Hz timeline.
	for _, fps := range []int{10, 15, 30} {
		for _, kbit := range []int{80, 90} {
			add(fmt.Sprintf("C: 320x240@%d %dk shown@30", fps, kbit), with(tune(base(320, 240, fps, kbit), func(p *h264enc.Params) {
				dn(p)
				p.Complexity = h264enc.ComplexityMedium
			}), func(v *videoRun) { v.Timeline = 30 }))
		}
	}

	// The profiles as they are, by day and at night.
	for _, p := range Ladder() {
		if !p.Video {
			continue
		}
		for _, light := range []synth.Light{synth.Daylight, synth.LowLight} {
			add(fmt.Sprintf("D: %s (%s)", p.Name, light), videoRun{W: p.Width, H: p.Height, FPS: p.FPS, BitRate: p.VideoBitrate,
				KeyInterval: p.keyFrameInterval(), Light: light, Seconds: 60, Production: true})
		}
	}

	only := os.Getenv("TUANJU_SWEEP_ONLY")
	t.Logf("%-40s %8s %8s %7s %7s %7s %6s %5s %9s %9s %9s", "case", "kbit/s", "wire", "PSNR-Y", "min", "SSIM", "frames", "keys", "enc ms/f", "shown dB", "shown SSIM")
	for _, cc := range cases {
		if only != "" && !strings.Contains(cc.name, only) {
			continue
		}
		r := cc.run.run(t)
		wire := (float64(r.Bytes) + float64(r.Packets*rtpOverhead)) * 8 / float64(cc.run.Seconds) / 1000
		t.Logf("%-40s %8.1f %8.1f %7.2f %7.2f %7.4f %6.2f %5d %9.3f %9.2f %9.4f", cc.name, r.KbitPerSec(cc.run.Seconds), wire, r.PSNR, r.MinPSNR, r.SSIM,
			float64(r.Decoded)/float64(r.Frames), r.Keys, float64(r.EncodeCPU.Microseconds())/1000/float64(r.Frames), r.ShownPSNR, r.ShownSSIM)
	}
}
