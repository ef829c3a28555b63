package media

import (
	"slices"
	"time"
)

// audioDecoder is what the jitter buffer needs of libopus (opusdec.Decoder;
// a fake in its table test).
type audioDecoder interface {
	Decode(packet []byte, pcm []int16) (int, error)
	DecodeFEC(packet []byte, pcm []int16) (int, error)
	PacketSamples(packet []byte) (int, error)
}

// Jitter buffer tuning. Times are in samples at AudioSampleRate where the
// buffer works in RTP time.
const (
	// jbStartDelay is the delay the first packet is held for, before the
	// buffer has seen any jitter.
	jbStartDelay = 60 * time.Millisecond
	// jbSafety is kept above the latest arrival seen in the window.
	jbSafety = 10 * time.Millisecond
	// jbWindow is how long an arrival's lateness counts: the delay comes
	// down only after this long without a packet needing it.
	jbWindow = 4 * time.Second
	// jbShrinkMargin is the excess above a packet's length the delay
	// must have before a packet is dropped to cut it: cutting it and
	// then having to stretch it again costs a concealed frame.
	jbShrinkMargin = 30 * time.Millisecond
	// jbCutExcess is the excess delay cut at once rather than a packet
	// per window.
	jbCutExcess = 100 * time.Millisecond
	// jbJump is how far off the latest arrival's timing a packet must be
	// to be a jump in the sender's timestamps rather than delay.
	jbJump = time.Second
	// jbMaxDelay bounds the delay above the earliest arrival in the window:
	// a voice call more than this late is worse than one with gaps.
	jbMaxDelay = 300 * time.Millisecond
	// jbMaxPackets bounds what is held (2.4 s of 20 ms packets).
	jbMaxPackets = 120
	// jbMaxConceal is how long the buffer conceals with nothing to play
	// before it goes quiet and waits (the sender stopped, the link is
	// down); the next packet starts it afresh.
	jbMaxConceal = 200 * time.Millisecond
	// dtxMaxBytes: an Opus packet this small is a DTX frame (the sender's
	// silence); the gap after it is silence, not loss.
	dtxMaxBytes = 2
	// opusMinFrame is the shortest Opus frame, 2.5 ms: concealment is
	// asked for in multiples of it.
	opusMinFrame = AudioSampleRate / 400
)

// frameKind says where a played frame came from.
type frameKind int

const (
	frameDecoded   frameKind = iota + 1 // a packet, on time
	frameRecovered                      // a lost packet rebuilt from the next one's in-band FEC
	frameConcealed                      // libopus's concealment: loss, or lateness
	frameSilence                        // the sender's silence (DTX): comfort noise
)

type jbPacket struct {
	seq     int64
	ts      int64
	payload []byte
	dtx     bool
}

// jitterBuffer turns the parent's Opus packets, as they arrive (late,
// reordered, lost, in bursts), into a steady stream of PCM: each packet
// plays at its RTP time plus a delay that tracks the latest arrivals of
// the last few seconds (jbWindow), so a ±50 ms jitter costs ~100 ms of
// delay instead of a gap at every late packet. A packet missing at its
// turn is rebuilt from the next one's in-band FEC when that has come,
// concealed by libopus when not; one that comes after its turn is
// dropped (counted late) and pushes the delay up. It is not safe for
// concurrent use; the Receiver guards it.
//
// Times: L = arrival − RTP time is a packet's lateness against the
// sender's clock (any constant offset); the playout clock plays RTP time
// ts at wall time ts + offset. Offset above the window's latest L, plus
// jbSafety, means no packet of the window would have been late.
type jitterBuffer struct {
	dec audioDecoder
	pcm []int16

	pkts    map[int64]*jbPacket
	started bool    // a first packet has come
	playing bool    // the clock runs (false: waiting for a packet after a silence)
	offset  float64 // seconds: wall = RTP time + offset (since epoch)
	pos     int64   // RTP time of the next sample to play
	next    int64   // the sequence number expected next
	lastDur int     // samples of the last frame played
	lastDTX bool
	held    bool // the clock started afresh and has not played yet
	// conceal is the samples concealed in a row for want of a packet,
	// since the one expected then (concealSeq) up to RTP time concealEnd:
	// the sender's silence if that packet turns out to come after it.
	conceal    int
	concealSeq int64
	concealEnd int64
	jumps      int // packets in a row off the window's timing by jbJump

	// Extended (unwrapped) sequence number and timestamp: the newest seen.
	seqHi, tsHi int64

	window   []arrival // lateness of the arrivals within jbWindow
	epoch    time.Time // wall time origin for float seconds
	lastDrop time.Time

	stats jbStats
}

