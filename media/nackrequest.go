package media

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// The NACK requester asks the sender again for video packets that did not
// come (RTCP NACK), in place of pion's generator. pion's asks, every 100 ms,
// for every sequence number it has not seen yet, again and again: on a path
// that delays packets unevenly (a crowded mobile network; the impairment
// table's ±50 ms rows) a packet overtaken by the next one is asked for
// before it arrives, and the sender sends it twice. That cost 10–15% more
// data on a path that lost nothing (BenchmarkImpairment's jitter rows: 45–76
// packets sent again in 7 s), paid by the family. And on a long path
// (150 ms each way) it asked three times before the first answer could
// come back.
//
// So it waits, as browsers do, for what the path shows it needs:
//   - a gap is asked for once it is older than the longest a packet has
//     recently come late without being asked for (reordering), plus a
//     margin: on a path that keeps order, at the next tick;
//   - a request is repeated only after the longest a recent request took to
//     be answered (the round trip and the sender's pacing), plus a quarter.
//
// Both are measured from the last nackSampleAge of the stream and bounded
// (nackMaxReorderWait, nackRetryMin/Max), so a burst of late packets long
// ago does not slow repairs for the rest of the call.
const (
	nackTick           = 20 * time.Millisecond
	nackSampleAge      = 10 * time.Second
	nackSamples        = 32
	nackReorderMargin  = 10 * time.Millisecond
	nackMaxReorderWait = 150 * time.Millisecond
	nackRetryDefault   = 150 * time.Millisecond
	nackRetryMin       = 30 * time.Millisecond
	nackRetryMax       = time.Second
	nackMaxMissing     = 256  // gaps remembered per stream (the sender keeps 128 packets)
	nackMaxJump        = 1000 // a jump further than this is a new run of sequence numbers, not a loss
	nackMaxGapAge      = 3 * time.Second
)

type nackRequesterFactory struct{ retries int }

func (f nackRequesterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &nackRequester{retries: f.retries, streams: map[uint32]*nackStream{}, closed: make(chan struct{}),
		wake: make(chan struct{}, 1)}, nil
}

type nackRequester struct {
	interceptor.NoOp
	retries int

	mu      sync.Mutex
	streams map[uint32]*nackStream
	started bool
	closed  chan struct{}
	wake    chan struct{} // a stream has a new gap: tick until none is left
	wg      sync.WaitGroup
	ticks   atomic.Int64 // ticks so far (TestNackRequesterTicksOnlyWithGaps)
}

func (n *nackRequester) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.closed:
		return w
	default:
	}
	if !n.started {
		n.started = true
		n.wg.Add(1)
		go n.loop(w)
	}
	return w
}

func (n *nackRequester) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if strings.EqualFold(info.MimeType, webrtc.MimeTypeRTX) {
		return n.repairs(r)
	}
	if !slices.ContainsFunc(info.RTCPFeedback, func(fb interceptor.RTCPFeedback) bool {
		return fb.Type == webrtc.TypeRTCPFBNACK && fb.Parameter == "" // plain NACK, not "pli"
	}) {
		return r
	}
	s := newNackStream(n.retries)
	s.onGap = func() {
		select {
		case n.wake <- struct{}{}:
		default:
		}
	}
	n.mu.Lock()
	n.streams[info.SSRC] = s
	n.mu.Unlock()
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		i, attr, err := r.Read(b, a)
		if err != nil {
			return 0, nil, err
		}
		if attr == nil {
			attr = interceptor.Attributes{}
		}
		h, err := attr.GetRTPHeader(b[:i])
		if err != nil {
			return 0, nil, err
		}
		s.arrived(h.SequenceNumber, time.Now())
		return i, attr, nil
	})
}

// repairs reads an RTX stream (RFC 4588): each packet's payload begins with
// the sequence number of the packet it repeats, which closes that gap. pion
// hands the RTX stream to interceptors apart from the media stream it
// repairs and without naming it, so the gap is closed in whichever stream
// has it open: a call has one video stream. Padding (payload-less RTX
// packets, a browser's bandwidth probes) closes nothing.
func (n *nackRequester) repairs(r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		i, attr, err := r.Read(b, a)
		if err != nil {
			return 0, nil, err
		}
		var p rtp.Packet
		if p.Unmarshal(b[:i]) != nil || len(p.Payload) < 2 {
			return i, attr, nil
		}
		seq, now := binary.BigEndian.Uint16(p.Payload), time.Now()
		n.mu.Lock()
		for _, s := range n.streams {
			s.repaired(seq, now)
		}
		n.mu.Unlock()
		return i, attr, nil
	})
}

func (n *nackRequester) UnbindRemoteStream(info *interceptor.StreamInfo) {
	n.mu.Lock()
	delete(n.streams, info.SSRC)
	n.mu.Unlock()
}

func (n *nackRequester) Close() error {
	n.mu.Lock()
	select {
	case <-n.closed:
	default:
		close(n.closed)
	}
	n.mu.Unlock()
	n.wg.Wait()
	return nil
}

// loop sends the NACKs that are due, ticking every nackTick while a stream
// has gaps and sleeping while none has: a call on a clean path wakes
// nothing (pion's generator woke every 100 ms for the whole call).
func (n *nackRequester) loop(w interceptor.RTCPWriter) {
	defer n.wg.Done()
	sender := rand.Uint32() //nolint:gosec // an SSRC, not a secret
	for {
		select {
		case <-n.closed:
			return
		case <-n.wake:
		}
		t := time.NewTicker(nackTick)
		for gaps := true; gaps; {
			select {
			case <-n.closed:
				t.Stop()
				return
			case now := <-t.C:
				gaps = n.tick(w, sender, now)
			}
		}
		t.Stop()
	}
}

