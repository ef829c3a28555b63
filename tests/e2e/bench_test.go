package e2e

import (
	"context"
	"fmt"
	"image"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/mediatest"
	"github.com/tuanju/tuanju/media/quality"
	"github.com/tuanju/tuanju/media/synth"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// signallingRTT is the reference for the latency benchmarks, measured in the
// same run: one request/response between the parent and the server over the
// same loopback WebSocket path.
func signallingRTT(b *testing.B, r *rig, ph *Phone) time.Duration {
	b.Helper()
	// Within the server's per-socket call_log burst (10): more would be
	// rate limited, which is the server doing its job.
	const n = 8
	var total time.Duration
	for range n {
		t0 := time.Now()
		if err := ph.Conn().Send(r.ctx, protocol.Message{Type: protocol.TypeCallLog}); err != nil {
			b.Fatal(err)
		}
		await(b, ph, protocol.TypeCallLog)
		total += time.Since(t0)
	}
	return total / n
}

// BenchmarkPressToRing: from the button's release (a short press is known
// only then) until the parent's phone receives the ring.
func BenchmarkPressToRing(b *testing.B) {
	r := newRig(b, nil)
	ph := r.phone(r.pair(), media.LowData)
	drain(ph)
	rtt := signallingRTT(b, r, ph)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		if err := r.board.Press(r.ctx); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		ring := await(b, ph, protocol.TypeRing)
		total += time.Since(t0)
		b.StopTimer()
		// Declining leaves the terminal showing "no answer", where the next
		// press calls again.
		ph.Hangup(r.ctx, ring.CallID, protocol.ReasonDecline)
		r.waitPattern(device.NoAnswer, "no answer after decline")
		drain(ph)
		b.StartTimer()
	}
	mean := total / time.Duration(b.N)
	b.ReportMetric(float64(mean.Microseconds())/1000, "ms/press-to-ring")
	b.ReportMetric(float64(rtt.Microseconds())/1000, "ms/signalling-rtt")
	b.ReportMetric(float64(mean)/float64(rtt), "x-rtt")
}

// BenchmarkAnswerToFirstFrame: from the parent answering the child's call
// until the phone has decoded the first picture of the child, with the
// connect sound (sound: the board's speaker plays it to its end before
// the camera opens, the never-silent rule) and without it (silent: a
// board with no speaker, where the light alone announces), at 0, 50 and
// 150 ms of round trip between the ends: the terminal's signalling through
// a proxy that holds each chunk half the round trip each way, and the
// phone's media through a mediatest.Link delaying each packet alike (the
// phone's signalling stays on loopback). x-rtt is over the phone's own
// signalling round trip to the server, on loopback, measured in the same
// run (call_log requests). The phone prepares the call as the web app does
// (docs/protocol.md, "Preparing a call") and answers once its prepared
// connection is up, as a parent taking a second or more to answer finds
// it; silent-unprepared is the same without the prepare, the offer
// following the accept, as a client that does not prepare gets: the
// reference for what preparing saves, in the same run. parent-calls/ is the
// other way: the phone rings, the child's press answers, and the time is
// from the press's release to the phone's first picture of the child; prepared, the
// phone prepares its own call once it rings.
func BenchmarkAnswerToFirstFrame(b *testing.B) {
	for _, c := range []struct {
		name                        string
		sound, prepare, parentCalls bool
	}{{"sound", true, true, false}, {"silent", false, true, false}, {"silent-unprepared", false, false, false},
		{"parent-calls/sound", true, true, true}, {"parent-calls/silent", false, true, true}, {"parent-calls/silent-unprepared", false, false, true}} {
		for _, rtt := range []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond} {
			name := fmt.Sprintf("%s/rtt-%dms", c.name, rtt.Milliseconds())
			b.Run(name, func(b *testing.B) { answerToFirstFrame(b, c.sound, c.prepare, c.parentCalls, rtt) })
		}
	}
}

