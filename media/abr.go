package media

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// BandwidthEstimate is what the ABR follows: the rate the connection may
// send at, in bit/s of RTP. *Bandwidth (BandwidthOf) is one.
type BandwidthEstimate interface {
	TargetBitrate() int
}

// ABRConfig configures Capture.StartABR.
type ABRConfig struct {
	// Ladder lists what the call may send, best first, normally ending
	// with an audio-only step (Video false). Steps asking for more video
	// bitrate than the capture's own profile are left out (the camera
	// was opened for that profile; nothing is scaled up), and each step's
	// picture is the camera's scaled to the step's width, keeping the
	// camera's aspect.
	Ladder []Profile
	// Bandwidth is the estimate to follow.
	Bandwidth BandwidthEstimate
	// Interval is how often the estimate is looked at; 0 means 500 ms.
	Interval time.Duration
	// Policy tunes the stepping; zero fields take DefaultABRPolicy's.
	Policy ABRPolicy
	Log    *slog.Logger
}

// ABRPolicy says when the ABR changes step.
//
// Within a step, the encoder's bitrate follows the estimate between the
// step's floor and its own rate, so congestion is answered at once. Below
// the floor for DownAfter, the ABR steps down, to the best step the
// estimate affords (at once below half the floor). It steps up one step
// when the estimate has afforded the next step's rate (halfway from its
// floor to its own) for UpAfter, or, out of audio only, when the path has
// shown no congestion for UpAfter (a probe: the step then stays unless the
// path shows congestion, for UpTrial). With an estimate that
// can say whether the path itself shows congestion (*Bandwidth:
// pathmonitor.go), a low estimate on an uncongested path holds the step
// and its rate instead of stepping down.
// A step up that has to be taken back within UpTrial doubles UpAfter (up
// to UpAfterMax): while the call sends less than the link carries the
// estimate only creeps up, so a link that cannot carry the next step
// would otherwise be tried every few seconds, the picture changing with
// each try. A step up that holds for UpTrial resets it, and it halves
// back after each 2×UpAfter without a step down.
type ABRPolicy struct {
	// Headroom is the share of the estimate the call plans to use (the
	// rest covers video's RTP headers, retransmissions and the encoder's
	// overshoot on key frames).
	Headroom   float64
	DownAfter  time.Duration
	UpAfter    time.Duration
	UpAfterMax time.Duration
	UpTrial    time.Duration
}

// DefaultABRPolicy is the policy ABRConfig's zero fields take.
var DefaultABRPolicy = ABRPolicy{
	Headroom:   0.9,
	DownAfter:  time.Second,
	UpAfter:    4 * time.Second,
	UpAfterMax: 64 * time.Second,
	UpTrial:    15 * time.Second,
}

// rtpHeaderBits is an RTP packet's header with its extensions (mid,
// transport-wide sequence number), in bits: part of what the estimate
// counts. Audio pays it 50 times a second at 20 ms frames.
const rtpHeaderBits = 24 * 8

// ABRStep is where the ABR stands.
type ABRStep struct {
	Index  int    // into the ladder as used (steps above the capture's profile left out)
	Name   string // the step's profile name
	Video  bool   // video is sent
	Rate   int    // the video encoder's bitrate now (0 without video)
	Width  int    // the coded picture
	Height int
	FPS    float64
	Target int // the estimate it was set for
	// Changes counts step changes since the start.
	Changes int
}

// ABR steps a capture along a ladder as the connection's bandwidth
// estimate moves (congestion.go): encoder bitrate, then frame rate,
// picture size, and finally no video at all; and back up when the
// network recovers.
type ABR struct {
	c    *Capture
	cfg  ABRConfig
	log  *slog.Logger
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	state abrState
	step  ABRStep
}

// abrRung is one ladder step as this capture can send it.
type abrRung struct {
	p             Profile
	width, height int
	fps           float64
	floor         int // the lowest video rate before stepping down
	audioCost     int // audio bitrate with its RTP headers
}

