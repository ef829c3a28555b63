package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/media/mediatest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// BenchmarkLinkDown: in a call, the terminal's whole link (signalling
// through a proxy and media through a mediatest.Link) goes dead for 5, 15
// and 30 s, black-holed as a pulled cable or a lost 4G cell leaves it
// (nothing is closed), then comes back. s/first-picture-back is from the
// link's return until both ends have decoded a new picture,
// s/media-back until both have decoded 15 (a second of video);
// calls-kept is the share of calls still up, on both ends, 5 s after
// the return. 30 s is past pion's ICE failure (5 s disconnected + 25 s):
// the terminal must resume the call and restart ICE
// (TestCallSurvivesLongLinkLoss tests that in make test).
func BenchmarkLinkDown(b *testing.B) {
	for _, outage := range []time.Duration{5 * time.Second, 15 * time.Second, 30 * time.Second} {
		b.Run(fmt.Sprintf("%ds", int(outage.Seconds())), func(b *testing.B) {
			const grace = 45 * time.Second
			path := mediatest.NewLink(b, 7)
			r := newResumeRigWith(b, resumeOpts{
				configure: func(c *rendezvous.Config) { c.ResumeGrace = grace },
				grace:     grace,
				path:      path,
			})
			var first, back time.Duration
			kept := 0
			b.StopTimer()
			for range b.N {
				id := r.call(b)
				r.px.blackhole()
				path.SetBoth(mediatest.Impairment{Down: true})
				time.Sleep(outage) // the outage itself; not an assertion
				p, tm := r.decoded()
				path.SetBoth(mediatest.Impairment{})
				r.px.restore()
				t0 := time.Now()
				var t1 time.Duration
				eventually(b, mediaWait, "both ends decode new pictures after the link came back", func() bool {
					p2, tm2 := r.decoded()
					if t1 == 0 && p2 > p && tm2 > tm {
						t1 = time.Since(t0)
					}
					return p2 > p+15 && tm2 > tm+15
				})
				first += t1
				back += time.Since(t0)
				time.Sleep(5 * time.Second)
				if s := r.term.Status(); s.State == "in_call" {
					if c := r.ph.Current(); c != nil && c.ID == id {
						kept++
					}
				}
				if err := r.board.LongPress(r.ctx); err != nil {
					b.Fatal(err)
				}
				await(b, r.ph, protocol.TypeHangup)
				r.waitPattern(device.Ready, "terminal ready after hanging up")
				drain(r.ph)
			}
			n := float64(b.N)
			b.ReportMetric(0, "ns/op") // the timer does not run: each figure is timed on its own
			b.ReportMetric(first.Seconds()/n, "s/first-picture-back")
			b.ReportMetric(back.Seconds()/n, "s/media-back")
			b.ReportMetric(float64(kept)/n, "calls-kept")
		})
	}
}
