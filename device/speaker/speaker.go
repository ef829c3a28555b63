package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/tuanju/tuanju/device/alsa"
)

// VoiceRate is the rate of the PCM WritePCM takes: media.AudioSampleRate.
const VoiceRate = 48000

// Player is what the terminal asks of a speaker. *Speaker implements it
// over ALSA; speakertest.Speaker records calls for tests.
type Player interface {
	// PlayCue starts a cue (see Cues), pre-empting any cue playing, and
	// returns at once. An unknown name is logged and ignored.
	PlayCue(cue string)
	// PlayCueWait plays a cue and returns when it has been heard to the
	// end (nil), was cut by another cue or StopCue (ErrInterrupted), ctx
	// ended (ctx's error; the cue plays on), or the speaker closed.
	PlayCueWait(ctx context.Context, cue string) error
	// StopCue fades out the cue playing, if any (a ringing "ring").
	StopCue()
	// WritePCM queues mono 16-bit voice at VoiceRate. It copies pcm and
	// never blocks: it is called on the WebRTC track's goroutine.
	WritePCM(pcm []int16)
	Close() error
}

// Sink is the speaker's hardware edge: a playback stream of interleaved
// 16-bit frames. *alsa.PCM is one.
type Sink interface {
	// Write blocks until the frames are queued for the hardware: its pace
	// is the speaker's clock.
	Write(frames []int16) (int, error)
	// Delay is how many frames written are not yet heard.
	Delay() (int, error)
	// Drop stops the stream; the next Write restarts it.
	Drop() error
	Close() error
}

// Format is what a Sink plays.
type Format struct {
	Rate         int
	Channels     int // 1 or 2; mono is copied to both
	PeriodFrames int // frames per Write
}