type arrival struct {
	at time.Time
	l  float64 // lateness, seconds
}

type jbStats struct {
	decoded, concealed, silence int64 // samples
	fecTried                    int64 // lost packets rebuilt from FEC (or concealed, libopus cannot say)
	late                        int64 // packets that came after their turn
	dropped                     int64 // samples played no more, to cut the delay
	errors                      int64 // packets libopus could not decode
}

// counts is the buffer's counts so far. A gap being filled in for want
// of a packet is left out until a packet says what it was (the sender's
// pause, or loss): counted as concealment meanwhile, a snapshot taken
// during a pause would count the sender's silence as loss.
func (j *jitterBuffer) counts() jbStats {
	s := j.stats
	s.concealed -= int64(j.conceal)
	return s
}

// delay is the playout delay above the earliest arrival of the window:
// what the jitter costs the listener.
func (j *jitterBuffer) delay() time.Duration {
	if len(j.window) == 0 {
		return 0
	}
	lo := j.window[0].l
	for _, a := range j.window[1:] {
		lo = min(lo, a.l)
	}
	return time.Duration((j.offset - lo) * float64(time.Second))
}

func newJitterBuffer(dec audioDecoder) *jitterBuffer {
	return &jitterBuffer{dec: dec, pcm: make([]int16, 5760), pkts: map[int64]*jbPacket{}, lastDur: AudioSampleRate / 50}
}

func (j *jitterBuffer) seconds(t time.Time) float64 { return t.Sub(j.epoch).Seconds() }

func (j *jitterBuffer) rtpSeconds(ts int64) float64 { return float64(ts) / AudioSampleRate }

// extend unwraps a 16- or 32-bit counter against the newest value seen.
func extend16(hi int64, v uint16) int64 { return hi + int64(int16(v-uint16(hi))) }
func extend32(hi int64, v uint32) int64 { return hi + int64(int32(v-uint32(hi))) }

// push takes a packet arriving at now.
func (j *jitterBuffer) push(seq uint16, ts uint32, payload []byte, now time.Time) {
	if !j.started {
		j.started = true
		j.epoch = now
		j.seqHi, j.tsHi = int64(seq), int64(ts)
	}
	s, t := extend16(j.seqHi, seq), extend32(j.tsHi, ts)
	l := j.seconds(now) - j.rtpSeconds(t)
	if j.playing && len(j.window) > 0 {
		// A packet a second or more off the window's timing is a jump in
		// the sender's timestamps (an encoder started afresh), not
		// network delay: alone it is dropped, and it would have poisoned
		// the window's timing for a whole window; three in a row are the
		// stream's new timing, and the buffer starts afresh from them.
		if ref := j.window[len(j.window)-1].l; l-ref > jbJump.Seconds() || ref-l > jbJump.Seconds() {
			if j.jumps++; j.jumps < 3 {
				j.stats.late++
				return
			}
			j.playing, j.window = false, j.window[:0]
			j.seqHi, j.tsHi, s, t = int64(seq), int64(ts), int64(seq), int64(ts)
			l = j.seconds(now) - j.rtpSeconds(t)
		}
	}
	j.jumps = 0
	if j.conceal > 0 && s == j.concealSeq && t >= j.concealEnd {
		// The very packet the buffer waited for, not late: nothing was
		// lost, the sender paused (DTX sends nothing for a pause, see
		// opusenc), and what the buffer filled in meanwhile was the
		// sender's silence, not concealment of loss. It may come after
		// the next one (jitter reorders them), which started the clock
		// afresh: still the sender's silence.
		j.stats.concealed -= int64(j.conceal)
		j.stats.silence += int64(j.conceal)
		j.conceal = 0
	}
	j.seqHi, j.tsHi = max(j.seqHi, s), max(j.tsHi, t)
	// Arrivals more than jbMaxDelay earlier than this one no longer say
	// what the path does: its delay has risen past what the buffer may
	// hold above them (a queue filled, a new route, a sender whose audio
	// comes slower than real time because its CPU is starved). Kept, they
	// would bound the delay below what every packet now needs, and each
	// would come after its turn, for as long as they stay in the window
	// (for ever, while the delay keeps rising): silence, not late voice.
	j.window = slices.DeleteFunc(j.window, func(a arrival) bool { return a.l < l-jbMaxDelay.Seconds() })
	j.window = append(j.window, arrival{now, l})
	if !j.playing {
		// The first packet, or the first after a silence: the clock
		// starts from it, held for the delay the window calls for (the
		// start delay before there is a window).
		j.playing, j.held = true, true
		j.pos, j.next = t, s
		j.offset = l + jbStartDelay.Seconds()
		if len(j.window) > 1 {
			j.offset = max(j.maxLateness(now)+jbSafety.Seconds(), l)
		}
		clear(j.pkts)
	}
	if j.held && s < j.next && t < j.pos && j.next-s < jbMaxPackets && j.rtpSeconds(j.pos-t) < jbJump.Seconds() {
		// A packet from before the one the clock started afresh from,
		// come before that one played (jitter reordered them: talk
		// resuming after a pause): the clock starts from it instead,
		// or the first syllable would be lost.
		j.pos, j.next = t, s
	}
	if j.playing && len(j.pkts) == 0 && j.conceal > 0 && s == j.concealSeq && s == j.next && t < j.pos && j.pos-t <= int64(j.conceal) {
		// The very packet the buffer has been filling in for, come after
		// its turn with nothing after it come before it (a later one held
		// would make it reordered, or lost, as before): late, not lost
		// (the path's delay rose; the sender's audio came slower than
		// real time). What was filled in becomes a stretch: the clock
		// goes back to the packet and the delay grows by the wait, as
		// NetEQ's merge does. Dropped as late instead, every packet of a
		// delay that keeps rising would be, and the listener would hear
		// nothing but concealment.
		j.offset += j.rtpSeconds(j.pos - t)
		j.pos, j.conceal = t, 0 // the fill stays counted as concealment
	}
	if s < j.next || t+int64(j.lastDur) <= j.pos {
		j.stats.late++ // its turn has passed: concealed already
		return
	}
	if _, dup := j.pkts[s]; dup {
		return
	}
	if len(j.pkts) >= jbMaxPackets {
		// Full: the oldest goes, not the newest: the clock catches up
		// with what is current (play's cut).
		if f := j.first(); f != nil && f.seq < s {
			delete(j.pkts, f.seq)
			j.stats.dropped += int64(f.dur(j))
		} else {
			return
		}
	}
	j.pkts[s] = &jbPacket{seq: s, ts: t, payload: append([]byte(nil), payload...), dtx: len(payload) <= dtxMaxBytes}
}