// StartABR starts following cfg.Bandwidth until Stop or Close. It is an
// error to start two on one capture.
func (c *Capture) StartABR(cfg ABRConfig) (*ABR, error) {
	if cfg.Bandwidth == nil {
		return nil, errors.New("media: abr: no bandwidth estimate")
	}
	rungs, err := c.abrRungs(cfg.Ladder)
	if err != nil {
		return nil, err
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	cfg.Policy = cfg.Policy.withDefaults()
	log := cfg.Log
	if log == nil {
		log = c.log
	}
	a := &ABR{c: c, cfg: cfg, log: log.With("component", "abr"), stop: make(chan struct{}), done: make(chan struct{}),
		state: abrState{rungs: rungs, policy: cfg.Policy, upWait: cfg.Policy.UpAfter, rate: -1}}
	c.abrMu.Lock()
	if c.abr != nil || c.closing.Load() {
		c.abrMu.Unlock()
		return nil, errors.New("media: abr: already running, or the capture is closed")
	}
	c.abr = a
	c.abrMu.Unlock()
	a.tick(time.Now())
	go a.run()
	return a, nil
}

func (p ABRPolicy) withDefaults() ABRPolicy {
	d := DefaultABRPolicy
	if p.Headroom > 0 && p.Headroom <= 1 {
		d.Headroom = p.Headroom
	}
	if p.DownAfter > 0 {
		d.DownAfter = p.DownAfter
	}
	if p.UpAfter > 0 {
		d.UpAfter = p.UpAfter
	}
	if p.UpAfterMax > 0 {
		d.UpAfterMax = p.UpAfterMax
	}
	if p.UpTrial > 0 {
		d.UpTrial = p.UpTrial
	}
	d.UpAfterMax = max(d.UpAfterMax, d.UpAfter)
	return d
}

// abrRungs fits the ladder to the capture: steps above its profile out,
// sizes scaled from the camera's, frame rates no higher than the camera's.
func (c *Capture) abrRungs(ladder []Profile) ([]abrRung, error) {
	src := c.profile
	var rungs []abrRung
	for _, p := range ladder {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("media: abr: %w", err)
		}
		if p.Video && (!src.Video || p.VideoBitrate > src.VideoBitrate) {
			continue
		}
		// The audio frame is the capture's: a live Opus encoder keeps it.
		r := abrRung{p: p, audioCost: p.AudioBitrate + int(time.Second/src.AudioFrame)*rtpHeaderBits}
		if p.Video {
			r.width, r.height = scaledSize(src.Width, src.Height, p.Width)
			r.fps = float64(min(p.FPS, src.FPS))
		}
		rungs = append(rungs, r)
	}
	if len(rungs) == 0 {
		return nil, fmt.Errorf("media: abr: no ladder step fits profile %q", src.Name)
	}
	// A step's floor is the next video step's rate: below it, that step
	// does as well with less. The last video step's floor is 3/4 of its
	// rate, below which the call goes audio only.
	for i := range rungs {
		if !rungs[i].p.Video {
			continue
		}
		rungs[i].floor = rungs[i].p.VideoBitrate * 3 / 4
		for j := i + 1; j < len(rungs); j++ {
			if rungs[j].p.Video {
				rungs[i].floor = min(rungs[j].p.VideoBitrate, rungs[i].p.VideoBitrate)
				break
			}
		}
	}
	return rungs, nil
}

// scaledSize is w×h scaled to width (never up), even, at least 16×16.
func scaledSize(w, h, width int) (int, int) {
	if width <= 0 || width >= w || w <= 0 {
		return w, h
	}
	sh := (h*width/w + 1) &^ 1
	return max(width&^1, 16), max(sh, 16)
}

// Step returns where the ABR stands.
func (a *ABR) Step() ABRStep {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.step
}

// Limit keeps the call at or below p from now on (a step whose video
// bitrate is p's or less; audio only when p sends no video), stepping
// down at its next look if it is above: the data budget running low mid-call
// (internal/terminal's budget). A limit is never raised again in the call.
// It returns the step the call is limited to.
func (a *ABR) Limit(p Profile) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.state.limit(p)
	return a.state.rungs[a.state.top].p.Name // the next tick steps down (within ABRConfig.Interval)
}

// limit lowers the best rung the call may use to p's (Limit).
func (s *abrState) limit(p Profile) {
	top := len(s.rungs) - 1 // audio only, or the last step there is
	for i, r := range s.rungs {
		if r.p.Video == p.Video && r.p.VideoBitrate <= p.VideoBitrate || !r.p.Video && !p.Video {
			top = i
			break
		}
	}
	s.top = max(s.top, top)
}

// Stop stops following the estimate; the capture keeps its last step.
func (a *ABR) Stop() {
	a.once.Do(func() { close(a.stop) })
	<-a.done
}

func (a *ABR) run() {
	defer close(a.done)
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case now := <-t.C:
			a.tick(now)
		}
	}
}

