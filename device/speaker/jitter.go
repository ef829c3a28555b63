package speaker

// jitterBuffer holds the parent's voice between the goroutine that decodes it
// and the one that plays it: network audio comes in bursts, the hardware takes
// it at a steady pace. It waits for target samples before playing (and after
// running dry), so a late packet does not cut every word; plays silence when
// dry; drops the oldest samples when full, so a burst cannot build up delay;
// and trims back to target after holding more than target+slack for a whole
// window (a sender's fast clock, a burst that never drained), so latency does
// not creep up over a long call. Not safe for concurrent use; Speaker guards it.
type jitterBuffer struct {
	ring      []int16
	r, n      int // read index, samples held
	target    int
	slack     int
	window    int // samples pulled per trimming window
	buffering bool

	windowPulled, windowMin int

	dropped, trimmed, underruns, played int64
}

func newJitterBuffer(capacity, target, slack, window int) *jitterBuffer {
	return &jitterBuffer{
		ring: make([]int16, capacity), target: min(target, capacity), slack: slack, window: window,
		buffering: true, windowMin: capacity,
	}
}

// push copies p in, dropping the oldest samples if it would overflow.
func (j *jitterBuffer) push(p []int16) {
	c := len(j.ring)
	if len(p) > c {
		j.dropped += int64(len(p) - c)
		p = p[len(p)-c:]
	}
	if over := j.n + len(p) - c; over > 0 {
		j.discard(over)
		j.dropped += int64(over)
	}
	w := (j.r + j.n) % c
	k := copy(j.ring[w:], p)
	copy(j.ring, p[k:])
	j.n += len(p)
}

func (j *jitterBuffer) discard(k int) {
	j.r = (j.r + k) % len(j.ring)
	j.n -= k
}

// pull fills out with the next samples and returns how many were voice;
// the rest of out is silence.
func (j *jitterBuffer) pull(out []int16) int {
	if j.buffering {
		if j.n < j.target || j.n == 0 {
			clear(out)
			return 0
		}
		j.buffering = false
	}
	k := min(j.n, len(out))
	c := len(j.ring)
	m := copy(out[:k], j.ring[j.r:min(j.r+k, c)])
	copy(out[m:k], j.ring)
	j.discard(k)
	clear(out[k:])
	j.played += int64(k)
	if k < len(out) {
		j.underruns++
		j.buffering = true
	}
	j.trim(len(out))
	return k
}

// trim tracks the lowest fill level over a window of pulls and, if the
// buffer never came near target during it, drops the excess.
func (j *jitterBuffer) trim(pulled int) {
	j.windowMin = min(j.windowMin, j.n)
	j.windowPulled += pulled
	if j.windowPulled < j.window {
		return
	}
	if excess := j.windowMin - j.target; excess > j.slack && !j.buffering {
		j.discard(excess)
		j.trimmed += int64(excess)
	}
	j.windowPulled, j.windowMin = 0, len(j.ring)
}

// resampler converts the 48 kHz voice to the hardware's rate by linear
// interpolation, for boards whose codec does not run at 48 kHz. Speech
// tolerates it; cues are synthesized at the hardware's rate directly.
type resampler struct {
	step      float64 // input samples per output sample
	phase     float64 // position between prev and cur, 0..1
	prev, cur float64
	in        []int16
}

// fill writes len(out) samples, pulling what it needs from src, and
// returns how many of the pulled samples were voice (not silence).
func (rs *resampler) fill(out []int16, src func([]int16) int) int {
	// Count the input samples the outputs will step over.
	need := int(rs.phase + float64(len(out))*rs.step)
	if cap(rs.in) < need {
		rs.in = make([]int16, need)
	}
	in := rs.in[:need]
	got := src(in)
	k := 0
	for i := range out {
		rs.phase += rs.step
		for rs.phase >= 1 && k < len(in) {
			rs.prev, rs.cur = rs.cur, float64(in[k])
			k++
			rs.phase--
		}
		out[i] = int16(rs.prev + (rs.cur-rs.prev)*rs.phase)
	}
	return got
}
