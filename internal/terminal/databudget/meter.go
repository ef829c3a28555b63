package databudget

import (
	"net"
	"sync"

	"github.com/pion/webrtc/v4"
)

// Per-packet overheads the data plan counts and pion's counters do not.
// pion counts each ICE candidate pair's application bytes (DTLS, SRTP,
// SRTCP: everything of the call but its STUN) and packets; the plan counts
// IP packets. So each packet adds its IP and UDP headers, and on a TURN
// relay (the terminal's own leg to the relay is what its plan carries) the
// relay's framing: ChannelData's 4 bytes over UDP; over TCP or TLS a TCP
// segment per packet (its headers with the usual timestamp option) and,
// over TLS, a record's 22 bytes (TLS 1.3 AES-GCM).
//
// Not counted: ICE's STUN checks and consent keep-alives (about 100 bytes
// every few seconds while a call lasts), TCP's ACKs for a TURN/TCP leg, the
// signalling WebSocket (a few kilobytes a call, and its keep-alive pings
// between calls), the TLS handshake with the TURN server, and anything
// else on the unit (updates, NTP). docs/databudget.md says so.
const (
	ipv4UDP     = 20 + 8
	ipv6UDP     = 40 + 8
	channelData = 4
	tcpSegment  = 20 + 12 // TCP header with the timestamp option
	tlsRecord   = 22
)

// Counts are bytes a call sent and received, as the plan counts them.
type Counts struct {
	Sent, Received int64
}

// Add is c plus d.
func (c Counts) Add(d Counts) Counts { return Counts{c.Sent + d.Sent, c.Received + d.Received} }

// Sub is c minus d.
func (c Counts) Sub(d Counts) Counts { return Counts{c.Sent - d.Sent, c.Received - d.Received} }

// Total is sent and received together.
func (c Counts) Total() int64 { return c.Sent + c.Received }

// Meter counts one call's bytes from its peer connection's statistics.
// Every candidate pair's counters are remembered by the pair's ID, so a
// pair that an ICE restart drops keeps what it carried up to the last
// Read. Safe for concurrent use.
type Meter struct {
	mu    sync.Mutex
	pairs map[string]Counts
}

// NewMeter returns a meter that has counted nothing.
func NewMeter() *Meter { return &Meter{pairs: map[string]Counts{}} }

// Read takes the peer connection's statistics and returns what the call
// has carried since the meter was made. A nil pc reads nothing new.
func (m *Meter) Read(pc *webrtc.PeerConnection) Counts {
	if pc != nil {
		m.take(pc.GetStats())
	}
	return m.total()
}

// take updates the pairs' counters from one statistics report.
func (m *Meter) take(r webrtc.StatsReport) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range r {
		p, ok := s.(webrtc.ICECandidatePairStats)
		if !ok {
			continue
		}
		local, _ := r[p.LocalCandidateID].(webrtc.ICECandidateStats)
		per := PacketOverhead(local)
		c := Counts{
			Sent:     int64(p.BytesSent) + int64(p.PacketsSent)*per,
			Received: int64(p.BytesReceived) + int64(p.PacketsReceived)*per,
		}
		// Counters only grow; a report taken while a pair is being
		// replaced must not take back what was counted.
		old := m.pairs[p.ID]
		m.pairs[p.ID] = Counts{max(old.Sent, c.Sent), max(old.Received, c.Received)}
	}
}

func (m *Meter) total() Counts {
	m.mu.Lock()
	defer m.mu.Unlock()
	var t Counts
	for _, c := range m.pairs {
		t = t.Add(c)
	}
	return t
}

// PacketOverhead is what the plan counts for each packet of a candidate
// pair beyond pion's byte count, from its local candidate: IP and UDP
// headers, and on a relayed candidate the TURN framing of the leg to the
// relay (see the constants above). An unknown candidate counts as IPv4
// UDP.
func PacketOverhead(local webrtc.ICECandidateStats) int64 {
	ip := int64(ipv4UDP)
	if a := net.ParseIP(local.IP); a != nil && a.To4() == nil {
		ip = ipv6UDP
	}
	if local.CandidateType != webrtc.ICECandidateTypeRelay {
		return ip
	}
	switch local.RelayProtocol {
	case "tcp":
		return ip - 8 + tcpSegment + channelData
	case "tls":
		return ip - 8 + tcpSegment + tlsRecord + channelData
	default:
		return ip + channelData
	}
}