func answerToFirstFrame(b *testing.B, sound, prepare, parentCalls bool, rtt time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	// A call a second or two apart: more than the server's per-socket
	// limits on rings (10 a minute, for a child who keeps pressing), offers
	// and health reports (a few a call) let through.
	srv := rendezvoustest.NewServer(b, func(c *rendezvous.Config) {
		c.Limits.Rings = rendezvous.Rate{Burst: 50, PerMinute: 600}
		c.Limits.SDP = rendezvous.Rate{Burst: 100, PerMinute: 1200}
		c.Limits.Status = rendezvous.Rate{Burst: 100, PerMinute: 1200}
	})
	o := terminalOpts{wsURL: srv.WSURL}
	var path *mediatest.Link
	if rtt > 0 {
		o.wsURL = newSlowProxy(b, srv.URL, rtt/2).wsURL()
		path = mediatest.NewLink(b, 11)
		path.SetBoth(mediatest.Impairment{Delay: rtt / 2})
	}
	if !sound {
		o.speaker = func(terminal.Speaker) terminal.Speaker { return nil }
	}
	r := startTerminal(b, ctx, srv, o)
	ph := r.phoneWith(r.pair(), media.LowData, path, func(c *PhoneConfig) { c.Prepare = prepare })
	drain(ph)
	sigRTT := signallingRTT(b, r, ph)
	var total time.Duration
	var each []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if parentCalls {
			took := parentCallToFirstFrame(b, r, ph, prepare)
			total += took
			each = append(each, took)
			continue
		}
		if err := r.board.Press(r.ctx); err != nil {
			b.Fatal(err)
		}
		ring := await(b, ph, protocol.TypeRing)
		if prepare {
			awaitPrepared(b, ph)
		}
		b.StartTimer()
		t0 := time.Now()
		if err := ph.Accept(r.ctx, ring.CallID); err != nil {
			b.Fatal(err)
		}
		took := sinceFirstPicture(b, ph, prepare, t0)
		total += took
		each = append(each, took)
		b.StopTimer()
		ph.Hangup(r.ctx, ring.CallID, protocol.ReasonHangup)
		r.waitPattern(device.Ready, "ready after hang-up")
		drain(ph)
		b.StartTimer()
	}
	mean := total / time.Duration(b.N)
	slices.Sort(each)
	b.ReportMetric(float64(mean.Microseconds())/1000, "ms/answer-to-frame")
	b.ReportMetric(float64(each[len(each)/2].Microseconds())/1000, "ms/answer-to-frame-p50")
	b.ReportMetric(float64(sigRTT.Microseconds())/1000, "ms/signalling-rtt")
	b.ReportMetric(float64(mean)/float64(sigRTT), "x-rtt")
}

// parentCallToFirstFrame is one call of the phone's to the child, answered
// by the child's press: the time from the press (its release: until then
// it may be a long one, which hangs up) to the phone's first picture of the
// child. Prepared, the phone's prepared connection is up
// before the press, as a child taking a second or more to come finds it.
// The benchmark's timer runs for that span only; the time is returned.
func parentCallToFirstFrame(b *testing.B, r *rig, ph *Phone, prepare bool) time.Duration {
	id, err := ph.Ring(r.ctx)
	if err != nil {
		b.Fatal(err)
	}
	r.waitPattern(device.Ringing, "the terminal rings")
	if prepare {
		awaitPrepared(b, ph)
	}
	// A press is a press, not the start of a long one, once the button
	// is let go: the child's answer is the release.
	if err := r.board.Press(r.ctx); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	took := sinceFirstPicture(b, ph, prepare, time.Now())
	b.StopTimer()
	ph.Hangup(r.ctx, id, protocol.ReasonHangup)
	r.waitPattern(device.Ready, "ready after hang-up")
	drain(ph)
	return took
}

// awaitPrepared waits for the terminal's offer to the phone's prepare and
// the connection it makes to be up.
func awaitPrepared(b *testing.B, ph *Phone) {
	await(b, ph, protocol.TypeOffer)
	c := ph.Current()
	if c == nil {
		b.Fatal("no call after the prepared offer")
	}
	waitClosed(b, c.Connected(), "the prepared connection")
}

// sinceFirstPicture waits for the phone's first decoded picture of the
// call just answered (after the terminal's offer, unless it was prepared)
// and returns the time since t0. Polled every millisecond: eventually's
// 20 ms would be a tenth of what is measured.
func sinceFirstPicture(b *testing.B, ph *Phone, prepared bool, t0 time.Time) time.Duration {
	if !prepared {
		await(b, ph, protocol.TypeOffer)
	}
	call := ph.Current()
	if call == nil {
		b.Fatal("no call after the offer")
	}
	for deadline := time.Now().Add(step); call.Stats().VideoFramesDecoded == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("no picture decoded %v after the answer", step)
		}
	}
	return time.Since(t0)
}

// bytesWindow is how long BenchmarkBytesPerMinute measures each call:
// two key-frame periods, so one periodic IDR always falls in it.
const bytesWindow = 20 * time.Second