// Options configure a Speaker. Zero values take the defaults.
type Options struct {
	// Device is the ALSA playback device for Open ("default").
	Device string
	// Rate is the rate Open asks the hardware for (48000, the voice's).
	Rate int
	// PeriodTime and Periods shape the ALSA buffer for Open (20 ms × 3):
	// their product is the output latency of voice and cues.
	PeriodTime time.Duration
	Periods    int
	// JitterTarget is how much voice is gathered before it plays, and
	// again after the buffer ran dry (60 ms). JitterMax caps the buffer:
	// beyond it the oldest voice is dropped (240 ms).
	JitterTarget, JitterMax time.Duration
	// Duck is the voice's gain while a cue plays (0.5).
	Duck float64
	// IdleAfter is how long the speaker plays silence before it stops the
	// stream until there is something to play again (2 s).
	IdleAfter time.Duration
	Log       *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Device == "" {
		o.Device = "default"
	}
	if o.Rate == 0 {
		o.Rate = VoiceRate
	}
	if o.PeriodTime == 0 {
		o.PeriodTime = 20 * time.Millisecond
	}
	if o.Periods == 0 {
		o.Periods = 3
	}
	if o.JitterTarget == 0 {
		o.JitterTarget = 60 * time.Millisecond
	}
	if o.JitterMax == 0 {
		o.JitterMax = 240 * time.Millisecond
	}
	if o.Duck == 0 {
		o.Duck = 0.5
	}
	if o.IdleAfter == 0 {
		o.IdleAfter = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// fadeTime is the fade applied to a cue cut short.
const fadeTime = 5 * time.Millisecond

// Stats counts what the speaker did.
type Stats struct {
	CuesPlayed, CuesInterrupted int64
	VoicePlayed                 int64 // voice samples (at VoiceRate) played
	VoiceDropped                int64 // dropped on overflow or trimmed for latency
	VoiceUnderruns              int64 // times the voice ran dry mid-stream
	SinkErrors                  int64
	Idle                        bool // stream stopped, nothing to play
}

// Speaker plays cues and voice on a Sink from one goroutine.
type Speaker struct {
	sink   Sink
	format Format
	opts   Options
	log    *slog.Logger

	mu       sync.Mutex
	jb       *jitterBuffer
	rs       *resampler // nil at VoiceRate
	cue      *playing
	tail     []int16 // fade-out of a cut cue, mixed first
	pending  []*playing
	synth    map[string][]int16
	stats    Stats
	closed   bool
	wake     chan struct{}
	stop     chan struct{}
	loopDone chan struct{}
	closeErr error
	once     sync.Once
}

// playing is a cue being played.
type playing struct {
	name    string
	pcm     []int16 // one cycle, mono, at the sink's rate
	pos     int
	loop    bool
	left    int64 // frames it may still play (loops)
	endAt   int64 // sink frame just after its last sample, once written
	done    chan error
	settled bool
}

func (p *playing) finish(err error) {
	if !p.settled {
		p.settled = true
		p.done <- err
	}
}

// Open opens the ALSA playback device opts.Device and starts a Speaker on
// it, mono if the hardware has it, else stereo. A missing device is
// alsa.ErrNoDevice (wrapped).
func Open(opts Options) (*Speaker, error) {
	opts = opts.withDefaults()
	var pcm *alsa.PCM
	var err error
	for _, ch := range []int{1, 2} {
		pcm, err = alsa.Open(opts.Device, alsa.Playback, alsa.Config{
			Channels: ch, Rate: opts.Rate, PeriodTime: opts.PeriodTime, Periods: opts.Periods, Log: opts.Log,
		})
		if !errors.Is(err, alsa.ErrUnsupported) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("speaker: %w", err)
	}
	p := pcm.Params()
	s, err := New(pcm, Format{Rate: p.Rate, Channels: p.Channels, PeriodFrames: p.PeriodFrames}, opts)
	if err != nil {
		pcm.Close()
		return nil, err
	}
	s.log.Info("speaker open", "device", pcm.Addr().String(), "name", pcm.Name(), "rate", p.Rate,
		"channels", p.Channels, "period", p.PeriodTime(), "buffer", p.BufferTime())
	return s, nil
}

// New starts a Speaker on sink, which plays f. The Speaker owns sink and
// closes it.
func New(sink Sink, f Format, opts Options) (*Speaker, error) {
	opts = opts.withDefaults()
	if f.Rate < 8000 || f.Channels < 1 || f.Channels > 2 || f.PeriodFrames < 1 {
		return nil, fmt.Errorf("speaker: sink format %+v unsupported", f)
	}
	frames := func(d time.Duration) int { return int(int64(d) * VoiceRate / int64(time.Second)) }
	s := &Speaker{
		sink: sink, format: f, opts: opts,
		log: opts.Log.With("component", "speaker"),
		jb: newJitterBuffer(frames(opts.JitterMax), frames(opts.JitterTarget),
			frames(40*time.Millisecond), VoiceRate),
		synth:    map[string][]int16{},
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	if f.Rate != VoiceRate {
		s.rs = &resampler{step: float64(VoiceRate) / float64(f.Rate)}
	}
	go s.run()
	return s, nil
}

// Format is what the speaker plays on its sink.
func (s *Speaker) Format() Format { return s.format }

// Stats returns a snapshot of the counters.
func (s *Speaker) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.VoicePlayed = s.jb.played
	st.VoiceDropped = s.jb.dropped + s.jb.trimmed
	st.VoiceUnderruns = s.jb.underruns
	return st
}

// PlayCue implements Player.
func (s *Speaker) PlayCue(cue string) {
	if _, err := s.start(cue); err != nil {
		s.log.Warn("cue not played", "cue", cue, "err", err)
	}
}

// PlayCueWait implements Player.
func (s *Speaker) PlayCueWait(ctx context.Context, cue string) error {
	p, err := s.start(cue)
	if err != nil {
		return err
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("speaker: waiting for %s: %w", cue, ctx.Err())
	}
}

func (s *Speaker) start(cue string) (*playing, error) {
	c, ok := cues[cue]
	if !ok {
		return nil, fmt.Errorf("speaker: cue %q: %w", cue, ErrUnknownCue)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	pcm, ok := s.synth[cue]
	if !ok {
		var err error
		if pcm, err = Synthesize(cue, s.format.Rate); err != nil {
			return nil, err
		}
		s.synth[cue] = pcm
	}
	s.cutLocked()
	p := &playing{name: cue, pcm: pcm, loop: c.loopFor > 0, done: make(chan error, 1)}
	if p.loop {
		p.left = int64(c.loopFor) * int64(s.format.Rate) / int64(time.Second)
	}
	s.cue = p
	s.log.Debug("cue", "cue", cue)
	s.poke()
	return p, nil
}

// StopCue implements Player.
func (s *Speaker) StopCue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutLocked()
}

// cutLocked ends the cue playing with a short fade.
func (s *Speaker) cutLocked() {
	p := s.cue
	if p == nil {
		return
	}
	s.cue = nil
	n := int(int64(fadeTime) * int64(s.format.Rate) / int64(time.Second))
	s.tail = s.tail[:0]
	for i := range n {
		pos := p.pos + i
		if pos >= len(p.pcm) {
			if !p.loop {
				break
			}
			pos %= len(p.pcm)
		}
		g := 0.5 + 0.5*math.Cos(math.Pi*float64(i)/float64(n))
		s.tail = append(s.tail, int16(float64(p.pcm[pos])*g))
	}
	s.stats.CuesInterrupted++
	p.finish(fmt.Errorf("speaker: %s: %w", p.name, ErrInterrupted))
}

// WritePCM implements Player.
func (s *Speaker) WritePCM(pcm []int16) {
	s.mu.Lock()
	s.jb.push(pcm)
	s.poke()
	s.mu.Unlock()
}

func (s *Speaker) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close stops playback (a cue playing is cut; PlayCueWait returns
// ErrClosed), waits for the playback goroutine and closes the sink.
func (s *Speaker) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		for _, p := range append(s.pending, s.cue) {
			if p != nil {
				p.finish(ErrClosed)
			}
		}
		s.cue, s.pending = nil, nil
		s.mu.Unlock()
		close(s.stop)
		// Closing the sink unblocks a Write in progress.
		if err := s.sink.Close(); err != nil {
			s.closeErr = fmt.Errorf("speaker: close: %w", err)
		}
		<-s.loopDone
	})
	return s.closeErr
}