// maxLateness is the latest arrival of the window, in seconds, after
// dropping what has left it; bounded to jbMaxDelay above the earliest.
func (j *jitterBuffer) maxLateness(now time.Time) float64 {
	k := 0
	for k < len(j.window) && now.Sub(j.window[k].at) > jbWindow {
		k++
	}
	j.window = j.window[k:]
	if len(j.window) == 0 {
		return j.offset - jbSafety.Seconds()
	}
	hi, lo := j.window[0].l, j.window[0].l
	for _, a := range j.window[1:] {
		hi, lo = max(hi, a.l), min(lo, a.l)
	}
	return min(hi, lo+jbMaxDelay.Seconds())
}

// due is when the next frame plays; false while waiting for a packet.
func (j *jitterBuffer) due() (time.Time, bool) {
	if !j.playing {
		return time.Time{}, false
	}
	return j.epoch.Add(time.Duration((j.rtpSeconds(j.pos) + j.offset) * float64(time.Second))), true
}

// play produces the frame due now: its PCM (valid until the next call)
// and where it came from; no PCM when the buffer has gone quiet.
func (j *jitterBuffer) play(now time.Time) ([]int16, frameKind) {
	if !j.playing {
		return nil, 0
	}
	j.held = false
	// Packets whose time has passed came too late.
	for s, p := range j.pkts {
		if p.ts+int64(j.lastDur) <= j.pos || s < j.next {
			delete(j.pkts, s)
			j.stats.late++
		}
	}
	want := j.maxLateness(now) + jbSafety.Seconds()
	frame := j.lastDur
	if j.offset < want-0.002 {
		// The delay is short of what recent arrivals needed: hold the
		// clock back a frame, filling it in.
		j.offset += float64(frame) / AudioSampleRate
		if j.lastDTX {
			return j.fill(frame, fillPause)
		}
		return j.fill(frame, fillStretch)
	}
	// Far more delay than the window needs (a stall whose packets then
	// came in a burst; a track read long after it started): jump to where
	// the wanted delay would have the clock now, dropping what is older,
	// or the call would lag by the stall for the rest of it.
	if excess := j.offset - want; excess > jbCutExcess.Seconds() {
		to := j.pos + int64(excess*AudioSampleRate)
		for s, p := range j.pkts {
			if p.ts < to {
				delete(j.pkts, s)
				j.next = max(j.next, s+1)
			}
		}
		j.stats.dropped += to - j.pos
		j.pos, j.offset, j.lastDrop = to, want, now
	}
	p := j.first()
	if p != nil && p.seq >= j.next && p.ts <= j.pos+opusMinFrame {
		j.next = p.seq // what was dropped before it is not missing
	}
	// A little more delay than needed (a packet and jbShrinkMargin over)
	// goes one packet per window, quietly.
	if p != nil && p.ts <= j.pos && j.seconds(now) >= jbWindow.Seconds() && now.Sub(j.lastDrop) >= jbWindow &&
		j.offset-want-float64(p.dur(j))/AudioSampleRate > jbShrinkMargin.Seconds() {
		d := p.dur(j)
		delete(j.pkts, p.seq)
		j.pos, j.next = p.ts+int64(d), p.seq+1
		j.offset -= float64(d) / AudioSampleRate
		j.lastDrop = now
		j.stats.dropped += int64(d)
		p = j.first()
	}
	switch {
	case p != nil && p.ts <= j.pos+opusMinFrame:
		delete(j.pkts, p.seq)
		n, err := j.dec.Decode(p.payload, j.pcm)
		if err != nil || n == 0 {
			j.stats.errors++
			j.pos, j.next = p.ts+int64(frame), p.seq+1
			return j.fill(frame, fillWait)
		}
		j.pos, j.next, j.lastDur, j.lastDTX, j.conceal = p.ts+int64(n), p.seq+1, n, p.dtx, 0
		j.stats.decoded += int64(n)
		return j.pcm[:n], frameDecoded
	case p != nil && p.seq == j.next:
		// Nothing is missing, but the next packet is later in time: the
		// sender paused (DTX). Comfort noise until it is due.
		n := min(int(p.ts-j.pos), frame) / opusMinFrame * opusMinFrame
		if n == 0 {
			j.pos = p.ts
			return j.play(now)
		}
		j.pos += int64(n)
		return j.fill(n, fillPause)
	case p != nil:
		// The packet due is missing and a later one has come: lost (or
		// later than the delay allows). The next packet's FEC rebuilds it
		// when that is the very next one. libopus (1.3) conceals instead,
		// silently, when that packet carries no FEC, and cannot be asked
		// which it did: so a rebuilt frame counts as concealed too
		// (fecTried says how many were tried), and the share of
		// concealment is never understated.
		j.pos += int64(frame)
		if p.seq == j.next+1 && p.ts == j.pos {
			if n, err := j.dec.DecodeFEC(p.payload, j.pcm[:frame]); err == nil && n > 0 {
				j.next++
				j.stats.concealed += int64(n)
				j.stats.fecTried++
				return j.pcm[:n], frameRecovered
			}
		}
		return j.fill(frame, fillWait)
	case j.lastDTX:
		j.pos += int64(frame)
		return j.fill(frame, fillPause)
	default:
		// Nothing to play: conceal for a while, then go quiet.
		if j.conceal >= int(jbMaxConceal.Seconds()*AudioSampleRate) {
			j.playing = false
			return nil, 0
		}
		j.pos += int64(frame)
		return j.fill(frame, fillWait)
	}
}

