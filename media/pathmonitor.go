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

// pathMonitor keeps the send time of every packet by its transport-wide
// sequence number and reads the peer's TWCC feedback against it.
type pathMonitor struct {
	mu   sync.Mutex
	sent [4096]sentPacket

	samples []pathSample // the feedback of monitorBase
}

type sentPacket struct {
	seq uint16
	at  time.Time
}

// pathSample is what one feedback told: per packet, delivered or lost,
// and a delivered packet's one-way delay (remote clock − local clock: a
// constant offset plus the path's delay).
type pathSample struct {
	at   time.Time
	lost bool
	owd  time.Duration
}

// onSent records a packet leaving with transport-wide sequence number seq.
func (m *pathMonitor) onSent(seq uint16, at time.Time) {
	m.mu.Lock()
	m.sent[seq%uint16(len(m.sent))] = sentPacket{seq: seq, at: at}
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
				m.samples = append(m.samples, pathSample{at: now, owd: arrival - time.Duration(p.at.UnixNano())})
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
	return st
}
