package media

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// fakeOpus decodes a packet to its length in samples, stored in its first
// two bytes (all packets are 20 ms here); FEC rebuilds only from packets
// whose third byte says they carry it.
type fakeOpus struct{ fec int }

func (fakeOpus) Decode(p []byte, pcm []int16) (int, error) {
	if p == nil {
		return len(pcm), nil
	}
	return int(p[0])<<8 | int(p[1]), nil
}

func (f *fakeOpus) DecodeFEC(p []byte, pcm []int16) (int, error) {
	f.fec++
	return len(pcm), nil
}

func (fakeOpus) PacketSamples(p []byte) (int, error) { return int(p[0])<<8 | int(p[1]), nil }

// simulate sends 20 ms packets for d with each packet's network delay
// drawn by delay (false: lost), plays the buffer on its own clock, and
// returns it and how many packets came before d.
func simulate(t *testing.T, d time.Duration, delay func(i int) (time.Duration, bool)) (*jitterBuffer, int) {
	t.Helper()
	jb := newJitterBuffer(&fakeOpus{})
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []arrival20
	n := int(d / (20 * time.Millisecond))
	seq0, ts0 := uint16(65500), uint32(4294960000) // both wrap during the run
	for i := range n {
		dl, ok := delay(i)
		if !ok {
			continue
		}
		evs = append(evs, arrival20{start.Add(time.Duration(i)*20*time.Millisecond + dl), seq0 + uint16(i), ts0 + uint32(i*960)})
	}
	// Deliver in arrival order.
	for i := 1; i < len(evs); i++ {
		for k := i; k > 0 && evs[k].at.Before(evs[k-1].at); k-- {
			evs[k], evs[k-1] = evs[k-1], evs[k]
		}
	}
	replay(jb, start, start.Add(d), evs)
	came := 0
	for _, e := range evs {
		if e.at.Before(start.Add(d)) {
			came++
		}
	}
	return jb, came
}

// arrival20 is a 20 ms packet arriving at the buffer.
type arrival20 struct {
	at  time.Time
	seq uint16
	ts  uint32
}

// replay delivers evs (in arrival order) to jb from start to end, playing
// whatever falls due in between on the buffer's own clock.
func replay(jb *jitterBuffer, start, end time.Time, evs []arrival20) {
	k := 0
	for now := start; now.Before(end); {
		next := end
		if k < len(evs) {
			next = evs[k].at
		}
		if due, ok := jb.due(); ok && due.Before(next) {
			now = due
			jb.play(now)
			continue
		}
		now = next
		if k < len(evs) {
			jb.push(evs[k].seq, evs[k].ts, []byte{960 >> 8, 960 & 0xff, 0}, now)
			k++
		}
	}
}

func TestJitterBuffer(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	uniform := func(base, jitter time.Duration) func(int) (time.Duration, bool) {
		return func(int) (time.Duration, bool) {
			return base + time.Duration((rng.Float64()*2-1)*float64(jitter)), true
		}
	}
	for _, tc := range []struct {
		name          string
		delay         func(int) (time.Duration, bool)
		maxConcealPct float64
		minRecovered  int64
		maxDelay      time.Duration // at the end
		// minDecodedPct is the share of the packets come by the end that
		// played (the last few have not had their turn yet).
		minDecodedPct float64
	}{
		{"steady", func(int) (time.Duration, bool) { return 30 * time.Millisecond, true }, 0, 0, 60 * time.Millisecond, 98},
		{"jitter ±50 ms", uniform(60*time.Millisecond, 50*time.Millisecond), 2, 0, 150 * time.Millisecond, 95},
		{"jitter ±100 ms", uniform(150*time.Millisecond, 100*time.Millisecond), 3, 0, 260 * time.Millisecond, 95},
		// Lost packets are rebuilt from the next one's FEC, and counted
		// as concealed (libopus cannot say whether FEC was there).
		{"5% loss", func(i int) (time.Duration, bool) { return 30 * time.Millisecond, i%20 != 7 }, 5.5, 25, 60 * time.Millisecond, 98},
		// The first 2 s arrive together at 2 s (a connection that took
		// that long to come up): the delay must not stay 2 s. And 5 s
		// (more than the buffer holds): the clock jumps to what is
		// current.
		{"a burst after a stall", func(i int) (time.Duration, bool) {
			return max(30*time.Millisecond, 2*time.Second-time.Duration(i)*20*time.Millisecond), true
		}, 1, 0, 200 * time.Millisecond, 50},
		{"a 5 s backlog", func(i int) (time.Duration, bool) {
			return max(30*time.Millisecond, 5*time.Second-time.Duration(i)*20*time.Millisecond), true
		}, 1, 0, 200 * time.Millisecond, 30},
		// The path's delay rises by a second and stays (a queue filled,
		// a new route): the old, quicker arrivals no longer say what the
		// path does, and the voice must come back within about the rise,
		// not stay silent while they are in the window.
		{"the delay rises a second and stays", func(i int) (time.Duration, bool) {
			if i < 200 {
				return 30 * time.Millisecond, true
			}
			return 1030 * time.Millisecond, true
		}, 20, 0, 200 * time.Millisecond, 90},
		// A sender whose audio comes at a quarter of real time (its CPU
		// starved: an emulated board beside a loaded build): every packet
		// is later than the one before by 60 ms. The buffer must play
		// what comes, stretched with concealment, not drop it all as late.
		{"a sender at a quarter of real time", func(i int) (time.Duration, bool) {
			return 30*time.Millisecond + time.Duration(i)*60*time.Millisecond, true
		}, 80, 0, 400 * time.Millisecond, 90},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jb, came := simulate(t, 10*time.Second, tc.delay)
			s := jb.stats
			total := s.decoded + s.concealed
			pct := 100 * float64(s.concealed) / float64(total)
			t.Logf("%+v: %.1f%% concealed, delay %v", s, pct, jb.delay())
			if pct > tc.maxConcealPct {
				t.Errorf("%.1f%% concealed, want at most %.1f%%", pct, tc.maxConcealPct)
			}
			if s.fecTried < tc.minRecovered {
				t.Errorf("%d lost packets decoded from the next one's FEC, want at least %d", s.fecTried, tc.minRecovered)
			}
			if total < 4*AudioSampleRate {
				t.Errorf("%d samples played in 10 s", total)
			}
			if pct := 100 * float64(s.decoded) / float64(came*960); pct < tc.minDecodedPct {
				t.Errorf("%.1f%% of the %d packets come played, want at least %.0f%%", pct, came, tc.minDecodedPct)
			}
			if d := jb.delay(); d > tc.maxDelay {
				t.Errorf("delay %v at the end, want at most %v", d, tc.maxDelay)
			}
		})
	}
}

