package speaker_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tuanju/tuanju/device/speaker"
	"github.com/tuanju/tuanju/device/speaker/speakertest"
	"github.com/tuanju/tuanju/tests/audiotest"
)

const period = 960 // 20 ms at 48 kHz

var mono48k = speaker.Format{Rate: 48000, Channels: 1, PeriodFrames: period}

// rig is a Speaker on a fake sink whose writes the test takes one period
// at a time; everything runs in a synctest bubble, so "the speaker is
// waiting" is observable (synctest.Wait) and no test sleeps.
type rig struct {
	t    *testing.T
	sink *speakertest.Sink
	spk  *speaker.Speaker
	out  []int16 // everything played so far
}

func newRig(t *testing.T, f speaker.Format, opts speaker.Options) *rig {
	t.Helper()
	sink := speakertest.NewSink()
	spk, err := speaker.New(sink, f, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := spk.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &rig{t: t, sink: sink, spk: spk}
}

// next takes one period from the speaker.
func (r *rig) next() []int16 {
	r.t.Helper()
	p, err := r.sink.Next(r.t.Context())
	if err != nil {
		r.t.Fatalf("no period from the speaker: %v", err)
	}
	r.out = append(r.out, p...)
	return p
}

// waitResult plays periods until done delivers, returning how many frames
// had been taken when it did, and the error.
func (r *rig) waitResult(done <-chan error, maxPeriods int) (int, error) {
	r.t.Helper()
	for range maxPeriods {
		r.next()
		synctest.Wait()
		select {
		case err := <-done:
			return len(r.out), err
		default:
		}
	}
	r.t.Fatalf("no result after %d periods", maxPeriods)
	return 0, nil
}

// TestCueHeardBeforeWaitReturns plays "connected" with the sink holding
// 3 periods unplayed (ALSA's buffer): PlayCueWait must return only once
// those frames have been played too, and the output is the cue, sample
// for sample.
func TestCueHeardBeforeWaitReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, mono48k, speaker.Options{})
		const delay = 3 * period
		r.sink.SetDelay(delay)
		r.next() // the speaker runs (silence) before any cue
		done := make(chan error, 1)
		go func() { done <- r.spk.PlayCueWait(context.Background(), speaker.CueConnected) }()
		synctest.Wait()
		taken, err := r.waitResult(done, 100)
		if err != nil {
			t.Fatalf("PlayCueWait = %v", err)
		}
		want, _ := speaker.Synthesize(speaker.CueConnected, 48000)
		start := audiotest.Find(r.out, want)
		if start < 0 {
			t.Fatal("the cue is not in the output")
		}
		if got := r.out[start:min(len(r.out), start+len(want))]; !slices.Equal(got, want) {
			t.Fatal("the output differs from the synthesized cue")
		}
		end := start + len(want)
		// Released in the settle after the write that made end+delay
		// frames taken, observed at the latest one period later.
		if taken < end+delay || taken > end+delay+2*period {
			t.Errorf("PlayCueWait returned with %d frames taken; cue ends at %d, heard at %d", taken, end, end+delay)
		}
		if st := r.spk.Stats(); st.CuesPlayed != 1 || st.CuesInterrupted != 0 {
			t.Errorf("stats %+v, want 1 cue played", st)
		}
	})
}

// TestVoice checks the parent's voice comes out unchanged once the jitter
// target is buffered, that it is ducked under a cue, and that a dry buffer
// plays silence.
func TestVoice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, mono48k, speaker.Options{JitterTarget: 40 * time.Millisecond})
		r.next()
		voice := audiotest.Tone(48000, 48000, 300, 8000, 20)
		// 40 ms arrives (the target), then 20 ms per period.
		r.spk.WritePCM(voice[:2*period])
		fed := 2 * period
		synctest.Wait()
		var got []int16
		for fed < 20*period {
			got = append(got, r.next()...)
			r.spk.WritePCM(voice[fed : fed+period])
			fed += period
			synctest.Wait()
		}
		at := audiotest.Find(got, voice)
		if at < 0 {
			t.Fatal("voice not in the output")
		}
		if n := min(len(got)-at, 15*period); !slices.Equal(got[at:at+n], voice[:n]) {
			t.Errorf("voice altered on the way through (%d samples compared)", n)
		}

		// A cue over the voice: output = cue + voice/2.
		r.spk.PlayCue(speaker.CueRefused)
		synctest.Wait()
		cue, _ := speaker.Synthesize(speaker.CueRefused, 48000)
		var mixed []int16
		for len(mixed) < len(cue)+2*period {
			mixed = append(mixed, r.next()...)
			r.spk.WritePCM(voice[fed : fed+period])
			fed += period
			synctest.Wait()
		}
		// mixed[0] carries voice sample len(got)-at; the cue starts within
		// the first periods.
		ok := false
		for off := 0; off < 4*period && !ok; off++ {
			ok = matchMix(mixed, cue, voice, off, len(got)-at)
		}
		if !ok {
			t.Error("output during the cue is not cue + voice/2")
		}

		// Stop feeding: after the buffered voice, silence.
		var tail []int16
		for range 10 {
			tail = append(tail, r.next()...)
		}
		if p := audiotest.Peak(tail[len(tail)-3*period:]); p != 0 {
			t.Errorf("output after the voice ran out peaks at %d, want silence", p)
		}
		if st := r.spk.Stats(); st.VoiceUnderruns < 1 {
			t.Errorf("stats %+v: the voice ran dry but no underrun counted", st)
		}
	})
}

