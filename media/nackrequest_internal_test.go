package media

import (
	"encoding/binary"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// nackEvent is one step of a stream's timeline: packets arriving, or a tick
// of the requester with the sequence numbers it must ask for then.
type nackEvent struct {
	at   time.Duration // since the stream's start
	seqs []uint16      // packets arriving at that time
	tick bool          // the requester's tick: want is what it asks for
	want []uint16
}

func TestNackStream(t *testing.T) {
	ms := time.Millisecond
	arrive := func(at time.Duration, seqs ...uint16) nackEvent { return nackEvent{at: at, seqs: seqs} }
	tick := func(at time.Duration, want ...uint16) nackEvent { return nackEvent{at: at, tick: true, want: want} }
	cases := []struct {
		name    string
		retries int
		events  []nackEvent
	}{
		{"in order: nothing asked", 8, []nackEvent{
			arrive(0, 1, 2, 3, 4), tick(20 * ms), arrive(30*ms, 5, 6), tick(40 * ms), tick(500 * ms),
		}},
		{"a gap on a path that keeps order is asked for at the next tick", 8, []nackEvent{
			arrive(0, 1, 2, 4, 5), tick(20*ms, 3), tick(40 * ms),
		}},
		{"gaps are asked in order, across the wrap", 8, []nackEvent{
			arrive(0, 65533, 65535, 1, 3), tick(20*ms, 65534, 0, 2),
		}},
		{"a packet late by 60 ms makes later gaps wait 70 ms", 8, []nackEvent{
			arrive(0, 1, 3), arrive(10*ms, 2), // late by 10 ms: wait 20 ms
			arrive(100*ms, 5), tick(110 * ms), tick(120*ms, 4), arrive(150*ms, 4), // asked once 20 ms passed
			arrive(200*ms, 7), arrive(260*ms, 6), // late by 60 ms, not asked
			arrive(300*ms, 9), tick(320 * ms), tick(360 * ms), tick(370*ms, 8),
		}},
		{"a late packet that came within the wait is never asked for", 8, []nackEvent{
			arrive(0, 1, 3), arrive(50*ms, 2),
			arrive(100*ms, 5), tick(120 * ms), arrive(140*ms, 4), tick(160 * ms), tick(300 * ms),
		}},
		{"the wait is bounded by nackMaxReorderWait", 8, []nackEvent{
			arrive(0, 1, 3), arrive(900*ms, 2),
			arrive(1000*ms, 5), tick(1100 * ms), tick(1150*ms, 4),
		}},
		{"a request is repeated after the default wait, then after what answers took", 8, []nackEvent{
			arrive(0, 1, 3), tick(20*ms, 2), tick(160 * ms), tick(170*ms, 2), arrive(250*ms, 2), // answered in 80 ms
			arrive(300*ms, 5), tick(320*ms, 4), tick(400 * ms), tick(420*ms, 4), // 80 + 20 = 100 ms later
		}},
		{"a packet is asked for at most retries times, then forgotten", 2, []nackEvent{
			arrive(0, 1, 3), tick(20*ms, 2), tick(170*ms, 2), tick(320 * ms), tick(2000 * ms),
			arrive(2100*ms, 2), tick(2120 * ms),
		}},
		{"old samples are forgotten", 8, []nackEvent{
			arrive(0, 1, 3), arrive(100*ms, 2), // late by 100 ms
			arrive(11*time.Second, 5), tick(11*time.Second+20*ms, 4),
		}},
		{"a jump of the numbering is not a loss", 8, []nackEvent{
			arrive(0, 1, 2), arrive(10*ms, 30000, 30001), tick(20 * ms),
		}},
		{"gaps older than nackMaxGapAge are dropped", 100, []nackEvent{
			arrive(0, 1, 3), tick(20*ms, 2), tick(3100 * ms), tick(3300 * ms),
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newNackStream(c.retries)
			start := time.Unix(1000, 0)
			for _, e := range c.events {
				now := start.Add(e.at)
				for _, q := range e.seqs {
					s.arrived(q, now)
				}
				if e.tick {
					if got, _ := s.due(now); !slices.Equal(got, e.want) {
						t.Errorf("at %v asked for %v, want %v", e.at, got, e.want)
					}
				}
			}
		})
	}
}

// TestNackStreamBounded: a burst longer than the sender's buffer keeps only
// the newest gaps.
func TestNackStreamBounded(t *testing.T) {
	s := newNackStream(8)
	now := time.Unix(1000, 0)
	s.arrived(1, now)
	s.arrived(900, now)
	got, _ := s.due(now.Add(nackTick))
	if len(got) != nackMaxMissing || got[0] != 900-nackMaxMissing || got[len(got)-1] != 899 {
		t.Fatalf("asked for %d packets (%v … %v), want the %d before 900", len(got), got[0], got[len(got)-1], nackMaxMissing)
	}
}

// TestNackRequesterTicksOnlyWithGaps: the requester's loop wakes only
// while a stream has gaps. Packets in order: no tick, no NACK. A gap: a
// NACK for it within a few ticks. The gap filled: the ticks stop.
func TestNackRequesterTicksOnlyWithGaps(t *testing.T) {
	n, nacks := newNackHarness(t)
	arrive := n.stream(t, &interceptor.StreamInfo{SSRC: 7, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}})
	for q := range uint16(10) {
		arrive(q)
		time.Sleep(nackTick)
	}
	if c := n.ticks.Load(); c != 0 {
		t.Fatalf("%d ticks with every packet in order", c)
	}
	arrive(12) // 10 and 11 missing
	select {
	case got := <-nacks:
		if !slices.Equal(got, []uint16{10, 11}) {
			t.Fatalf("asked for %v, want [10 11]", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no NACK within 2 s of a gap")
	}
	arrive(10)
	arrive(11)
	// At most one tick may still be under way.
	deadline := time.Now().Add(2 * time.Second)
	for {
		before := n.ticks.Load()
		time.Sleep(5 * nackTick)
		if n.ticks.Load() == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still ticking 2 s after the gaps were filled (%d ticks)", n.ticks.Load())
		}
	}
	if c := n.ticks.Load(); c < 1 {
		t.Fatalf("%d ticks, want at least the one that asked", c)
	}
}

// TestNackRequesterCountsRTXRepairs: a packet resent on an RTX stream
// (RFC 4588, as Chromium resends) closes its gap in the media stream, so
// it is not asked for again; an RTX packet repeating one not missing (a
// browser's probe) and one without payload (padding) open nothing.
func TestNackRequesterCountsRTXRepairs(t *testing.T) {
	n, nacks := newNackHarness(t)
	arrive := n.stream(t, &interceptor.StreamInfo{SSRC: 7, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}})
	repair := n.stream(t, &interceptor.StreamInfo{SSRC: 8, MimeType: webrtc.MimeTypeRTX})
	for q := range uint16(10) {
		arrive(q)
	}
	arrive(13) // 10, 11 and 12 missing
	select {
	case got := <-nacks:
		if !slices.Equal(got, []uint16{10, 11, 12}) {
			t.Fatalf("asked for %v, want [10 11 12]", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no NACK within 2 s of a gap")
	}
	repair(0, binary.BigEndian.AppendUint16(nil, 10)...)
	repair(1, binary.BigEndian.AppendUint16(nil, 11)...)
	repair(2, binary.BigEndian.AppendUint16(nil, 40)...) // a probe repeating a packet ahead
	repair(3, 0)                                         // too short to name a packet: padding
	n.mu.Lock()
	s := n.streams[7]
	n.mu.Unlock()
	s.mu.Lock()
	missing, highest := slices.Sorted(maps.Keys(s.missing)), s.highest
	s.mu.Unlock()
	if !slices.Equal(missing, []uint16{12}) || highest != 13 {
		t.Fatalf("after the repairs of 10 and 11: missing %v, highest %d; want [12], 13", missing, highest)
	}
	// 12 is asked for again after the retry wait; 10 and 11 never.
	deadline := time.After(10 * nackRetryDefault)
	for {
		select {
		case got := <-nacks:
			if slices.ContainsFunc(got, func(q uint16) bool { return q != 12 }) {
				t.Fatalf("asked again for %v after 10 and 11 came on the RTX stream", got)
			}
		case <-deadline:
			return
		}
	}
}

// nackHarness is a requester whose NACKs come out on a channel.
type nackHarness struct{ *nackRequester }

func newNackHarness(t *testing.T) (nackHarness, chan []uint16) {
	t.Helper()
	i, err := nackRequesterFactory{retries: 8}.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	n := i.(*nackRequester)
	t.Cleanup(func() { n.Close() })
	nacks := make(chan []uint16, 64)
	n.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		for _, p := range pkts {
			if tn, ok := p.(*rtcp.TransportLayerNack); ok {
				var seqs []uint16
				for _, pair := range tn.Nacks {
					seqs = append(seqs, pair.PacketList()...)
				}
				nacks <- seqs
			}
		}
		return 0, nil
	}))
	return nackHarness{n}, nacks
}

// stream binds a remote stream and returns what makes a packet arrive on
// it: its sequence number and payload ({1} if none is given).
func (n nackHarness) stream(t *testing.T, info *interceptor.StreamInfo) func(seq uint16, payload ...byte) {
	t.Helper()
	var next []byte
	r := n.BindRemoteStream(info, interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return copy(b, next), a, nil
	}))
	return func(seq uint16, payload ...byte) {
		t.Helper()
		if payload == nil {
			payload = []byte{1}
		}
		var err error
		if next, err = (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: info.SSRC, SequenceNumber: seq}, Payload: payload}).Marshal(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Read(make([]byte, 1500), nil); err != nil {
			t.Fatal(err)
		}
	}
}
