package synth

// splitmix is SplitMix64: tiny, fast and well mixed, so a scene is a pure
// function of its seed and frame number on every architecture (math/rand/v2's
// generators would do, but their streams are not promised to stay the same
// across Go releases, and a benchmark's reference frames must).
type splitmix struct{ s uint64 }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// float returns a number in [0, 1).
func (r *splitmix) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// between returns a number in [lo, hi).
func (r *splitmix) between(lo, hi float64) float64 { return lo + (hi-lo)*r.float() }

// intn returns a number in [0, n).
func (r *splitmix) intn(n int) int { return int(r.next() % uint64(n)) }

// mix derives an independent generator from a seed and a few labels (event
// kind, slot number, frame number).
func mix(seed uint64, labels ...uint64) *splitmix {
	r := &splitmix{s: seed}
	for _, l := range labels {
		r.s ^= l * 0xd1b54a32d192ed03
		r.next()
	}
	return r
}