// matchMix reports whether mixed[off:] is cue + voice[v0+off:]/2 for the
// cue's length (mixed[0] carrying voice[v0]).
func matchMix(mixed, cue, voice []int16, off, v0 int) bool {
	if off+len(cue) > len(mixed) || v0+off+len(cue) > len(voice) {
		return false
	}
	for i, c := range cue {
		want := float64(c) + float64(voice[v0+off+i])*0.5
		if math.Abs(float64(mixed[off+i])-want) > 1 {
			return false
		}
	}
	return true
}

// TestCuePreemption checks a new cue cuts the ringing one (whose waiter
// learns it was interrupted) and StopCue silences a cue.
func TestCuePreemption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, mono48k, speaker.Options{})
		r.next()
		ring := make(chan error, 1)
		go func() { ring <- r.spk.PlayCueWait(context.Background(), speaker.CueRing) }()
		synctest.Wait()
		for range 10 {
			r.next()
		}
		r.spk.PlayCue(speaker.CueConnected)
		synctest.Wait()
		select {
		case err := <-ring:
			if !errors.Is(err, speaker.ErrInterrupted) {
				t.Errorf("ring's PlayCueWait = %v, want ErrInterrupted", err)
			}
		default:
			t.Fatal("ring's PlayCueWait still waiting after connected pre-empted it")
		}
		mark := len(r.out)
		for range 40 {
			r.next()
		}
		// Its first 5 ms carry ring's fade-out: compare after that.
		connected, _ := speaker.Synthesize(speaker.CueConnected, 48000)
		if audiotest.Find(r.out[mark:], connected[300:]) < 0 {
			t.Error("connected not played after pre-empting ring")
		}

		// StopCue: ring is silent a fade later.
		go func() { ring <- r.spk.PlayCueWait(context.Background(), speaker.CueRing) }()
		synctest.Wait()
		for range 5 {
			r.next()
		}
		r.spk.StopCue()
		synctest.Wait()
		if err := <-ring; !errors.Is(err, speaker.ErrInterrupted) {
			t.Errorf("PlayCueWait after StopCue = %v, want ErrInterrupted", err)
		}
		r.next()                                         // rendered before StopCue
		if p := audiotest.Peak(r.next()[240:]); p != 0 { // the 5 ms fade, then nothing
			t.Errorf("after StopCue's 5 ms fade the output peaks at %d, want silence", p)
		}
		var after []int16
		for range 5 {
			after = append(after, r.next()...)
		}
		if p := audiotest.Peak(after); p != 0 {
			t.Errorf("after StopCue the output peaks at %d, want silence", p)
		}
		if err := r.spk.PlayCueWait(t.Context(), "bogus"); !errors.Is(err, speaker.ErrUnknownCue) {
			t.Errorf("PlayCueWait(bogus) = %v, want ErrUnknownCue", err)
		}
	})
}

// TestRingLoops checks ring repeats (a child may be across the room).
func TestRingLoops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, mono48k, speaker.Options{})
		r.next()
		r.spk.PlayCue(speaker.CueRing)
		synctest.Wait()
		cycle, _ := speaker.Synthesize(speaker.CueRing, 48000)
		for len(r.out) < 3*len(cycle)+2*period {
			r.next()
		}
		first := audiotest.Find(r.out, cycle)
		if first < 0 {
			t.Fatal("ring not played")
		}
		for k := 1; k < 3; k++ {
			at := first + k*len(cycle)
			if !slices.Equal(r.out[at:at+len(cycle)], cycle) {
				t.Errorf("ring cycle %d is not a repeat of the first", k+1)
			}
		}
	})
}

