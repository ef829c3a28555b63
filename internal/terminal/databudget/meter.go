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
// relay's framing: ChannelData's 4 bytes.
//
// Not counted: ICE's STUN checks and consent keep-alives (about 100 bytes
// every few seconds while a call lasts), on a TURN/TCP or TURN/TLS leg the
// TCP and TLS framing (32–54 bytes a packet more) and TCP's ACKs, the
// signalling WebSocket (a few kilobytes a call, and its keep-alive pings
// between calls), the TLS handshake with the TURN server, and anything
// else on the unit (updates, NTP). docs/databudget.md says so.
const (
	ipv4UDP     = 20 + 8
	ipv6UDP     = 40 + 8
	channelData = 4
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

// Read takes the call's selected ICE candidate pair's counters and
// returns what the call has carried since the meter was made. A nil pc, or
// one with no pair selected yet (or closed), reads nothing new.
//
// Only the selected pair is read, not pc.GetStats: in pion v4.2.26
// GetStats races with the peer connection closing itself (a DTLS failure
// closes it from pion's own goroutine), and the full report costs a board
// far more than the one pair. A pair carries media only once selected;
// the loop reads every second, so a pair left by a switch or an ICE
// restart loses at most its last second.
func (m *Meter) Read(pc *webrtc.PeerConnection) Counts {
	if pc != nil {
		if st, local, ok := selectedPair(pc); ok {
			m.take(st, local)
		}
	}
	return m.total()
}

// selectedPair is the statistics and local candidate of pc's selected
// candidate pair.
func selectedPair(pc *webrtc.PeerConnection) (webrtc.ICECandidatePairStats, webrtc.ICECandidate, bool) {
	// Not before ICE has started: pion (v4.2.26) sets the ICE transport's
	// gatherer in Start, under a lock GetSelectedCandidatePair does not
	// take (a data race the race detector found in an e2e call). The
	// connection state, stored atomically once the agent runs, orders
	// this read after that write; nothing is selected before it anyway.
	if pc.ICEConnectionState() == webrtc.ICEConnectionStateNew {
		return webrtc.ICECandidatePairStats{}, webrtc.ICECandidate{}, false
	}
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return webrtc.ICECandidatePairStats{}, webrtc.ICECandidate{}, false
	}
	ice := sctp.Transport().ICETransport()
	pair, err := ice.GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil {
		return webrtc.ICECandidatePairStats{}, webrtc.ICECandidate{}, false
	}
	st, ok := ice.GetSelectedCandidatePairStats()
	return st, *pair.Local, ok
}

// take updates one pair's counters.
func (m *Meter) take(p webrtc.ICECandidatePairStats, local webrtc.ICECandidate) {
	m.mu.Lock()
	defer m.mu.Unlock()
	per := PacketOverhead(local)
	c := Counts{
		Sent:     int64(p.BytesSent) + int64(p.PacketsSent)*per,
		Received: int64(p.BytesReceived) + int64(p.PacketsReceived)*per,
	}
	// Counters only grow; a pair's stats read as it is replaced must not
	// take back what was counted.
	old := m.pairs[p.ID]
	m.pairs[p.ID] = Counts{max(old.Sent, c.Sent), max(old.Received, c.Received)}
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
// relay: ChannelData over UDP. pion's candidate does not say which
// transport the leg to the relay uses; over TCP or TLS a packet costs
// 32 to 54 bytes more than counted here (docs/databudget.md).
func PacketOverhead(local webrtc.ICECandidate) int64 {
	ip := int64(ipv4UDP)
	if a := net.ParseIP(local.Address); a != nil && a.To4() == nil {
		ip = ipv6UDP
	}
	if local.Typ == webrtc.ICECandidateTypeRelay {
		return ip + channelData
	}
	return ip
}