// tick sends what is due now and reports whether any stream still has
// gaps.
func (n *nackRequester) tick(w interceptor.RTCPWriter, sender uint32, now time.Time) (gaps bool) {
	n.ticks.Add(1)
	var out []rtcp.Packet
	n.mu.Lock()
	for ssrc, s := range n.streams {
		seqs, left := s.due(now)
		if len(seqs) > 0 {
			out = append(out, &rtcp.TransportLayerNack{SenderSSRC: sender, MediaSSRC: ssrc,
				Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)})
		}
		gaps = gaps || left
	}
	n.mu.Unlock()
	if len(out) > 0 {
		// A write fails only once the connection is closing; the loop
		// ends with it.
		_, _ = w.Write(out, interceptor.Attributes{})
	}
	return gaps
}

// nackStream is one received stream's gaps and what its path has shown.
type nackStream struct {
	mu      sync.Mutex
	retries int
	started bool
	highest uint16
	missing map[uint16]*nackGap
	late    samples // how long packets came late that were not asked for
	answer  samples // how long requests took to be answered
	onGap   func()  // a packet opened gaps (nil: nobody to tell)
}

type nackGap struct {
	since, asked time.Time
	count        int
}

func newNackStream(retries int) *nackStream {
	return &nackStream{retries: retries, missing: map[uint16]*nackGap{}}
}

// arrived records a packet: a newer one opens gaps for what it skipped; an
// older one closes its gap and says how late it was.
func (s *nackStream) arrived(seq uint16, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started, s.highest = true, seq
		return
	}
	d := int16(seq - s.highest)
	switch {
	case d > 0 && int(d) <= nackMaxJump:
		for q := s.highest + 1; q != seq; q++ {
			s.missing[q] = &nackGap{since: now}
		}
		s.highest = seq
		s.trim()
		if d > 1 && s.onGap != nil {
			s.onGap()
		}
	case d > 0 || int(d) < -nackMaxJump:
		// The sender restarted its numbering (or a wild packet): what was
		// missing will not come.
		clear(s.missing)
		s.highest = seq
	default:
		g, ok := s.missing[seq]
		if !ok {
			return // a duplicate, or older than what is remembered
		}
		delete(s.missing, seq)
		if g.count == 0 {
			s.late.add(now, now.Sub(g.since))
		} else {
			s.answer.add(now, now.Sub(g.asked))
		}
	}
}

// repaired closes seq's gap, if it is open, with a packet resent on a
// repair stream; unlike arrived, it never opens gaps: a browser's probes
// repeat packets it sent a moment ago.
func (s *nackStream) repaired(seq uint16, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.missing[seq]
	if !ok {
		return
	}
	delete(s.missing, seq)
	if g.count > 0 {
		s.answer.add(now, now.Sub(g.asked))
	}
}

// trim keeps the gaps among the nackMaxMissing sequence numbers before the
// highest: the sender no longer has older ones.
func (s *nackStream) trim() {
	if len(s.missing) <= nackMaxMissing {
		return
	}
	for q := range s.missing {
		if uint16(s.highest-q) > nackMaxMissing {
			delete(s.missing, q)
		}
	}
}

// reorderWait is how long a gap waits before it is asked for.
func (s *nackStream) reorderWait(now time.Time) time.Duration {
	m, ok := s.late.max(now)
	if !ok {
		return 0
	}
	return min(m+nackReorderMargin, nackMaxReorderWait)
}

// retryWait is how long a request waits for its answer before it is made
// again.
func (s *nackStream) retryWait(now time.Time) time.Duration {
	m, ok := s.answer.max(now)
	if !ok {
		return nackRetryDefault
	}
	return min(max(m+m/4, nackRetryMin), nackRetryMax)
}

// due returns the sequence numbers to ask for now, in order, and whether
// gaps are left; it forgets the gaps asked for as often as they may be.
func (s *nackStream) due(now time.Time) (seqs []uint16, left bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wait, retry := s.reorderWait(now), s.retryWait(now)
	var out []uint16
	for q, g := range s.missing {
		switch {
		case now.Sub(g.since) > nackMaxGapAge:
			delete(s.missing, q)
		case g.count == 0 && now.Sub(g.since) >= wait,
			g.count > 0 && g.count < s.retries && now.Sub(g.asked) >= retry:
			g.count++
			g.asked = now
			out = append(out, q)
		case g.count >= s.retries && now.Sub(g.asked) >= retry:
			delete(s.missing, q)
		}
	}
	h := s.highest
	slices.SortFunc(out, func(a, b uint16) int { return int(uint16(h-b)) - int(uint16(h-a)) })
	return out, len(s.missing) > 0
}

// samples keeps the last nackSamples durations seen with their times.
type samples struct {
	at  [nackSamples]time.Time
	d   [nackSamples]time.Duration
	n   int
	pos int
}

func (s *samples) add(at time.Time, d time.Duration) {
	s.at[s.pos], s.d[s.pos] = at, d
	s.pos = (s.pos + 1) % nackSamples
	s.n = min(s.n+1, nackSamples)
}

// max is the longest sample younger than nackSampleAge.
func (s *samples) max(now time.Time) (time.Duration, bool) {
	var m time.Duration
	ok := false
	for i := range s.n {
		if now.Sub(s.at[i]) <= nackSampleAge && (!ok || s.d[i] > m) {
			m, ok = s.d[i], true
		}
	}
	return m, ok
}