// BenchmarkBytesPerMinute: what a call costs each way in each profile, on
// the wire (SRTP, RTCP and DTLS as the phone's ICE candidate pair counted
// them, plus each packet's UDP and IP headers), and the quality of the
// terminal's video as the phone decoded it: each decoded picture is read
// for its frame stamp (package synth) and compared with that very frame,
// rendered again here (PSNR-Y and SSIM, package media/quality). Beside it,
// the same-run reference: the profile's own encoders (openh264 and libopus
// with the same settings) on the same pictures and sound outside the
// pipeline, no RTP, no network: raw-MB/min is their bare output, raw-PSNR-Y
// and raw-SSIM what every frame decodes to. x-raw is the wire's cost over
// the codecs'. rx is the terminal's sending (the phone received it), tx
// the phone's; both send the same synthetic camera and microphone.
func BenchmarkBytesPerMinute(b *testing.B) {
	for _, p := range media.Ladder() {
		b.Run(p.Name, func(b *testing.B) {
			r := newRigProfile(b, nil, p)
			ph := r.phone(r.pair(), p)
			var scene *synth.Scene
			if p.Video {
				var err error
				if scene, err = synth.NewScene(synth.SceneOptions{Width: p.Width, Height: p.Height, FPS: p.CaptureFPS()}); err != nil {
					b.Fatal(err)
				}
			}
			var rxMin, txMin, fps float64
			var meter quality.Meter
			for range b.N {
				callID, err := ph.Ring(r.ctx)
				if err != nil {
					b.Fatal(err)
				}
				r.waitPattern(device.Ringing, "terminal rings")
				r.board.Press(r.ctx)
				await(b, ph, protocol.TypeOffer)
				call := ph.Current()
				<-call.Connected()
				time.Sleep(2 * time.Second) // let the encoders settle past the first key frames
				rx0, tx0 := wireBytes(b, call)
				frames0 := call.Stats().VideoFramesDecoded
				t0 := time.Now()
				unreadable := comparePictures(b, call, scene, &meter, bytesWindow)
				rx1, tx1 := wireBytes(b, call)
				elapsed := time.Since(t0)
				rxMin += float64(rx1-rx0) / elapsed.Minutes()
				txMin += float64(tx1-tx0) / elapsed.Minutes()
				fps += float64(call.Stats().VideoFramesDecoded-frames0) / elapsed.Seconds()
				if unreadable > meter.Frames()/10 {
					b.Errorf("%d decoded pictures without a readable frame stamp (%d compared)", unreadable, meter.Frames())
				}
				ph.Hangup(r.ctx, callID, protocol.ReasonHangup)
				r.waitPattern(device.Ready, "ready after hang-up")
				drain(ph)
			}
			n := float64(b.N)
			b.ReportMetric(rxMin/n/1e6, "MB/min-rx")
			b.ReportMetric(txMin/n/1e6, "MB/min-tx")
			raw := rawCodecs(b, p, bytesWindow)
			b.ReportMetric(raw.perMin/1e6, "raw-MB/min")
			b.ReportMetric(rxMin/n/raw.perMin, "x-raw")
			if !p.Video {
				return
			}
			if meter.Frames() < int(bytesWindow.Seconds())*p.FPS/4*b.N {
				b.Fatalf("compared only %d pictures in %v", meter.Frames(), bytesWindow*time.Duration(b.N))
			}
			b.ReportMetric(fps/n, "fps")
			b.ReportMetric(meter.PSNR(), "PSNR-Y")
			b.ReportMetric(meter.SSIM(), "SSIM")
			b.ReportMetric(raw.video.PSNR(), "raw-PSNR-Y")
			b.ReportMetric(raw.video.SSIM(), "raw-SSIM")
		})
	}
}

// ipUDPHeader is what IPv4 and UDP add to each packet; IPv6 adds 20 more.
func ipUDPHeader(addr string) uint64 {
	if strings.Contains(addr, ":") {
		return 40 + 8
	}
	return 20 + 8
}

