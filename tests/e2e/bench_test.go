package e2e

import (
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/media"
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
// until the phone has decoded the first picture of the child.
func BenchmarkAnswerToFirstFrame(b *testing.B) {
	r := newRig(b, nil)
	ph := r.phone(r.pair(), media.LowData)
	drain(ph)
	rtt := signallingRTT(b, r, ph)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := r.board.Press(r.ctx); err != nil {
			b.Fatal(err)
		}
		ring := await(b, ph, protocol.TypeRing)
		b.StartTimer()
		t0 := time.Now()
		if err := ph.Accept(r.ctx, ring.CallID); err != nil {
			b.Fatal(err)
		}
		await(b, ph, protocol.TypeOffer)
		call := ph.Current()
		if call == nil {
			b.Fatal("no call after the offer")
		}
		eventually(b, step, "first decoded frame", func() bool { return call.Stats().VideoFramesDecoded > 0 })
		total += time.Since(t0)
		b.StopTimer()
		ph.Hangup(r.ctx, ring.CallID, protocol.ReasonHangup)
		r.waitPattern(device.Ready, "ready after hang-up")
		drain(ph)
		b.StartTimer()
	}
	mean := total / time.Duration(b.N)
	b.ReportMetric(float64(mean.Microseconds())/1000, "ms/answer-to-frame")
	b.ReportMetric(float64(mean)/float64(rtt), "x-rtt")
}

// BenchmarkBytesPerMinute: what a call costs the parent's data plan, from
// the bytes the phone's transport received (SRTP, RTCP and DTLS; UDP/IP
// headers excluded) over a measured window, beside the profile's nominal
// media bitrate as the reference.
func BenchmarkBytesPerMinute(b *testing.B) {
	for _, p := range []media.Profile{media.LowData, media.AudioOnly} {
		b.Run(p.Name, func(b *testing.B) {
			const window = 10 * time.Second
			r := newRigProfile(b, nil, p)
			ph := r.phone(r.pair(), p)
			var perMin float64
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
				rx0, _ := call.WireBytes()
				t0 := time.Now()
				time.Sleep(window)
				rx1, _ := call.WireBytes()
				perMin += float64(rx1-rx0) / time.Since(t0).Minutes()
				ph.Hangup(r.ctx, callID, protocol.ReasonHangup)
				r.waitPattern(device.Ready, "ready after hang-up")
				drain(ph)
			}
			perMin /= float64(b.N)
			nominal := float64(p.AudioBitrate) / 8 * 60
			if p.Video {
				nominal += float64(p.VideoBitrate) / 8 * 60
			}
			b.ReportMetric(perMin/1e6, "MB/min")
			b.ReportMetric(perMin/nominal, "x-nominal")
		})
	}
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