// TestIdleStopsStream checks the speaker stops the stream after IdleAfter
// of silence, wakes for a cue, and closes cleanly while idle.
func TestIdleStopsStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, mono48k, speaker.Options{IdleAfter: 200 * time.Millisecond})
		for range 9 {
			r.next()
		}
		synctest.Wait()
		if r.sink.Drops() != 0 {
			t.Fatal("stream stopped before IdleAfter")
		}
		r.next() // the 10th silent period reaches 200 ms
		synctest.Wait()
		if r.sink.Drops() != 1 || !r.spk.Stats().Idle {
			t.Fatalf("after 200 ms of silence: %d drops, idle %v; want the stream stopped", r.sink.Drops(), r.spk.Stats().Idle)
		}
		done := make(chan error, 1)
		go func() { done <- r.spk.PlayCueWait(context.Background(), speaker.CueRefused) }()
		synctest.Wait()
		if _, err := r.waitResult(done, 50); err != nil {
			t.Fatalf("cue after idle: %v", err)
		}
		cue, _ := speaker.Synthesize(speaker.CueRefused, 48000)
		if audiotest.Find(r.out, cue) < 0 {
			t.Error("cue after idle not played")
		}
	})
}

// TestCloseEndsWaiters checks Close returns with a cue playing and a
// PlayCueWait pending, which then sees ErrClosed.
func TestCloseEndsWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := speakertest.NewSink()
		spk, err := speaker.New(sink, mono48k, speaker.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Next(t.Context()); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- spk.PlayCueWait(context.Background(), speaker.CueRing) }()
		synctest.Wait()
		if err := spk.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-done; !errors.Is(err, speaker.ErrClosed) {
			t.Errorf("PlayCueWait after Close = %v, want ErrClosed", err)
		}
		if err := spk.PlayCueWait(t.Context(), speaker.CueRing); !errors.Is(err, speaker.ErrClosed) {
			t.Errorf("PlayCueWait on a closed speaker = %v, want ErrClosed", err)
		}
		if err := spk.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
	})
}

// TestOtherFormats runs a stereo 44.1 kHz sink: channels carry the same
// samples, the cue is made at 44.1 kHz and the voice resampled to it.
func TestOtherFormats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := speaker.Format{Rate: 44100, Channels: 2, PeriodFrames: 882}
		r := newRig(t, f, speaker.Options{})
		r.next()
		voice := audiotest.Tone(48000, 48000, 500, 8000, 0)
		fed := 0
		feed := func() { // 20 ms of voice per 20 ms period, as a call delivers it
			r.spk.WritePCM(voice[fed : fed+960])
			fed += 960
			synctest.Wait()
		}
		feed()
		feed()
		feed()
		r.spk.PlayCue(speaker.CueConnected)
		synctest.Wait()
		for range 40 {
			r.next()
			feed()
		}
		left, right := audiotest.Deinterleave(r.out, 2, 0), audiotest.Deinterleave(r.out, 2, 1)
		if !slices.Equal(left, right) {
			t.Fatal("stereo channels differ")
		}
		// After the cue (~0.45 s), only the voice: 500 Hz at 44.1 kHz.
		tail := left[len(left)-8*882:]
		if fz := audiotest.ZeroCrossingFreq(tail, 44100); math.Abs(fz-500) > 2 {
			t.Errorf("resampled voice at %.1f Hz, want 500", fz)
		}
		// The cue's G5 sounds at 44.1 kHz.
		notes, _, _ := speaker.Timeline(speaker.CueConnected)
		if notes[0].Freq < 780 || notes[0].Freq > 790 {
			t.Fatalf("connected starts with %.0f Hz, test assumes G5", notes[0].Freq)
		}
		head := left[:len(left)-8*882]
		if audiotest.Goertzel(head, 44100, notes[0].Freq) < 20*audiotest.Goertzel(head, 44100, 700) {
			t.Error("no G5 in the output at 44.1 kHz")
		}
	})
}

func TestNewRejectsBadFormat(t *testing.T) {
	for _, f := range []speaker.Format{{Rate: 48000, Channels: 3, PeriodFrames: 960}, {Rate: 0, Channels: 1, PeriodFrames: 960}, {Rate: 48000, Channels: 1}} {
		if s, err := speaker.New(speakertest.NewSink(), f, speaker.Options{}); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded", f)
		}
	}
}
