package media

import (
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtcp"
)

// feedback builds a TWCC feedback for packets from base on, each either
// lost (a negative arrival) or arriving at the given offset from the
// reference time, in one two-bit status vector chunk per 7 packets.
func feedback(base uint16, arrivals []time.Duration) *rtcp.TransportLayerCC {
	fb := &rtcp.TransportLayerCC{BaseSequenceNumber: base, PacketStatusCount: uint16(len(arrivals))}
	var last time.Duration
	for i := 0; i < len(arrivals); i += 7 {
		c := &rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit}
		for _, a := range arrivals[i:min(i+7, len(arrivals))] {
			if a < 0 {
				c.SymbolList = append(c.SymbolList, rtcp.TypeTCCPacketNotReceived)
				continue
			}
			c.SymbolList = append(c.SymbolList, rtcp.TypeTCCPacketReceivedLargeDelta)
			fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: (a - last).Microseconds()})
			last = a
		}
		fb.PacketChunks = append(fb.PacketChunks, c)
	}
	return fb
}

func TestPathMonitor(t *testing.T) {
	const gap = 20 * time.Millisecond
	for _, tc := range []struct {
		name      string
		delay     func(i int) time.Duration // extra delay of packet i; negative: lost
		wantQueue time.Duration             // at least
		maxQueue  time.Duration
		wantLoss  float64
		congested bool
		delivered int // bit/s, within 10%
	}{
		// 500-byte packets every 20 ms: 200 kbit/s.
		{"steady", func(int) time.Duration { return 0 }, 0, 5 * time.Millisecond, 0, false, 200_000},
		{"jitter, no queue", func(i int) time.Duration { return time.Duration(i%5) * 10 * time.Millisecond }, 10 * time.Millisecond, 50 * time.Millisecond, 0, false, 200_000},
		{"10% random loss", func(i int) time.Duration {
			if i%10 == 3 {
				return -1
			}
			return 0
		}, 0, 5 * time.Millisecond, 0.1, false, 180_000},
		// A link at 5/6 of what is sent: each packet leaves it 24 ms
		// after the one before.
		{"a filling buffer", func(i int) time.Duration { return time.Duration(max(0, i-200)) * 4 * time.Millisecond }, 150 * time.Millisecond, time.Second, 0, true, 166_667},
		{"heavy loss", func(i int) time.Duration {
			if i%3 == 0 && i > 200 {
				return -1
			}
			return 0
		}, 0, 5 * time.Millisecond, 0.33, true, 133_333},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m pathMonitor
			start := time.Now()
			// 300 packets 20 ms apart, feedback every 5 packets; the
			// remote clock starts at an arbitrary offset.
			const n, per = 300, 5
			var now time.Time
			for b := 0; b < n; b += per {
				var arrivals []time.Duration
				for i := b; i < b+per; i++ {
					m.onSent(uint16(65000+i), start.Add(time.Duration(i)*gap), 500)
					d := tc.delay(i)
					if d < 0 {
						arrivals = append(arrivals, -1)
						continue
					}
					arrivals = append(arrivals, time.Duration(i-b)*gap+d)
				}
				fb := feedback(uint16(65000+b), arrivals)
				fb.ReferenceTime = uint32((time.Duration(b)*gap + 7*time.Hour) / (64 * time.Millisecond))
				// The reference time is in 64 ms units: what it cuts off
				// is the same for every packet of the feedback... but not
				// between feedbacks, so add it back into the first delta.
				if len(fb.RecvDeltas) > 0 {
					ref := time.Duration(fb.ReferenceTime) * 64 * time.Millisecond
					fb.RecvDeltas[0].Delta += (time.Duration(b)*gap + 7*time.Hour - ref).Microseconds()
				}
				now = start.Add(time.Duration(b+per) * gap)
				m.onFeedback(fb, now)
			}
			st := m.state(now)
			t.Logf("%+v", st)
			if st.QueueDelay < tc.wantQueue || st.QueueDelay > tc.maxQueue {
				t.Errorf("queue delay %v, want %v..%v", st.QueueDelay, tc.wantQueue, tc.maxQueue)
			}
			if d := st.Loss - tc.wantLoss; d > 0.03 || d < -0.03 {
				t.Errorf("loss %.2f, want %.2f", st.Loss, tc.wantLoss)
			}
			if st.Congested() != tc.congested {
				t.Errorf("congested %v, want %v", st.Congested(), tc.congested)
			}
			if d := st.Delivered - tc.delivered; d*10 > tc.delivered || -d*10 > tc.delivered {
				t.Errorf("delivered %d bit/s, want %d", st.Delivered, tc.delivered)
			}
		})
	}
}