func (a *ABR) tick(now time.Time) {
	target := a.cfg.Bandwidth.TargetBitrate()
	a.mu.Lock()
	from := a.state.cur
	congested, clear := a.path()
	changed, rateChanged := a.state.next(now, target, congested, clear)
	r := a.state.rungs[a.state.cur]
	step := ABRStep{Index: a.state.cur, Name: r.p.Name, Video: r.p.Video, Target: target, Changes: a.step.Changes}
	if r.p.Video {
		step.Rate, step.Width, step.Height, step.FPS = a.state.rate, r.width, r.height, r.fps
	}
	if changed {
		step.Changes++
	}
	a.step = step
	a.mu.Unlock()
	if changed {
		a.log.Info("abr step", "from", a.state.rungs[from].p.Name, "to", r.p.Name, "target_bps", target,
			"video_bps", step.Rate, "size", fmt.Sprintf("%dx%d", step.Width, step.Height), "fps", step.FPS)
	}
	if !changed && !rateChanged {
		// Encoders bound since the last change still get the setting.
		if err := a.c.control.apply(); err != nil {
			a.log.Debug("abr apply", "err", err)
		}
		return
	}
	a.c.applyStep(step, r.p.AudioBitrate, a.log)
}

// path asks the estimate whether the path shows congestion itself, and
// whether it is clear (no queue to speak of, nothing lost: the link is
// far from full); an estimate that cannot say is trusted.
func (a *ABR) path() (congested, clear bool) {
	c, ok := a.cfg.Bandwidth.(interface {
		Congested() bool
		Path() (time.Duration, float64)
	})
	if !ok {
		return true, false
	}
	q, loss := c.Path()
	return c.Congested(), q < clearQueue && loss < clearLoss
}

// A path is clear below clearQueue of queueing delay and clearLoss of
// loss; a video step probes the next one after clearFor of it.
const (
	clearQueue = 20 * time.Millisecond
	clearLoss  = 0.02
)

// applyStep sets the capture's encoders and frame throttle for step.
func (c *Capture) applyStep(step ABRStep, audioRate int, log *slog.Logger) {
	v := videoSetting{Rate: step.Rate, Width: step.Width, Height: step.Height, FPS: step.FPS, Paused: !step.Video}
	if c.pass != nil {
		// A camera's own H.264 has only its bitrate to turn, where the
		// driver has the control; it is never paused.
		if step.Video {
			if _, err := c.pass.src.SetBitrate(step.Rate); err != nil {
				log.Debug("abr: camera bitrate", "err", err)
			}
		}
		v = videoSetting{}
	}
	if err := c.control.setVideo(v); err != nil {
		log.Warn("abr: video encoder", "err", err)
	}
	if err := c.control.setAudioRate(audioRate); err != nil {
		log.Warn("abr: audio encoder", "err", err)
	}
}

// abrState is the ABR's decision, apart from the clock and the encoders so
// that its table test needs neither.
type abrState struct {
	rungs  []abrRung
	policy ABRPolicy
	cur    int
	rate   int // the video encoder's rate; -1 before the first decision
	// top is the best rung the call may use (Limit): 0 unless a data
	// budget running low lowered it mid-call.
	top int

	belowSince, aboveSince time.Time
	// upWait is the wait before a step up the estimate affords, probeWait
	// the extra factor before one it does not (a probe); each doubles when
	// its kind of step up is taken back within UpTrial.
	upWait, probeWait time.Duration
	lastUp, lastDown  time.Time
	lastEase          time.Time // when the waits were last halved
	probing           bool      // the last step up was a probe
}

// videoBudget is what the estimate leaves for video on rung i.
func (s *abrState) videoBudget(i, target int) int {
	return int(s.policy.Headroom*float64(target)) - s.rungs[i].audioCost
}

// need is the video rate rung i asks of the budget: to stay (its floor),
// or to step up to it: halfway from its floor to its own rate. GCC lets
// its estimate grow to 1.5 times what arrives while a call sends less than
// it could, so a step up must need less than that of what is sent now.
func (s *abrState) need(i int, up bool) int {
	r := s.rungs[i]
	if !r.p.Video {
		return 0
	}
	if up {
		return (r.floor + r.p.VideoBitrate) / 2
	}
	return r.floor
}

