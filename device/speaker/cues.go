package speaker

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Cue names: the strings of internal/call's Cue constants (a test checks
// they agree).
const (
	CueCalling   = "calling"
	CueRing      = "ring"
	CueConnected = "connected"
	CueNoAnswer  = "no_answer"
	CueHangup    = "hangup"
	CueRefused   = "refused"
	CueReset     = "reset"
	CuePaired    = "paired"
	// CueUnreachable: the child's call reached nobody; CueDropped: a call
	// ended without anyone hanging up.
	CueUnreachable = "unreachable"
	CueDropped     = "dropped"
	// CueConnectedVoice: the connect sound of a call the data budget keeps
	// to voice.
	CueConnectedVoice = "connected_voice"
)

// Note frequencies (equal temperament, A4 = 440 Hz).
const (
	noteD4 = 293.66
	noteE4 = 329.63
	noteA4 = 440.00
	noteC5 = 523.25
	noteE5 = 659.26
	noteG5 = 783.99
	noteC6 = 1046.50
)

// Note is one tone of a cue: Freq 0 is a rest.
type Note struct {
	Freq  float64
	Start time.Duration // from the start of the cue's cycle
	Dur   time.Duration
}

type shape int

const (
	pluck shape = iota // 5 ms attack, exponential decay: a bell or marimba
	swell              // raised cosine over the whole note: soft
)

type tone struct {
	freq  float64
	dur   time.Duration
	amp   float64 // of full scale
	shape shape
}

func rest(d time.Duration) tone { return tone{dur: d} }

const ms = time.Millisecond

// cue is one cue's score.
type cue struct {
	tones []tone
	// loopFor, when set, repeats the cycle for at most this long: the
	// call's RingTimeout (45 s) and IncomingTimeout / PairConfirmTimeout
	// (60 s), so a forgotten StopCue cannot ring forever.
	loopFor time.Duration
}

var cues = map[string]cue{
	CueRing: {loopFor: 60 * time.Second, tones: []tone{
		{noteE5, 140 * ms, 0.35, pluck}, {noteG5, 140 * ms, 0.35, pluck}, {noteC6, 280 * ms, 0.35, pluck},
		rest(120 * ms),
		{noteE5, 140 * ms, 0.35, pluck}, {noteG5, 140 * ms, 0.35, pluck}, {noteC6, 280 * ms, 0.35, pluck},
		rest(1400 * ms),
	}},
	CueCalling: {loopFor: 45 * time.Second, tones: []tone{
		{noteA4, 400 * ms, 0.25, swell}, rest(200 * ms), {noteA4, 400 * ms, 0.25, swell}, rest(2000 * ms),
	}},
	CueConnected: {tones: []tone{{noteG5, 120 * ms, 0.35, pluck}, {noteC6, 320 * ms, 0.35, pluck}}},
	// CueConnectedVoice: "connected", then a soft low note held after it:
	// the call is on, and it is different this time (voice only, the
	// month's data is used up). Starts as "connected" does, so the child
	// knows the parent is there.
	CueConnectedVoice: {tones: []tone{{noteG5, 120 * ms, 0.35, pluck}, {noteC6, 320 * ms, 0.35, pluck}, rest(80 * ms), {noteC5, 500 * ms, 0.30, swell}}},
	CueHangup:         {tones: []tone{{noteC6, 120 * ms, 0.30, pluck}, {noteG5, 320 * ms, 0.30, pluck}}},
	CueNoAnswer: {tones: []tone{
		{noteE5, 220 * ms, 0.28, swell}, {noteC5, 220 * ms, 0.28, swell}, {noteA4, 450 * ms, 0.28, swell},
	}},
	// CueReset: held long enough, let go to reset. Falling, slow, unlike
	// anything a call plays.
	CueReset:   {tones: []tone{{noteC6, 250 * ms, 0.30, swell}, {noteG5, 250 * ms, 0.30, swell}, {noteE5, 250 * ms, 0.30, swell}, {noteC5, 500 * ms, 0.30, swell}}},
	CueRefused: {tones: []tone{{noteE4, 90 * ms, 0.30, swell}, rest(60 * ms), {noteE4, 90 * ms, 0.30, swell}}},
	// CuePaired: a rising arpeggio, brighter and longer than "connected":
	// something good happened for good.
	CuePaired: {tones: []tone{{noteC5, 120 * ms, 0.32, pluck}, {noteE5, 120 * ms, 0.32, pluck}, {noteG5, 120 * ms, 0.32, pluck}, {noteC6, 420 * ms, 0.32, pluck}}},
	// CueUnreachable: two low, soft notes falling a fifth, with a breath
	// between: nobody is there now. Lower and slower than "no answer",
	// nothing like the calling tone.
	CueUnreachable: {tones: []tone{{noteA4, 320 * ms, 0.28, swell}, rest(100 * ms), {noteD4, 600 * ms, 0.28, swell}}},
	// CueDropped: three quick falling plucks, the last cut short: the call
	// broke off. Unlike the two-note hang-up.
	CueDropped: {tones: []tone{{noteC6, 100 * ms, 0.30, pluck}, rest(40 * ms), {noteG5, 100 * ms, 0.30, pluck}, rest(40 * ms), {noteC5, 160 * ms, 0.30, pluck}}},
}