// TestTargetFollowsArrivalsOnHeavyLoss: with more than lossLimit of the
// packets lost, in the transport-wide feedback and in the peer's
// reception reports alike, the target is at most what arrives (the send
// rate less the reported loss), below pion's loss controller's 100 kbit/s
// floor. Random loss under it, or feedback that calls late packets lost
// while the reports say they came (jitter, as Chromium reports it),
// leaves GCC's estimate alone.
func TestTargetFollowsArrivalsOnHeavyLoss(t *testing.T) {
	const sending = 130_000
	for _, tc := range []struct {
		name     string
		lostEach int     // every lostEach-th packet lost in the feedback; 0: none
		reported float64 // the reports' fraction lost
		want     int     // at most
		gcc      bool
	}{
		{"clean", 0, 0, 0, true},
		{"10% random loss", 10, 0.1, 0, true},
		{"20% random loss", 5, 0.2, 0, true},
		{"half lost", 2, 0.5, sending / 2, false},
		{"a third lost", 3, 1.0 / 3, sending * 2 / 3, false},
		{"late, not lost", 3, 0, 0, true},
		{"half lost, reports stale", 2, -1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBandwidth(t, DefaultInitialBitrate)
			g := b.gcc
			now := time.Now()
			for i := range 100 { // the last second's feedback: 100 packets
				b.path.samples = append(b.path.samples, pathSample{at: now.Add(-time.Duration(i) * 9 * time.Millisecond),
					lost: tc.lostEach > 0 && i%tc.lostEach == 0})
			}
			b.rate, b.rateAt = sending, now // what sendRate measured last
			b.highest[1234] = 0             // a stream we send
			switch {
			case tc.reported >= 0:
				b.noteReports([]rtcp.ReceptionReport{{SSRC: 1234, FractionLost: uint8(tc.reported * 256)}})
			default:
				b.reported = map[uint32]reportedLoss{1234: {0.5, now.Add(-time.Minute)}}
			}
			got, est := b.TargetBitrate(), g.GetTargetBitrate()
			t.Logf("target %d bit/s (GCC's %d)", got, est)
			switch {
			case tc.gcc && got != est:
				t.Errorf("target %d, want GCC's estimate %d", got, est)
			case !tc.gcc && (got > tc.want*101/100 || got < tc.want*9/10): // the reports count in 256ths
				t.Errorf("target %d, want what arrives: %d", got, tc.want)
			}
		})
	}
}

// TestTargetDrainsAQueue: on a path whose buffer holds a queue, the target
// is at most queueDrain of what the link delivers, whatever GCC's estimate
// (1 Mbit/s here, its start); without a queue, or with too few packets to
// measure, it is GCC's.
func TestTargetDrainsAQueue(t *testing.T) {
	const delivered = 800_000 // 1,000-byte packets arriving 10 ms apart
	for _, tc := range []struct {
		name    string
		queue   time.Duration
		packets int
		want    int // 0: GCC's estimate
	}{
		{"no queue", 0, 100, 0},
		{"jitter's delay", 60 * time.Millisecond, 100, 0},
		{"a full buffer", 170 * time.Millisecond, 100, int(queueDrain * delivered)},
		{"a full buffer, too few packets to measure", 170 * time.Millisecond, minDelivered - 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBandwidth(t, DefaultInitialBitrate)
			g := b.gcc
			now := time.Now()
			// The base: a packet 5 s ago with no queue.
			b.path.samples = append(b.path.samples, pathSample{at: now.Add(-5 * time.Second), size: 1000})
			for i := range tc.packets {
				b.path.samples = append(b.path.samples, pathSample{at: now.Add(-time.Duration(tc.packets-i) * 9 * time.Millisecond),
					owd: tc.queue, arrival: time.Hour + time.Duration(i)*10*time.Millisecond, size: 1000})
			}
			got, est := b.TargetBitrate(), g.GetTargetBitrate()
			t.Logf("target %d bit/s (GCC's %d), path %+v", got, est, b.path.state(now))
			switch {
			case tc.want == 0 && got != est:
				t.Errorf("target %d, want GCC's estimate %d", got, est)
			case tc.want != 0 && (got > tc.want*101/100 || got < tc.want*99/100):
				t.Errorf("target %d, want %d", got, tc.want)
			}
		})
	}
}

// TestRetransmitBudgetLeavesOutResends: on a clean path the retransmission
// budget is a share of the media's own rate where that is above the
// estimate, not of everything sent: counted with the resends, the budget
// grew with its own spending.
func TestRetransmitBudgetLeavesOutResends(t *testing.T) {
	const initial = 100_000
	b := testBandwidth(t, initial)
	now := time.Now()
	b.lastTWCC = now // feedback comes, and shows no congestion
	// The last second: 50 KB of media, and as much again resent.
	b.rateAt = now.Add(-time.Second)
	b.stats.Bytes, b.resentBytes = 100_000, 50_000
	all, media := b.sendRates()
	if all < 790_000 || all > 810_000 || media < 395_000 || media > 405_000 {
		t.Fatalf("send rates %d, %d bit/s; want 800,000 in all and 400,000 of media", all, media)
	}
	got := b.GetTargetBitrate()
	if want := int(retransmitShare * float64(media)); got != want {
		t.Errorf("retransmission budget %d bit/s, want %.0f%% of the media's %d: %d", got, 100*retransmitShare, media, want)
	}
}

// testBandwidth is a Bandwidth on pion's GCC starting at initial, with no
// peer connection: its path monitor and counters are the test's to fill.
func testBandwidth(t *testing.T, initial int) *Bandwidth {
	t.Helper()
	p := newPacer(initial)
	t.Cleanup(func() { p.Close() })
	g, err := gcc.NewSendSideBWE(gcc.SendSideBWEInitialBitrate(initial), gcc.SendSideBWEMinBitrate(DefaultMinBitrate), gcc.SendSideBWEPacer(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return &Bandwidth{gcc: g, pacer: p, highest: map[uint32]uint16{}, minBitrate: DefaultMinBitrate}
}