// run is the playback goroutine: one period per iteration, paced by the
// sink's blocking Write.
func (s *Speaker) run() {
	defer close(s.loopDone)
	f := s.format
	mono := make([]int16, f.PeriodFrames)
	out := mono
	if f.Channels == 2 {
		out = make([]int16, 2*f.PeriodFrames)
	}
	idleLimit := int64(s.opts.IdleAfter) * int64(f.Rate) / int64(time.Second)
	var written, idle int64
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		s.mu.Lock()
		audible := s.renderLocked(mono, written)
		s.mu.Unlock()
		if audible {
			idle = 0
		} else if idle += int64(len(mono)); idle > idleLimit && !s.hasPending() {
			// IdleAfter of silence has been written: this period (silence
			// too) is not needed.
			if !s.sleep() {
				return
			}
			idle = 0
			continue
		}
		if f.Channels == 2 {
			for i, v := range mono {
				out[2*i], out[2*i+1] = v, v
			}
		}
		n, err := s.sink.Write(out)
		written += int64(n)
		if err != nil {
			select {
			case <-s.stop:
				return
			default:
			}
			s.mu.Lock()
			s.stats.SinkErrors++
			s.mu.Unlock()
			s.log.Error("speaker write", "err", err)
			// Do not spin on a broken sink; try again a period later.
			select {
			case <-s.stop:
				return
			case <-time.After(time.Duration(f.PeriodFrames) * time.Second / time.Duration(f.Rate)):
			}
			continue
		}
		s.settle(written)
	}
}

func (s *Speaker) hasPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) > 0
}

// sleep stops the stream and waits for something to play; false means
// the speaker is closing.
func (s *Speaker) sleep() bool {
	if err := s.sink.Drop(); err != nil {
		s.log.Warn("speaker idle: drop", "err", err)
	}
	s.mu.Lock()
	s.stats.Idle = true
	s.mu.Unlock()
	s.log.Debug("speaker idle")
	defer func() {
		s.mu.Lock()
		s.stats.Idle = false
		s.mu.Unlock()
	}()
	for {
		select {
		case <-s.stop:
			return false
		case <-s.wake:
			s.mu.Lock()
			busy := s.cue != nil || s.jb.n > 0
			s.mu.Unlock()
			if busy {
				return true
			}
		}
	}
}

// renderLocked fills mono with the next period: voice from the jitter
// buffer, ducked under the cue (and the fade of a cut cue) if one plays.
// base is the sink frame mono starts at. It reports whether anything but
// silence was rendered.
func (s *Speaker) renderLocked(mono []int16, base int64) bool {
	var voice int
	if s.rs != nil {
		voice = s.rs.fill(mono, s.jb.pull)
	} else {
		voice = s.jb.pull(mono)
	}
	p := s.cue
	if p == nil && len(s.tail) == 0 {
		return voice > 0
	}
	duck := s.opts.Duck
	for i := range mono {
		v := float64(mono[i]) * duck
		if i < len(s.tail) {
			v += float64(s.tail[i])
		}
		if p != nil {
			if p.pos == len(p.pcm) && p.loop && p.left > 0 {
				p.pos = 0
			}
			if p.pos < len(p.pcm) {
				v += float64(p.pcm[p.pos])
				p.pos++
				p.left--
				if p.pos == len(p.pcm) && (!p.loop || p.left <= 0) {
					// Its last sample: heard once the sink has played
					// up to here.
					p.endAt = base + int64(i) + 1
					s.pending = append(s.pending, p)
					s.cue, p = nil, nil
					s.stats.CuesPlayed++
				}
			}
		}
		mono[i] = clip(v)
	}
	s.tail = s.tail[min(len(s.tail), len(mono)):]
	return true
}

// settle tells waiting PlayCueWait callers their cue has been heard: the
// sink has played everything up to the cue's last sample.
func (s *Speaker) settle(written int64) {
	s.mu.Lock()
	n := len(s.pending)
	s.mu.Unlock()
	if n == 0 {
		return
	}
	delay, err := s.sink.Delay()
	if err != nil {
		s.log.Warn("speaker delay", "err", err)
		delay = 0
	}
	heard := written - int64(delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.pending[:0]
	for _, p := range s.pending {
		if p.endAt <= heard {
			p.finish(nil)
		} else {
			keep = append(keep, p)
		}
	}
	s.pending = keep
}

func clip(v float64) int16 {
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}
