package media

import (
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// CongestionConfig bounds the send-side bandwidth estimate (Google
// Congestion Control on the peer's transport-wide feedback). Zero fields
// take the defaults.
type CongestionConfig struct {
	// Initial is the estimate before any feedback: high enough that a call
	// starts at its profile's full rate (a first estimate below it would
	// start every call on a lower step and climb for seconds); GCC comes
	// down within a second or two on a slower link.
	Initial int
	// Min and Max bound the estimate. Max matters: while a call sends less
	// than the estimate (its profile's rate is below the link's), GCC
	// raises the estimate 8% a second without bound, and an estimate far
	// above anything sent says nothing about the link.
	Min, Max int
}

// Congestion defaults, bit/s.
const (
	DefaultInitialBitrate = 1_000_000
	DefaultMinBitrate     = 20_000
	DefaultMaxBitrate     = 2_000_000
)

// The estimate is held up by what the connection has just delivered
// without loss: provenShare of the highest rate sent over provenWindow
// while the peer's feedback showed under provenLoss lost. GCC reads
// congestion from the growth of packets' delays, and cuts its estimate to
// 85% of the rate that arrived at each sign of it; on a sender whose
// CPU is busy (the board encoding, or a test machine running many calls)
// the delays jitter by tens of milliseconds with no queue anywhere, the
// sender sends less while it is busy, and the estimate spirals down to
// audio only on a link that carries everything. A link that truly
// narrows loses packets within a second or two (its buffer fills), and
// the floor then lapses, so it delays the answer to real congestion by
// at most provenWindow.
const (
	provenShare  = 0.75
	provenWindow = 3 * time.Second
	provenLoss   = 0.02
	// provenEvery is the shortest interval a sent rate is measured over.
	provenEvery = 250 * time.Millisecond
)

// rembTimeout: with no transport-wide feedback for this long and REMB
// coming, the peer's REMB is the estimate (a peer that negotiated no
// transport-cc, or stopped sending it).
const rembTimeout = 3 * time.Second

// bandwidths maps a peer connection's ID to its Bandwidth, as pion keeps
// its own per-connection stats getters: the congestion control interceptor
// is built inside NewPeerConnection, before the caller holds the connection.
var bandwidths sync.Map // string → *Bandwidth

// BandwidthOf returns pc's outgoing bandwidth estimate and send counters,
// or nil when pc was not made by NewAPI's API or is closed.
func BandwidthOf(pc *webrtc.PeerConnection) *Bandwidth {
	if pc == nil {
		return nil
	}
	if b, ok := bandwidths.Load(pc.ID()); ok {
		return b.(*Bandwidth)
	}
	return nil
}

// SendStats counts what a peer connection sent and the feedback it got,
// as seen below the NACK responder (retransmissions included).
type SendStats struct {
	// Packets and Bytes are RTP packets and their bytes (header and
	// payload) handed to the transport; Retransmissions of them were
	// resent for a NACK (a sequence number sent before).
	Packets, Bytes, Retransmissions int64
	// AudioPackets and VideoFrames count what the encoders sent (not
	// retransmissions): Opus packets, and H.264 pictures (packets with the
	// marker bit).
	AudioPackets, VideoFrames int64
	// NACKs and PLIs count the RTCP feedback packets received (PLIs
	// include FIRs); TWCC and REMB the congestion feedback.
	NACKs, PLIs, TWCC, REMB int64
}

// Bandwidth is one peer connection's send-side estimate: GCC over the
// peer's transport-wide congestion control feedback (TWCC, which
// Chromium, Safari, Firefox and pion send), or the peer's REMB where that
// is all it gives. It implements pion's cc.BandwidthEstimator around
// gcc.SendSideBWE and counts what goes out.
type Bandwidth struct {
	gcc   *gcc.SendSideBWE
	pacer *pacer
	id    string

	mu       sync.Mutex
	stats    SendStats
	lastTWCC time.Time
	lastREMB time.Time
	remb     int
	highest  map[uint32]uint16 // per SSRC, the newest sequence number sent

	// For the floor: the bytes counter at the last sample, and the
	// loss-free rates of the window.
	sampledAt    time.Time
	sampledBytes int64
	proven       []provenRate
}

type provenRate struct {
	at  time.Time
	bps int
}

var _ cc.BandwidthEstimator = (*Bandwidth)(nil)

// newCongestionInterceptor returns pion's congestion control interceptor
// whose estimators register themselves in bandwidths.
func newCongestionInterceptor(cfg CongestionConfig) (*cc.InterceptorFactory, error) {
	initial, lo, hi := cfg.Initial, cfg.Min, cfg.Max
	if initial <= 0 {
		initial = DefaultInitialBitrate
	}
	if lo <= 0 {
		lo = DefaultMinBitrate
	}
	if hi <= 0 {
		hi = DefaultMaxBitrate
	}
	hi = max(hi, lo)
	initial = min(max(initial, lo), hi)
	f, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		// Our own pacer (pacer.go): pion's leaky-bucket pacer wakes every
		// 5 ms for the whole call, and holds audio behind video.
		p := newPacer(initial)
		g, err := gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(initial),
			gcc.SendSideBWEMinBitrate(lo),
			gcc.SendSideBWEMaxBitrate(hi),
			gcc.SendSideBWEPacer(p),
		)
		if err != nil {
			p.Close()
			return nil, err
		}
		return &Bandwidth{gcc: g, pacer: p, highest: map[uint32]uint16{}}, nil
	})
	if err != nil {
		return nil, err
	}
	f.OnNewPeerConnection(func(id string, e cc.BandwidthEstimator) {
		if b, ok := e.(*Bandwidth); ok {
			b.id = id
			bandwidths.Store(id, b)
		}
	})
	return f, nil
}

