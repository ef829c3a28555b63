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

// transportCCURI is the transport-wide sequence number's header extension.
const transportCCURI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

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
	// minBitrate is the least the estimate goes to (CongestionConfig.Min).
	minBitrate int

	mu       sync.Mutex
	stats    SendStats
	lastTWCC time.Time
	lastREMB time.Time
	remb     int
	highest  map[uint32]uint16 // per SSRC, the newest sequence number sent
	// reported is, per stream we send, the share of its packets the peer's
	// last reception report said were lost (RTCP fraction lost), and when.
	reported map[uint32]reportedLoss

	path pathMonitor

	resentBytes int64 // of stats.Bytes, the retransmissions'

	// sendRate's last sample.
	rateAt                time.Time
	rateBytes, rateResent int64
	rate, mediaRate       int
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
		return &Bandwidth{gcc: g, pacer: p, highest: map[uint32]uint16{}, minBitrate: lo}, nil
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
// RTP (headers included, not UDP/IP or SRTP's): GCC's estimate, or the
// peer's REMB when that is all it sends.
//
// On a path that loses more than lossLimit of the packets it is at most
// what arrives: the send rate less what was lost. pion's loss controller
// never goes below 100 kbit/s (gcc's lossBasedBandwidthEstimator
// .minBitrate), so a link narrower than that which drops rather than
// delays (its queue already full when the delay detector took its first
// samples, as on a loaded machine) kept the estimate at 100 kbit/s with
// half the packets lost, and the ABR at a profile the link could not
// carry: 131 kbit/s sent into 64, nothing decoded
// (TestImpairedCall/cap-64k beside two busy loops, 4 runs in 8).
//
// Lost means lost in both the transport-wide feedback (the path monitor)
// and the peer's receiver reports. Chromium's feedback reports a packet
// that comes late as lost, so under ±50 ms of jitter the feedback alone
// read a quarter lost where nothing was, and the cap took the call down
// to 47 kbit/s on a link that carried everything
// (TestBrowserImpairedCall's delay-150ms-jitter-50ms); a receiver report
// counts a packet lost only if it never came.
//
// On a path whose buffer holds a queue (the path monitor's queue delay
// over queueDelayLimit) it is at most queueDrain of what the link
// delivers, so the queue drains. GCC answers a queue the same way, but
// only once its delay filter sees the queue grow; on a loaded machine it
// saw it late and slowly: with a start estimate of 1 Mbit/s on a 128 kbit/s
// link, the estimate was still 900 kbit/s after 5 s with 170 ms queued and
// a quarter of the packets dropped, and the retransmissions, budgeted as a
// share of it, filled the link (148 kbit/s sent for a 6.5 s freeze:
// TestImpairedCall/cap-128k in a loaded CI run).
func (b *Bandwidth) TargetBitrate() int {
	est := b.gcc.GetTargetBitrate()
	now := time.Now()
	st := b.path.state(now)
	if st.QueueDelay > queueDelayLimit && st.Delivered > 0 {
		est = min(est, max(int(queueDrain*float64(st.Delivered)), b.minBitrate))
	}
	if st.Loss > lossLimit {
		b.mu.Lock()
		reported := 0.0 // the most any stream lost; no recent report: nothing confirms it
		for _, r := range b.reported {
			if now.Sub(r.at) <= rembTimeout {
				reported = max(reported, r.loss)
			}
		}
		b.mu.Unlock()
		if reported > lossLimit {
			if arrived := int(float64(b.sendRate()) * (1 - reported)); arrived > 0 {
				est = min(est, arrived)
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.lastREMB.IsZero() && now.Sub(b.lastREMB) < rembTimeout &&
		(b.lastTWCC.IsZero() || now.Sub(b.lastTWCC) > rembTimeout) {
		est = b.remb
	}
	return est
}

// Congested reports whether the path shows congestion itself (a full
// buffer's delay, heavy loss: pathmonitor.go), which a falling estimate
// alone does not prove. Without transport-wide feedback it trusts the
// estimate: true.
func (b *Bandwidth) Congested() bool {
	b.mu.Lock()
	twcc := !b.lastTWCC.IsZero() && time.Since(b.lastTWCC) < rembTimeout
	b.mu.Unlock()
	if !twcc {
		return true
	}
	return b.path.state(time.Now()).Congested()
}

// Path returns the path monitor's reading of the last second.
func (b *Bandwidth) Path() (queueDelay time.Duration, loss float64) {
	st := b.path.state(time.Now())
	return st.QueueDelay, st.Loss
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
	var twccID uint8
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == transportCCURI {
			twccID = uint8(e.ID)
		}
	}
	counted := interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		size := h.MarshalSize() + len(payload)
		if seq, ok := sentSeq(h, twccID); ok {
			b.path.onSent(seq, time.Now(), size)
		}
		b.mu.Lock()
		b.stats.Packets++
		b.stats.Bytes += int64(size)
		if last, ok := b.highest[h.SSRC]; ok && int16(h.SequenceNumber-last) <= 0 {
			b.stats.Retransmissions++
			b.resentBytes += int64(size)
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
			b.path.onFeedback(p, b.lastTWCC)
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			b.stats.REMB++
			b.lastREMB = time.Now()
			b.remb = int(p.Bitrate)
		case *rtcp.ReceiverReport:
			b.noteReports(p.Reports)
		case *rtcp.SenderReport:
			b.noteReports(p.Reports)
		case *rtcp.TransportLayerNack:
			b.stats.NACKs++
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			b.stats.PLIs++
		}
	}
	b.mu.Unlock()
	return b.gcc.WriteRTCP(pkts, a)
}

type reportedLoss struct {
	loss float64
	at   time.Time
}

// noteReports keeps what the peer's reception reports say each stream
// lost; b.mu is held.
func (b *Bandwidth) noteReports(rs []rtcp.ReceptionReport) {
	if len(rs) > 0 && b.reported == nil {
		b.reported = map[uint32]reportedLoss{}
	}
	now := time.Now()
	for _, r := range rs {
		if _, ours := b.highest[r.SSRC]; ours || len(b.reported) < 16 {
			b.reported[r.SSRC] = reportedLoss{float64(r.FractionLost) / 256, now}
		}
	}
}

// GetTargetBitrate implements cc.BandwidthEstimator. Its one reader is
// pion's NACK responder, which lets retransmissions take up to this many
// bit/s: so it is the retransmission budget, a share of the estimate
// (retransmitShare, retransmitCongested on a congested path), not the
// estimate itself. With the whole estimate a link just under what the
// call sends went into a retransmission storm: every loss resent, the
// resends lost in turn, the media starved (0 pictures decoded at 128
// kbit/s, 231 kbit/s sent into it).
func (b *Bandwidth) GetTargetBitrate() int {
	if b.Congested() {
		return int(retransmitCongested * float64(b.TargetBitrate()))
	}
	// On a clean path the media's own rate counts too: the ABR holds it
	// there when GCC's estimate falls on loss alone (abr.go). Not the
	// retransmissions': with them the budget grew with its own spending.
	_, media := b.sendRates()
	return int(retransmitShare * float64(max(b.TargetBitrate(), media)))
}

// sendRate is what the connection sent, bit/s, over the last half second
// or so.
func (b *Bandwidth) sendRate() int {
	all, _ := b.sendRates()
	return all
}

// sendRates is what the connection sent, bit/s, over the last half second
// or so: all of it, and the media's first sending alone (no
// retransmissions).
func (b *Bandwidth) sendRates() (all, media int) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rateAt.IsZero() {
		b.rateAt, b.rateBytes, b.rateResent = now, b.stats.Bytes, b.resentBytes
	} else if dt := now.Sub(b.rateAt); dt >= 500*time.Millisecond {
		sent, resent := b.stats.Bytes-b.rateBytes, b.resentBytes-b.rateResent
		b.rate = int(float64(sent) * 8 / dt.Seconds())
		b.mediaRate = int(float64(sent-resent) * 8 / dt.Seconds())
		b.rateAt, b.rateBytes, b.rateResent = now, b.stats.Bytes, b.resentBytes
	}
	return b.rate, b.mediaRate
}

// queueDrain is the share of what a queued link delivers that the
// estimate allows: GCC's own cut on overuse (its AIMD's beta).
const queueDrain = 0.85

// Retransmission budgets, as shares of the estimate: room for 20–30%
// random loss on a clean path, little where resends only fill a full
// buffer.
const (
	retransmitShare     = 0.3
	retransmitCongested = 0.1
)

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
