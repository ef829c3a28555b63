package media

import (
	"slices"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// Congestion as the path monitor sees it: the packets of the last
// monitorWindow met queueDelayLimit more delay (median) than the least of
// the last monitorBase, or lost more than lossLimit of themselves.
//
// GCC (congestion.go) reads congestion from the gradient of packets'
// delays and answers each sign of it by cutting its estimate to 85% of
// what arrived; on a busy CPU (a board encoding video, a test machine
// running many calls) the delays jitter by tens of milliseconds with no
// queue anywhere and its estimate falls step by step to audio only on a
// link that carries everything. A link that is really too narrow fills
// its buffer: the delay grows by the buffer's depth, 100 ms and more, and
// packets are dropped. So the ABR steps down only when this monitor
// agrees (abr.go). Loss alone counts only above a quarter of the packets
// (a policer far exceeded): random loss, 20% and under, is the radio's,
// and sending less does not cure it; NACK repairs what it can.
const (
	monitorWindow   = time.Second
	monitorBase     = 10 * time.Second
	queueDelayLimit = 100 * time.Millisecond
	lossLimit       = 0.25
)

// The delivered rate is measured over at least minDelivered packets that
// arrived over at least minDeliveredSpan.
const (
	minDelivered     = 8
	minDeliveredSpan = 250 * time.Millisecond
)

// pathMonitor keeps the send time of every packet by its transport-wide
// sequence number and reads the peer's TWCC feedback against it.
type pathMonitor struct {
	mu   sync.Mutex
	sent [4096]sentPacket

	samples []pathSample // the feedback of monitorBase
}

type sentPacket struct {
	seq  uint16
	at   time.Time
	size int // bytes of RTP (header and payload)
}

// pathSample is what one feedback told: per packet, delivered or lost,
// and a delivered packet's one-way delay (remote clock − local clock: a
// constant offset plus the path's delay), its arrival on the remote clock
// and its size.
type pathSample struct {
	at      time.Time
	lost    bool
	owd     time.Duration
	arrival time.Duration
	size    int
}

// onSent records a packet of size bytes leaving with transport-wide
// sequence number seq.
func (m *pathMonitor) onSent(seq uint16, at time.Time, size int) {
	m.mu.Lock()
	m.sent[seq%uint16(len(m.sent))] = sentPacket{seq: seq, at: at, size: size}
	m.mu.Unlock()
}

// sentSeq is the transport-wide sequence number in h, if it carries one.
func sentSeq(h *rtp.Header, extID uint8) (uint16, bool) {
	if extID == 0 {
		return 0, false
	}
	b := h.GetExtension(extID)
	if b == nil {
		return 0, false
	}
	var ext rtp.TransportCCExtension
	if ext.Unmarshal(b) != nil {
		return 0, false
	}
	return ext.TransportSequence, true
}

// onFeedback reads one TWCC feedback packet that arrived at now.
func (m *pathMonitor) onFeedback(fb *rtcp.TransportLayerCC, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	arrival := time.Duration(fb.ReferenceTime) * 64 * time.Millisecond
	seq, left, delta := fb.BaseSequenceNumber, int(fb.PacketStatusCount), 0
	status := func(s uint16) {
		if left == 0 {
			return
		}
		left--
		p := m.sent[seq%uint16(len(m.sent))]
		known := p.seq == seq && !p.at.IsZero()
		if s == rtcp.TypeTCCPacketNotReceived {
			if known {
				m.samples = append(m.samples, pathSample{at: now, lost: true})
			}
		} else if delta < len(fb.RecvDeltas) {
			arrival += time.Duration(fb.RecvDeltas[delta].Delta) * time.Microsecond
			delta++
			if known {
				m.samples = append(m.samples, pathSample{at: now, owd: arrival - time.Duration(p.at.UnixNano()), arrival: arrival, size: p.size})
			}
		}
		seq++
	}
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for range c.RunLength {
				status(c.PacketStatusSymbol)
			}
		case *rtcp.StatusVectorChunk:
			for _, s := range c.SymbolList {
				status(s)
			}
		}
	}
	k := 0
	for k < len(m.samples) && now.Sub(m.samples[k].at) > monitorBase {
		k++
	}
	m.samples = m.samples[k:]
}

// pathState is the monitor's reading of the last monitorWindow.
type pathState struct {
	QueueDelay time.Duration // median delay above the least of monitorBase
	Loss       float64
	Packets    int // reported on in the window
	// Delivered is the rate the delivered packets of the window arrived
	// at, bit/s of RTP on the remote clock; 0 when too few came to say.
	// While the path's buffer holds a queue the link is never idle, so
	// this is what the link carries.
	Delivered int
}

// Congested reports whether the path shows a full buffer or heavy loss.
func (s pathState) Congested() bool {
	return s.Packets > 0 && (s.QueueDelay > queueDelayLimit || s.Loss > lossLimit)
}

func (m *pathMonitor) state(now time.Time) pathState {
	m.mu.Lock()
	defer m.mu.Unlock()
	var st pathState
	var base time.Duration
	haveBase := false
	var recent []time.Duration
	lost := 0
	var first, last time.Duration // the window's delivered arrivals
	var firstSize, bytes, delivered int
	for _, s := range m.samples {
		if now.Sub(s.at) > monitorBase {
			continue
		}
		if !s.lost && (!haveBase || s.owd < base) {
			base, haveBase = s.owd, true
		}
		if now.Sub(s.at) <= monitorWindow {
			st.Packets++
			if s.lost {
				lost++
			} else {
				recent = append(recent, s.owd)
				if delivered == 0 || s.arrival < first {
					first, firstSize = s.arrival, s.size
				}
				if delivered == 0 || s.arrival > last {
					last = s.arrival
				}
				bytes += s.size
				delivered++
			}
		}
	}
	if st.Packets > 0 {
		st.Loss = float64(lost) / float64(st.Packets)
	}
	if len(recent) > 0 && haveBase {
		slices.Sort(recent)
		st.QueueDelay = recent[len(recent)/2] - base
	}
	// The first arrival opens the span: its bytes came before it.
	if span := last - first; delivered >= minDelivered && span >= minDeliveredSpan {
		st.Delivered = int(float64(bytes-firstSize) * 8 / span.Seconds())
	}
	return st
}