// TargetBitrate is the rate the connection may send at now, in bit/s of
// RTP (headers included, not UDP/IP or SRTP's): GCC's estimate (or the
// peer's REMB), held up by what was just delivered without loss.
func (b *Bandwidth) TargetBitrate() int {
	loss, _ := b.gcc.GetStats()["averageLoss"].(float64)
	est := b.gcc.GetTargetBitrate()
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.lastREMB.IsZero() && now.Sub(b.lastREMB) < rembTimeout &&
		(b.lastTWCC.IsZero() || now.Sub(b.lastTWCC) > rembTimeout) {
		est = b.remb
	}
	return max(est, b.floor(now, loss))
}

// floor samples the rate sent since the last call and returns
// provenShare of the highest loss-free rate of the window. The caller
// holds mu.
func (b *Bandwidth) floor(now time.Time, loss float64) int {
	if b.sampledAt.IsZero() {
		b.sampledAt, b.sampledBytes = now, b.stats.Bytes
	} else if dt := now.Sub(b.sampledAt); dt >= provenEvery {
		bps := int(float64(b.stats.Bytes-b.sampledBytes) * 8 / dt.Seconds())
		b.sampledAt, b.sampledBytes = now, b.stats.Bytes
		if loss < provenLoss && !b.lastTWCC.IsZero() {
			b.proven = append(b.proven, provenRate{now, bps})
		} else {
			b.proven = b.proven[:0] // loss: what went before proves nothing now
		}
	}
	k := 0
	for k < len(b.proven) && now.Sub(b.proven[k].at) > provenWindow {
		k++
	}
	b.proven = b.proven[k:]
	hi := 0
	for _, p := range b.proven {
		hi = max(hi, p.bps)
	}
	return int(provenShare * float64(hi))
}

// Loss is the share of packets the peer's feedback reported lost,
// averaged over the last fraction of a second (GCC's loss controller's).
func (b *Bandwidth) Loss() float64 {
	l, _ := b.gcc.GetStats()["averageLoss"].(float64)
	return l
}

// Stats returns the send counters.
func (b *Bandwidth) Stats() SendStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// AddStream implements cc.BandwidthEstimator: it counts each packet as it
// leaves for the transport.
func (b *Bandwidth) AddStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	audio := strings.HasPrefix(strings.ToLower(info.MimeType), "audio/")
	counted := interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		b.mu.Lock()
		b.stats.Packets++
		b.stats.Bytes += int64(h.MarshalSize() + len(payload))
		if last, ok := b.highest[h.SSRC]; ok && int16(h.SequenceNumber-last) <= 0 {
			b.stats.Retransmissions++
		} else {
			b.highest[h.SSRC] = h.SequenceNumber
			switch {
			case audio:
				b.stats.AudioPackets++
			case h.Marker:
				b.stats.VideoFrames++
			}
		}
		b.mu.Unlock()
		return writer.Write(h, payload, a)
	})
	b.pacer.setAudio(info.SSRC, info.MimeType)
	return b.gcc.AddStream(info, counted)
}

// WriteRTCP implements cc.BandwidthEstimator: it sees every RTCP packet
// the peer sends.
func (b *Bandwidth) WriteRTCP(pkts []rtcp.Packet, a interceptor.Attributes) error {
	b.mu.Lock()
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.TransportLayerCC:
			b.stats.TWCC++
			b.lastTWCC = time.Now()
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			b.stats.REMB++
			b.lastREMB = time.Now()
			b.remb = int(p.Bitrate)
		case *rtcp.TransportLayerNack:
			b.stats.NACKs++
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			b.stats.PLIs++
		}
	}
	b.mu.Unlock()
	return b.gcc.WriteRTCP(pkts, a)
}

// GetTargetBitrate implements cc.BandwidthEstimator.
func (b *Bandwidth) GetTargetBitrate() int { return b.TargetBitrate() }

// OnTargetBitrateChange implements cc.BandwidthEstimator.
func (b *Bandwidth) OnTargetBitrateChange(f func(int)) { b.gcc.OnTargetBitrateChange(f) }

// GetStats implements cc.BandwidthEstimator.
func (b *Bandwidth) GetStats() map[string]any { return b.gcc.GetStats() }

// Close implements cc.BandwidthEstimator; pion calls it when the peer
// connection closes.
func (b *Bandwidth) Close() error {
	if b.id != "" {
		bandwidths.CompareAndDelete(b.id, b)
	}
	return b.gcc.Close()
}