// fillWhy says why the buffer fills in a frame.
type fillWhy int

const (
	fillWait    fillWhy = iota + 1 // no packet for this turn: lost, late, or the sender paused (push tells later)
	fillStretch                    // the delay grows by a frame: always concealment
	fillPause                      // after the sender's DTX frame: its silence
)

// fill is n samples of libopus's concealment (comfort noise after DTX).
func (j *jitterBuffer) fill(n int, why fillWhy) ([]int16, frameKind) {
	got, err := j.dec.Decode(nil, j.pcm[:n])
	if err != nil || got == 0 {
		clear(j.pcm[:n])
		got = n
	}
	switch why {
	case fillPause:
		j.stats.silence += int64(got)
		return j.pcm[:got], frameSilence
	case fillWait:
		if j.conceal == 0 {
			j.concealSeq = j.next
		}
		j.conceal += got
		j.concealEnd = j.pos
	}
	j.stats.concealed += int64(got)
	return j.pcm[:got], frameConcealed
}

// first is the held packet with the lowest sequence number.
func (j *jitterBuffer) first() *jbPacket {
	var f *jbPacket
	for _, p := range j.pkts {
		if f == nil || p.seq < f.seq {
			f = p
		}
	}
	return f
}

// dur is the packet's duration in samples (the last frame's if unreadable).
func (p *jbPacket) dur(j *jitterBuffer) int {
	if n, err := j.dec.PacketSamples(p.payload); err == nil && n > 0 {
		return n
	}
	return j.lastDur
}