// next takes the estimate at now, and whether the path shows congestion
// itself, and reports whether the step changed and whether the video rate
// did. A low estimate steps down only on a congested path: GCC's falls
// with a busy CPU's timing noise too (pathmonitor.go).
func (s *abrState) next(now time.Time, target int, congested, clear bool) (stepChanged, rateChanged bool) {
	p := s.policy
	cur := s.cur
	audioOnly := !s.rungs[cur].p.Video
	inProbe := s.probing && now.Sub(s.lastUp) < p.UpTrial
	// The waits ease back, halving after each 2×UpAfter without a step
	// down: a link that was narrow for a while (each step up taken back,
	// the wait doubled up to UpAfterMax) and then widens is climbed again
	// within seconds, not after minutes.
	since := s.lastDown
	if s.lastEase.After(since) {
		since = s.lastEase
	}
	if (s.upWait > p.UpAfter || s.probeWait > p.UpAfter) && now.Sub(since) >= 2*p.UpAfter {
		s.upWait, s.probeWait, s.lastEase = max(s.upWait/2, p.UpAfter), max(s.probeWait/2, p.UpAfter), now
	}
	if cur < s.top {
		// A limit came (Limit): down to it at once, whatever the
		// estimate; nothing above it is tried again.
		s.cur, s.lastDown, s.belowSince, s.aboveSince, s.probing = s.top, now, time.Time{}, time.Time{}, false
		s.rate = s.rungs[s.top].p.VideoBitrate
		if !s.rungs[s.top].p.Video {
			s.rate = 0
		}
		return true, true
	}
	low := congested && s.videoBudget(cur, target) < s.need(cur, false)
	severe := congested && s.videoBudget(cur, target) < s.need(cur, false)/2
	if inProbe {
		// A probe's step is judged by the path alone until its trial is
		// over: the estimate, made while only audio went, still says
		// what audio needed.
		low, severe = congested, false
	}
	switch {
	case low:
		s.aboveSince = time.Time{}
		if s.belowSince.IsZero() {
			s.belowSince = now
		}
		if now.Sub(s.belowSince) >= p.DownAfter || severe {
			next := cur + 1
			for next < len(s.rungs)-1 && s.videoBudget(next, target) < s.need(next, false) {
				next++
			}
			if next < len(s.rungs) {
				if !s.lastUp.IsZero() && now.Sub(s.lastUp) < p.UpTrial {
					// The last step up did not hold.
					if s.probing {
						s.probeWait = min(2*s.probeWait, p.UpAfterMax)
					} else {
						s.upWait = min(2*s.upWait, p.UpAfterMax)
					}
				}
				s.cur, s.lastDown, s.belowSince, s.probing = next, now, time.Time{}, false
			}
		}
	case cur > s.top && (s.videoBudget(cur-1, target) >= s.need(cur-1, true) || audioOnly && !congested || clear):
		// Up one step once the estimate has afforded it for upWait, or,
		// out of audio only, once the path has shown no congestion for
		// that long: while a call sends less than it could, GCC's
		// estimate grows only to 1.5 times what arrives, which from a
		// video step is the next step's need (need's halfway) but from
		// audio only is not video's worth, and pion's GCC does not
		// probe; so that step up is the probe. From a video step it
		// probes only a clear path (no queue, no loss: far from full),
		// after three times as long: probing a link near its capacity
		// overfilled a 128 kbit/s link's buffer for the trial's length
		// and broke the pictures through it; and GCC, its queue drained
		// after a narrow spell, can sit on its estimate for tens of
		// seconds once the link widens.
		s.belowSince = time.Time{}
		if s.aboveSince.IsZero() {
			s.aboveSince = now
		}
		afford := s.videoBudget(cur-1, target) >= s.need(cur-1, true)
		wait := s.upWait
		if !afford {
			if s.probeWait == 0 {
				s.probeWait = p.UpAfter
			}
			wait = s.probeWait
			if !audioOnly {
				wait = max(wait, 3*p.UpAfter)
			}
		}
		if now.Sub(s.aboveSince) >= wait {
			s.probing = !afford
			s.cur, s.lastUp, s.aboveSince = cur-1, now, time.Time{}
		}
	default:
		s.belowSince, s.aboveSince = time.Time{}, time.Time{}
		if !s.lastUp.IsZero() && now.Sub(s.lastUp) >= p.UpTrial && s.lastDown.Before(s.lastUp) {
			s.upWait, s.probeWait = p.UpAfter, p.UpAfter // the last step up held
		}
	}
	rate := 0
	if r := s.rungs[s.cur]; r.p.Video {
		budget := s.videoBudget(s.cur, target)
		if s.probing && now.Sub(s.lastUp) < p.UpTrial {
			budget = max(budget, s.need(s.cur, true))
		}
		if !congested && s.cur == cur && s.rate > 0 {
			budget = max(budget, s.rate) // an uncongested path keeps its rate
		}
		rate = min(max(budget, r.floor/2, 20_000), r.p.VideoBitrate)
	}
	// A change under 5% is not worth a call into the encoders, except
	// onto the step's own rate.
	if s.rate < 0 || s.cur != cur || rate != s.rate && (rate == 0 || absDiff(rate, s.rate)*20 > s.rate || rate == s.rungs[s.cur].p.VideoBitrate) {
		rateChanged = rate != s.rate
		s.rate = rate
	}
	return s.cur != cur, rateChanged
}

func absDiff(a, b int) int {
	if a > b {
		return a - b
	}
	return b - a
}