// TestJitterBufferTimestampJump: one packet whose timestamp is off by a
// minute is dropped, not taken for timing (it would make everything else
// look late, or early, for a whole window); a lasting jump (the sender's
// encoder started afresh) restarts the buffer's clock.
func TestJitterBufferTimestampJump(t *testing.T) {
	for _, lasting := range []bool{false, true} {
		jb := newJitterBuffer(&fakeOpus{})
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		payload := []byte{960 >> 8, 960 & 0xff, 0}
		now := start
		ts := uint32(1000)
		for i := range 500 {
			at := start.Add(time.Duration(i)*20*time.Millisecond + 30*time.Millisecond)
			for due, ok := jb.due(); ok && due.Before(at); due, ok = jb.due() {
				jb.play(due)
			}
			now = at
			pts := ts + uint32(i*960)
			if i == 200 || lasting && i > 200 {
				pts += 60 * AudioSampleRate // a minute ahead
			}
			jb.push(uint16(i), pts, payload, now)
		}
		s := jb.stats
		total := s.decoded + s.concealed
		t.Logf("lasting %v: %+v, delay %v", lasting, s, jb.delay())
		if pct := 100 * float64(s.concealed) / float64(total); pct > 3 {
			t.Errorf("lasting %v: %.1f%% concealed", lasting, pct)
		}
		if d := jb.delay(); d > 100*time.Millisecond {
			t.Errorf("lasting %v: delay %v", lasting, d)
		}
	}
}

// TestJitterBufferPauseIsNotConcealment: the sender pauses (DTX: Opus
// sends nothing for a second of silence, the RTP timestamp moves on, the
// sequence does not), then talks again. What the buffer filled in while
// it waited is the sender's silence, not concealment of loss: counted so
// once the next packet in sequence comes on time, even when jitter has it
// come after the one following it (which then must not cost the first
// syllable either). A packet lost just before a pause is still
// concealment.
func TestJitterBufferPauseIsNotConcealment(t *testing.T) {
	for _, tc := range []struct {
		name          string
		lose          int  // the index of a packet lost, or -1
		swap          bool // the first two packets after the pause come the other way round
		wantConcealed bool
		wantDecoded   int // packets
	}{
		{"pause", -1, false, false, 20},
		{"pause, talk resumes reordered", -1, true, false, 20},
		{"loss, then a pause", 9, false, true, 19},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jb := newJitterBuffer(&fakeOpus{})
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var evs []arrival20
			for i := range 20 {
				if i == tc.lose {
					continue
				}
				pause := 0 * time.Second
				if i >= 10 {
					pause = time.Second
				}
				at := start.Add(time.Duration(i)*20*time.Millisecond + pause + 30*time.Millisecond)
				if i == 3 || tc.swap && i == 10 {
					// Jitter the buffer has seen before the pause; 10
					// comes after 11.
					at = at.Add(25 * time.Millisecond)
				}
				evs = append(evs, arrival20{at, uint16(i), uint32(i*960) + uint32(pause.Seconds()*48000)})
			}
			// Up to the last packet's turn (35 ms after it comes, at the
			// delay packet 3 calls for): what the buffer fills in after
			// the stream ends is no part of this.
			slices.SortStableFunc(evs, func(a, b arrival20) int { return a.at.Compare(b.at) })
			// Half-way through the pause, what the buffer filled in is
			// undecided, and counted as nothing yet.
			mid := newJitterBuffer(&fakeOpus{})
			replay(mid, start, start.Add(700*time.Millisecond), evs[:slices.IndexFunc(evs, func(a arrival20) bool { return a.seq == 10 || a.seq == 11 })])
			if c := mid.counts(); c.concealed != 0 || mid.stats.concealed == 0 {
				t.Errorf("half-way through the pause: %d samples counted as concealed of %d filled in, want none yet", c.concealed, mid.stats.concealed)
			}
			replay(jb, start, evs[len(evs)-1].at.Add(45*time.Millisecond), evs)
			st := jb.stats
			t.Logf("decoded %d, concealed %d, silence %d samples", st.decoded, st.concealed, st.silence)
			if (st.concealed > 0) != tc.wantConcealed {
				t.Errorf("concealed %d samples, want concealment %v", st.concealed, tc.wantConcealed)
			}
			if st.decoded != int64(tc.wantDecoded*960) {
				t.Errorf("decoded %d samples, want %d packets' %d", st.decoded, tc.wantDecoded, tc.wantDecoded*960)
			}
		})
	}
}