// wireBytes is what the call's transport received and sent on the wire:
// the ICE candidate pairs' application bytes (SRTP, SRTCP, DTLS) and, per
// packet, the UDP and IP headers the transport stats leave out.
func wireBytes(b *testing.B, c *PhoneCall) (received, sent uint64) {
	b.Helper()
	report := c.pc.GetStats()
	for _, s := range report {
		pair, ok := s.(webrtc.ICECandidatePairStats)
		if !ok {
			continue
		}
		header := uint64(28)
		if local, ok := report[pair.LocalCandidateID].(webrtc.ICECandidateStats); ok {
			header = ipUDPHeader(local.IP)
		}
		received += pair.BytesReceived + uint64(pair.PacketsReceived)*header
		sent += pair.BytesSent + uint64(pair.PacketsSent)*header
	}
	if received == 0 {
		b.Fatal("no candidate pair counted any bytes")
	}
	return received, sent
}

// comparePictures watches the phone's decoded pictures for d and adds each
// new one to m, compared with the frame of scene its stamp names; it
// returns how many had no readable stamp. With no scene (no video) it only
// waits.
func comparePictures(b *testing.B, c *PhoneCall, scene *synth.Scene, m *quality.Meter, d time.Duration) (unreadable int) {
	b.Helper()
	end := time.Now().Add(d)
	if scene == nil {
		time.Sleep(d)
		return 0
	}
	var last image.Image
	for time.Now().Before(end) {
		img := c.Receiver.LatestFrame()
		if img == nil || img == last {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		last = img
		got, ok := img.(*image.YCbCr)
		if !ok {
			b.Fatalf("decoded picture is %T, want *image.YCbCr", img)
		}
		n, ok := synth.ReadStamp(got)
		if !ok {
			unreadable++
			continue
		}
		if err := m.Add(scene.Frame(n), got); err != nil {
			b.Fatal(err)
		}
	}
	return unreadable
}

// rawFigures are the codecs' own output outside the pipeline.
type rawFigures struct {
	perMin float64 // bytes a minute, audio and video
	video  quality.Meter
}

// rawCodecs encodes d of the synthetic camera and microphone with
// the profile's own encoder settings (media.CodecParams), unpaced, and
// decodes every picture: the reference BenchmarkBytesPerMinute puts beside
// the call.
func rawCodecs(b *testing.B, p media.Profile, d time.Duration) rawFigures {
	b.Helper()
	hp, op, err := media.CodecParams(p)
	if err != nil {
		b.Fatal(err)
	}
	var raw rawFigures
	var bytes int
	mic, err := synth.NewMicrophone(synth.MicrophoneOptions{Unpaced: true})
	if err != nil {
		b.Fatal(err)
	}
	aenc, err := op.BuildAudioEncoder(mic, prop.Media{Audio: prop.Audio{SampleRate: 48000, ChannelCount: 1}})
	if err != nil {
		b.Fatal(err)
	}
	for range int(d / p.AudioFrame) {
		pkt, release, err := aenc.Read()
		if err != nil {
			b.Fatal(err)
		}
		bytes += len(pkt)
		release()
	}
	aenc.Close()
	if p.Video {
		// The call's pictures: the synthetic camera as the call opens it
		// (Profile.CaptureFPS, painting the call's rate of it). Each one
		// decodes before the next is read, so sent is the one to compare.
		cam, err := synth.NewCamera(synth.CameraOptions{Width: p.Width, Height: p.Height, FPS: p.CaptureFPS(), SentFPS: p.FPS, Unpaced: true})
		if err != nil {
			b.Fatal(err)
		}
		defer cam.Close()
		var sent *image.YCbCr
		src := video.ReaderFunc(func() (image.Image, func(), error) {
			img, release, err := cam.Read()
			sent, _ = img.(*image.YCbCr)
			return img, release, err
		})
		venc, err := hp.BuildVideoEncoder(src, prop.Media{Video: prop.Video{Width: p.Width, Height: p.Height, FrameRate: float32(p.FPS)}})
		if err != nil {
			b.Fatal(err)
		}
		defer venc.Close()
		dec, err := h264dec.New()
		if err != nil {
			b.Fatal(err)
		}
		defer dec.Close()
		for i := range int(d.Seconds()) * p.FPS {
			au, release, err := venc.Read()
			if err != nil {
				b.Fatal(err)
			}
			bytes += len(au)
			img, err := dec.Decode(au)
			release()
			if err != nil {
				b.Fatalf("raw frame %d: %v", i, err)
			}
			if img != nil {
				if err := raw.video.Add(sent, img); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	raw.perMin = float64(bytes) / d.Minutes()
	return raw
}

// drain empties the phone's event queue.
func drain(ph *Phone) {
	for {
		select {
		case <-ph.Events():
		case <-time.After(100 * time.Millisecond):
			return
		}
	}
}