// Cues returns the cue names, sorted.
func Cues() []string {
	names := make([]string, 0, len(cues))
	for n := range cues {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Timeline returns the notes of one cycle of a cue, and whether the cue
// repeats (and for how long at most).
func Timeline(name string) (notes []Note, loopFor time.Duration, err error) {
	c, ok := cues[name]
	if !ok {
		return nil, 0, fmt.Errorf("speaker: cue %q: %w", name, ErrUnknownCue)
	}
	var at time.Duration
	for _, t := range c.tones {
		notes = append(notes, Note{Freq: t.freq, Start: at, Dur: t.dur})
		at += t.dur
	}
	return notes, c.loopFor, nil
}

// Synthesize returns one cycle of a cue as mono 16-bit PCM at rate.
func Synthesize(name string, rate int) ([]int16, error) {
	c, ok := cues[name]
	if !ok {
		return nil, fmt.Errorf("speaker: cue %q: %w", name, ErrUnknownCue)
	}
	if rate < 8000 || rate > 384000 {
		return nil, fmt.Errorf("speaker: synthesize at %d Hz: unsupported rate", rate)
	}
	var out []int16
	for _, t := range c.tones {
		out = t.render(out, rate)
	}
	return out, nil
}

// render appends the tone at rate. Every note starts and ends at zero
// (attack and release ramps), so notes and rests join without clicks.
func (t tone) render(out []int16, rate int) []int16 {
	n := int(int64(t.dur) * int64(rate) / int64(time.Second))
	if t.freq == 0 {
		return append(out, make([]int16, n)...)
	}
	r := float64(rate)
	attack := min(0.005*r, float64(n)/4)
	release := min(0.010*r, float64(n)/4)
	tau := float64(n) / 4 // pluck decay: ~e⁻⁴ by the note's end
	for i := range n {
		x := float64(i)
		var env float64
		switch t.shape {
		case pluck:
			env = math.Exp(-x / tau)
			if x < attack {
				env *= 0.5 - 0.5*math.Cos(math.Pi*x/attack)
			}
		case swell:
			env = 0.5 - 0.5*math.Cos(2*math.Pi*x/float64(n))
		}
		if left := float64(n-1) - x; left < release {
			env *= 0.5 - 0.5*math.Cos(math.Pi*left/release)
		}
		w := 2 * math.Pi * t.freq * x / r
		v := math.Sin(w) + 0.2*math.Sin(2*w)
		out = append(out, int16(math.Round(32767*t.amp*env*v/1.2)))
	}
	return out
}
