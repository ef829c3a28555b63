package media

import (
	"context"
	"fmt"
	"image"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/mediadevices"
	"github.com/pion/mediadevices/pkg/wave"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/media/mediatest"
	"github.com/tuanju/tuanju/media/synth"
)

// An impaired call: two real pion peers (the terminal offering, the phone
// answering), each sending the synthetic camera and microphone through the
// real encoders, following its own bandwidth estimate with the ABR, and
// decoding the other's media with a Receiver; between them a UDP relay on
// 127.0.0.1 that loses, delays, reorders and caps packets
// (mediatest.Link).

// openPacedCapture is the synthetic camera and microphone at LowData, kept
// to the wall clock the way hardware is: the camera drops the frames a
// busy reader missed, the microphone delivers what it captured meanwhile
// at once (its buffer held it). synth's own sources are paced by a
// ticker, which drops ticks when the machine is busy: on a loaded test
// machine the call then sent a fraction of real time's audio, and the
// cells measured the machine, not the network.
func openPacedCapture(t testing.TB, log *slog.Logger) *Capture {
	t.Helper()
	p := LowData
	c := newCapture(p, log)
	sel, err := newCodecSelector(p, c.encoders)
	if err != nil {
		t.Fatal(err)
	}
	cam, err := synth.NewCamera(synth.CameraOptions{Width: p.Width, Height: p.Height, FPS: p.FPS, Unpaced: true})
	if err != nil {
		t.Fatal(err)
	}
	vt := mediadevices.NewVideoTrack(&wallClockSource{Camera: cam, period: time.Second / time.Duration(p.FPS)}, sel)
	c.throttleVideo(vt)
	mic, err := synth.NewMicrophone(synth.MicrophoneOptions{Unpaced: true})
	if err != nil {
		t.Fatal(err)
	}
	at := mediadevices.NewAudioTrack(&wallClockMic{Microphone: mic, period: 10 * time.Millisecond}, sel)
	c.tracks = append(c.tracks, vt, at)
	return c
}

// wallClockSource paces an unpaced camera to the wall clock, dropping
// the frames a late reader missed.
type wallClockSource struct {
	*synth.Camera
	period time.Duration
	start  time.Time
	n      int64
}

func (s *wallClockSource) Read() (image.Image, func(), error) {
	if s.start.IsZero() {
		s.start = time.Now()
	}
	s.n++
	due := s.start.Add(time.Duration(s.n) * s.period)
	if late := time.Since(due); late > s.period {
		s.n += int64(late / s.period) // frames the camera dropped
		due = s.start.Add(time.Duration(s.n) * s.period)
	}
	time.Sleep(time.Until(due))
	return s.Camera.Read()
}

// wallClockMic paces an unpaced microphone to the wall clock; a late
// reader gets what was captured meanwhile at once (up to half a second,
// an ALSA buffer's worth).
type wallClockMic struct {
	*synth.Microphone
	period time.Duration
	start  time.Time
	n      int64
}

func (m *wallClockMic) Read() (wave.Audio, func(), error) {
	if m.start.IsZero() {
		m.start = time.Now()
	}
	m.n++
	due := m.start.Add(time.Duration(m.n) * m.period)
	if late := time.Since(due); late > 500*time.Millisecond {
		m.n += int64((late - 500*time.Millisecond) / m.period) // overrun: lost
		due = m.start.Add(time.Duration(m.n) * m.period)
	}
	time.Sleep(time.Until(due))
	return m.Microphone.Read()
}

// callSide is one peer of an impaired call.
type callSide struct {
	name    string
	pc      *webrtc.PeerConnection
	capture *Capture
	recv    *Receiver
	abr     *ABR
}

type impairedCall struct {
	link        *mediatest.Link
	term, phone *callSide
	handlers    sync.WaitGroup
}

// newImpairedCall connects a call through a link impaired as imp in both
// directions from the start, and waits for both sides to play audio.
func newImpairedCall(t testing.TB, seed uint64, imp mediatest.Impairment) *impairedCall {
	t.Helper()
	c := dialImpairedCall(t, seed, imp)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The call is up once each side plays the other's voice: on the
	// narrowest links the ABR may send no picture at first (audio only),
	// and each cell's check says what video it asks for.
	for _, s := range []*callSide{c.term, c.phone} {
		for s.recv.Stats().AudioSamplesDecoded == 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("%s decoded no audio within a minute through %v", s.name, imp)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return c
}

// dialImpairedCall starts a call through a link impaired as imp in both
// directions from the first packet (ICE and DTLS go through it too) and
// returns without waiting for media; the test's cleanup ends it.
func dialImpairedCall(t testing.TB, seed uint64, imp mediatest.Impairment) *impairedCall {
	t.Helper()
	level := slog.LevelInfo
	if _, bench := t.(*testing.B); bench || os.Getenv("TUANJU_IMPAIR_LOG") == "" {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
	api, err := NewAPI(APIConfig{SettingEngine: mediatest.LoopbackSettingEngine()})
	if err != nil {
		t.Fatal(err)
	}
	c := &impairedCall{link: mediatest.NewLink(t, seed)}
	c.link.SetBoth(imp)
	side := func(name string) *callSide {
		s := &callSide{name: name, pc: mediatest.NewPeer(t, api)}
		s.capture = openPacedCapture(t, log.With("side", name))
		s.recv = NewReceiver(ReceiverConfig{WriteRTCP: s.pc.WriteRTCP, Log: log.With("side", name)})
		s.pc.OnTrack(func(tr *webrtc.TrackRemote, rr *webrtc.RTPReceiver) {
			c.handlers.Add(1)
			defer c.handlers.Done()
			_ = s.recv.Handle(tr, rr)
		})
		s.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
			if st == webrtc.PeerConnectionStateConnected {
				_, _ = s.capture.RequestKeyFrame()
			}
		})
		return s
	}
	c.term, c.phone = side("terminal"), side("phone")
	t.Cleanup(func() {
		for _, s := range []*callSide{c.term, c.phone} {
			s.capture.Detach(s.pc)
			_ = s.pc.Close()
			_ = s.capture.Close()
		}
		c.link.Close()
		c.handlers.Wait()
	})
	for _, tr := range c.term.capture.Tracks() {
		if _, err := c.term.pc.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
	}
	// The phone answers on the offer's transceivers, as a browser does.
	c.link.Negotiate(t, c.term.pc, c.phone.pc, func() {
		for _, tr := range c.phone.capture.Tracks() {
			if _, err := c.phone.pc.AddTrack(tr); err != nil {
				t.Fatal(err)
			}
		}
	})
	for _, s := range []*callSide{c.term, c.phone} {
		bw := BandwidthOf(s.pc)
		if bw == nil {
			t.Fatalf("%s: no bandwidth estimate for the peer connection", s.name)
		}
		s.abr, err = s.capture.StartABR(ABRConfig{Ladder: ABRLadder(), Bandwidth: bw, Log: log.With("side", s.name)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if os.Getenv("TUANJU_IMPAIR_LOG") != "" {
		c.trace(t)
	}
	return c
}

// trace logs both directions every second until the test ends
// (TUANJU_IMPAIR_LOG=1): what to look at when a cell fails.
func (c *impairedCall) trace(t testing.TB) {
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		last := c.snap()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			now := c.snap()
			for i, side := range []*callSide{c.term, c.phone} {
				f := between(last, now, i)
				rx := now.recv[1-i]
				bw := BandwidthOf(side.pc)
				qd, loss := bw.Path()
				t.Logf("trace %s sends: %v; path queue %v loss %.1f%% congested %v; gcc %v; link %+v; send %+v; rx audio packets %d late %d",
					side.name, f, qd, loss*100, bw.Congested(), bw.GetStats(), now.link[i], now.send[i], rx.AudioPackets, rx.AudioPacketsLate)
			}
			last = now
		}
	}()
}

// snapshot is everything measured at one moment.
type snapshot struct {
	at     time.Time
	recv   [2]Stats // the terminal's receiver, the phone's
	link   [2]mediatest.LinkStats
	send   [2]SendStats
	target [2]int
	step   [2]ABRStep
}

func (c *impairedCall) snap() snapshot {
	s := snapshot{at: time.Now()}
	for i, side := range []*callSide{c.term, c.phone} {
		s.recv[i] = side.recv.Stats()
		s.link[i] = c.link.Stats(mediatest.Direction(i)) // AtoB is what the terminal sends
		bw := BandwidthOf(side.pc)
		s.send[i], s.target[i] = bw.Stats(), bw.TargetBitrate()
		s.step[i] = side.abr.Step()
	}
	return s
}

// figures are one direction's measurements between two snapshots. Up is
// the terminal's media to the phone, down the phone's to the terminal.
type figures struct {
	fps, freezesPerMin, mbPerMin, sendKbps, targetKbps, concealedPct float64
	// sentFPS and audioShare compare what arrived with what the sender
	// sent: frames it encoded per second, and the share of its audio
	// packets' time the receiver played from packets that came in time.
	sentFPS, audioShare                   float64
	freezes, retransmissions, nacks, twcc int64
	longestGap                            time.Duration
	step                                  string
	audioDelay                            time.Duration
	secs                                  float64 // the window measured
}

// between: dir 0 is up (the terminal sends, the phone receives).
func between(a, b snapshot, dir int) figures {
	secs := b.at.Sub(a.at).Seconds()
	rx := 1 - dir // the receiving side's index
	ra, rb := a.recv[rx], b.recv[rx]
	f := figures{
		fps:             float64(rb.VideoFramesDecoded-ra.VideoFramesDecoded) / secs,
		freezes:         rb.VideoFreezes - ra.VideoFreezes,
		mbPerMin:        float64(b.link[dir].DeliveredBytes-a.link[dir].DeliveredBytes) / secs * 60 / 1e6,
		sendKbps:        float64(b.link[dir].OfferedBytes-a.link[dir].OfferedBytes) * 8 / secs / 1000,
		targetKbps:      float64(b.target[dir]) / 1000,
		retransmissions: b.send[dir].Retransmissions - a.send[dir].Retransmissions,
		nacks:           b.send[dir].NACKs - a.send[dir].NACKs, // sent by the receiver, as they reached the sender
		twcc:            b.send[dir].TWCC - a.send[dir].TWCC,   // the receiver's transport-wide feedback, likewise
		longestGap:      rb.VideoLongestGap,
		step:            b.step[dir].Name,
		audioDelay:      rb.AudioDelay,
		secs:            secs,
	}
	f.freezesPerMin = float64(f.freezes) / secs * 60
	f.sentFPS = float64(b.send[dir].VideoFrames-a.send[dir].VideoFrames) / secs
	if sent := b.send[dir].AudioPackets - a.send[dir].AudioPackets; sent > 0 {
		got := rb.AudioSamplesDecoded - ra.AudioSamplesDecoded
		f.audioShare = float64(got) / float64(sent*int64(LowData.AudioFrame)*AudioSampleRate/int64(time.Second))
	}
	played := (rb.AudioSamplesDecoded + rb.AudioSamplesConcealed) - (ra.AudioSamplesDecoded + ra.AudioSamplesConcealed)
	if played > 0 {
		f.concealedPct = 100 * float64(rb.AudioSamplesConcealed-ra.AudioSamplesConcealed) / float64(played)
	}
	return f
}

func (f figures) String() string {
	return fmt.Sprintf("%.1f fps of %.1f sent, audio %.0f%% of sent, %d freezes (%.1f/min, longest gap %v), %.2f MB/min, send %.0f kbit/s (target %.0f), step %s, audio concealed %.1f%% (delay %v), %d NACKs, %d retransmissions, %d TWCC feedbacks",
		f.fps, f.sentFPS, 100*f.audioShare, f.freezes, f.freezesPerMin, f.longestGap.Round(time.Millisecond), f.mbPerMin, f.sendKbps, f.targetKbps, f.step,
		f.concealedPct, f.audioDelay.Round(time.Millisecond), f.nacks, f.retransmissions, f.twcc)
}

// impairCell is one row of the impairment table.
type impairCell struct {
	name string
	imp  mediatest.Impairment
	// settle is how long the call runs before measuring, measure how long
	// it is measured for.
	settle, measure time.Duration
	// then, if set, changes the link after settle+measure and the cell
	// measures again for measure after settle (recovery).
	then *mediatest.Impairment
	// check asserts on the figures (nil in the benchmark's extra rows).
	check func(t *testing.T, up, down figures, after *[2]figures)
	short bool // in the default `go test` subset
}

const kbit = 1000

func impairCells() []impairCell {
	// binding: the call wants more than the cap, so the estimate must
	// come down to it; under a cap it does not reach, GCC's estimate
	// grows past what is sent (to its maximum) and says nothing.
	//
	// over is the share the send rate may exceed the cap by: 10%, more
	// on the narrowest links, where the 38 bytes of IP/UDP/SRTP each packet pays
	// outside GCC's view (it counts RTP) are a fifth of the link (voice
	// alone sends 50 packets a second) and its estimate settles that much
	// nearer the cap.
	capCheck := func(rate int, minFPS, minShare float64, binding bool, over float64) func(*testing.T, figures, figures, *[2]figures) {
		return func(t *testing.T, up, down figures, _ *[2]figures) {
			for _, f := range []struct {
				dir string
				f   figures
			}{{"up", up}, {"down", down}} {
				if f.f.sendKbps > (1+over)*float64(rate)/kbit {
					t.Errorf("%s: sent %.0f kbit/s into a %d kbit/s link (more than %.0f%% over): the sender did not follow the cap", f.dir, f.f.sendKbps, rate/kbit, 100*over)
				}
				if binding && f.f.targetKbps > 1.1*float64(rate)/kbit {
					t.Errorf("%s: estimate %.0f kbit/s on a %d kbit/s link", f.dir, f.f.targetKbps, rate/kbit)
				}
				if f.f.fps < minFPS || f.f.fps < minShare*f.f.sentFPS {
					t.Errorf("%s: %.1f fps decoded of %.1f sent at %d kbit/s, want at least %.1f and %.0f%%", f.dir, f.f.fps, f.f.sentFPS, rate/kbit, minFPS, 100*minShare)
				}
			}
		}
	}
	return []impairCell{
		{name: "clean", settle: 4 * time.Second, measure: 6 * time.Second},
		{name: "cap-512k", imp: mediatest.Impairment{Rate: 512 * kbit}, settle: 8 * time.Second, measure: 6 * time.Second,
			check: capCheck(512*kbit, 10, 0.7, false, 0.1)},
		{name: "cap-256k", imp: mediatest.Impairment{Rate: 256 * kbit}, settle: 8 * time.Second, measure: 6 * time.Second,
			check: capCheck(256*kbit, 10, 0.7, false, 0.1)},
		// At 128 kbit/s the default profile (low: ~100 kbit/s of RTP,
		// ~130 with every packet's IP/UDP/SRTP bytes, which GCC does not
		// count) is at the link's edge: the call keeps audio and some
		// video (the bar), not all it sends. Mostly 13–15 fps. On
		// loaded CI machines GCC, starting at 1 Mbit/s, saw the full
		// buffer late and came down over ten seconds; the retransmissions
		// budgeted from its estimate then filled the link (148 kbit/s
		// sent, 1 fps, a 6.5 s freeze). The estimate now drains a queue
		// at once (TestTargetDrainsAQueue), and the budget no longer
		// counts the resends (TestRetransmitBudgetLeavesOutResends).
		{name: "cap-128k", imp: mediatest.Impairment{Rate: 128 * kbit}, settle: 10 * time.Second, measure: 6 * time.Second,
			check: capCheck(128*kbit, 2.5, 0, false, 0.15), short: true},
		// At 64 kbit/s it must come down: a smaller or slower picture, and
		// audio goes on (runCell checks audio in every cell).
		{name: "cap-64k", imp: mediatest.Impairment{Rate: 64 * kbit}, settle: 12 * time.Second, measure: 6 * time.Second,
			check: func(t *testing.T, up, down figures, _ *[2]figures) {
				// The sender follows the cap and audio goes on (runCell);
				// the picture may come and go as the ABR probes very-low's
				// ~57 kbit/s on the wire, so no share of it is asked.
				for i, f := range []figures{up, down} {
					if f.sendKbps > 1.2*64 {
						t.Errorf("%s: sent %.0f kbit/s into a 64 kbit/s link", []string{"up", "down"}[i], f.sendKbps)
					}
				}
			}, short: true},
		{name: "loss-5", imp: mediatest.Impairment{Loss: 0.05}, settle: 4 * time.Second, measure: 8 * time.Second, check: lossCheck},
		{name: "loss-10", imp: mediatest.Impairment{Loss: 0.10}, settle: 4 * time.Second, measure: 8 * time.Second, check: lossCheck, short: true},
		{name: "loss-20", imp: mediatest.Impairment{Loss: 0.20}, settle: 4 * time.Second, measure: 8 * time.Second,
			check: func(t *testing.T, up, down figures, _ *[2]figures) {
				// A fifth of every packet lost: the call goes on, audio
				// (runCell) and half the pictures sent at least.
				for i, f := range []figures{up, down} {
					if f.fps < 0.5*f.sentFPS {
						t.Errorf("%s: %.1f fps decoded of %.1f sent", []string{"up", "down"}[i], f.fps, f.sentFPS)
					}
				}
			}},
		{name: "jitter-50ms", imp: mediatest.Impairment{Delay: 60 * time.Millisecond, Jitter: 50 * time.Millisecond},
			settle: 2 * time.Second, measure: 8 * time.Second, check: jitterCheck, short: true},
		{name: "delay-150ms-jitter-50ms", imp: mediatest.Impairment{Delay: 150 * time.Millisecond, Jitter: 50 * time.Millisecond},
			settle: 3 * time.Second, measure: 8 * time.Second, check: jitterCheck},
		{name: "recovery-64k-to-open", imp: mediatest.Impairment{Rate: 64 * kbit}, settle: 20 * time.Second, measure: 6 * time.Second,
			then: &mediatest.Impairment{}, check: recoveryCheck},
	}
}

// lossCheck: video keeps coming both ways (no pause of a second), and
// NACKs were sent and answered both ways.
func lossCheck(t *testing.T, up, down figures, _ *[2]figures) {
	for _, f := range []struct {
		dir string
		f   figures
	}{{"up", up}, {"down", down}} {
		if f.f.longestGap > time.Second {
			t.Errorf("%s: the picture froze for %v", f.dir, f.f.longestGap)
		}
		if f.f.fps < 1 || f.f.fps < 0.7*f.f.sentFPS {
			t.Errorf("%s: %.1f fps decoded of %.1f sent", f.dir, f.f.fps, f.f.sentFPS)
		}
		if f.f.nacks == 0 || f.f.retransmissions == 0 {
			t.Errorf("%s: %d NACKs sent, %d packets retransmitted: lost packets are not asked for and resent", f.dir, f.f.nacks, f.f.retransmissions)
		}
	}
}

// maxConcealedPct bounds the audio the decoder makes up under ±50 ms of
// jitter: 0–2.5% on a quiet machine and beside two busy loops (the
// receiving goroutines' own lateness). Until 2026-12-06 the end of a
// sender's pause whose first packet jitter put behind the second counted
// the whole pause (200 ms filled in) as concealment: 0–15.3%, one CI run
// failing the old 15% bound. Before the jitter buffer the receiver
// decoded packets in their arrival order and concealed every gap: 46–49%
// in the same cells (README's impairment table).
const maxConcealedPct = 10

func jitterCheck(t *testing.T, up, down figures, _ *[2]figures) {
	for _, f := range []struct {
		dir string
		f   figures
	}{{"up", up}, {"down", down}} {
		if f.f.concealedPct > maxConcealedPct {
			t.Errorf("%s: %.1f%% of the audio played was concealment (want at most %d%%)", f.dir, f.f.concealedPct, maxConcealedPct)
		}
		// ±50 ms needs ~110 ms; the rest is a loaded machine's own lateness.
		if f.f.audioDelay > 500*time.Millisecond {
			t.Errorf("%s: the jitter buffer holds the voice %v", f.dir, f.f.audioDelay)
		}
		if f.f.fps < 1 || f.f.fps < 0.8*f.f.sentFPS {
			t.Errorf("%s: %.1f fps decoded of %.1f sent", f.dir, f.f.fps, f.f.sentFPS)
		}
		// The link loses nothing: a packet sent again was asked for while
		// it was still on its way (nackrequest.go). 0–2 in a row's 8 s;
		// pion's generator had 45–76 sent again (10–15% more data).
		if r := float64(f.f.retransmissions) / f.f.secs; r > maxReorderResends {
			t.Errorf("%s: %d packets sent again in %.0f s on a link that lost none (%d NACKs): late packets are asked for before they come",
				f.dir, f.f.retransmissions, f.f.secs, f.f.nacks)
		}
	}
}

// maxReorderResends bounds the packets a second sent again under jitter on
// a link that loses nothing.
const maxReorderResends = 2

// recoveryCheck: once the cap is lifted, the rate climbs back well above
// what the cap allowed.
func recoveryCheck(t *testing.T, up, down figures, after *[2]figures) {
	for i, f := range []struct {
		dir string
		f   figures
	}{{"up", up}, {"down", down}} {
		if a := after[i]; a.sendKbps < 1.3*f.f.sendKbps {
			t.Errorf("%s: %.0f kbit/s under a 64 kbit/s cap, %.0f kbit/s after it was lifted: the rate did not climb back", f.dir, f.f.sendKbps, a.sendKbps)
		}
	}
}

// runCell runs one cell and returns its figures (and, with then, those
// after the change).
func runCell(t testing.TB, c impairCell) (up, down figures, after *[2]figures) {
	call := newImpairedCall(t, 1, c.imp)
	wait := func(d time.Duration) { time.Sleep(d) } // the call runs meanwhile; not an assertion
	wait(c.settle)
	a := call.snap()
	wait(c.measure)
	b := call.snap()
	up, down = between(a, b, 0), between(a, b, 1)
	if _, bench := t.(*testing.B); !bench {
		for i, f := range []figures{up, down} {
			// Audio goes on in every cell: the call is still a call.
			// Counted against what the sender sent, so a machine too busy
			// to keep its own time does not fail the network's test; the
			// bound leaves room for a receiver starved of CPU (a loaded
			// machine plays 70–100%, a quiet one all of it).
			if f.audioShare < 0.6 {
				t.Errorf("%s %s: the receiver played %.0f%% of the audio sent from packets", c.name, []string{"up", "down"}[i], 100*f.audioShare)
			}
		}
	}
	if c.then != nil {
		call.link.SetBoth(*c.then)
		wait(c.settle)
		a2 := call.snap()
		wait(c.measure)
		b2 := call.snap()
		after = &[2]figures{between(a2, b2, 0), between(a2, b2, 1)}
	}
	return up, down, after
}

// TestImpairedCall runs the impairment table's short rows (a few seconds
// each): caps, loss, jitter. TUANJU_IMPAIR=full runs every row;
// BenchmarkImpairment reports the figures of every row.
func TestImpairedCall(t *testing.T) {
	full := os.Getenv("TUANJU_IMPAIR") == "full"
	for _, c := range impairCells() {
		if c.check == nil || !c.short && !full {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			up, down, after := runCell(t, c)
			t.Logf("%v up:   %v", c.imp, up)
			t.Logf("%v down: %v", c.imp, down)
			if after != nil {
				t.Logf("then %v up:   %v", *c.then, after[0])
				t.Logf("then %v down: %v", *c.then, after[1])
			}
			c.check(t, up, down, after)
		})
	}
}

// BenchmarkImpairment reports each row of the impairment table: frames per
// second decoded, freezes per minute, MB per minute delivered and kbit/s
// sent on the wire (UDP payload and IP/UDP headers), the share of the
// audio played that was concealment, and the NACKs that reached the sender
// and the packets it sent again, per direction (up: the terminal's
// media to the phone), over each row's measured window (for the recovery
// row, the window after the cap was lifted).
func BenchmarkImpairment(b *testing.B) {
	for _, c := range impairCells() {
		b.Run(c.name, func(b *testing.B) {
			var up, down figures
			var after *[2]figures
			for b.Loop() {
				up, down, after = runCell(b, c)
			}
			if after != nil {
				up, down = after[0], after[1]
			}
			b.ReportMetric(up.fps, "fps-up")
			b.ReportMetric(down.fps, "fps-down")
			b.ReportMetric(up.freezesPerMin, "freezes/min-up")
			b.ReportMetric(down.freezesPerMin, "freezes/min-down")
			b.ReportMetric(up.mbPerMin, "MB/min-up")
			b.ReportMetric(down.mbPerMin, "MB/min-down")
			b.ReportMetric(up.concealedPct, "concealed-%-up")
			b.ReportMetric(down.concealedPct, "concealed-%-down")
			b.ReportMetric(up.sendKbps, "kbit/s-up")
			b.ReportMetric(down.sendKbps, "kbit/s-down")
			b.ReportMetric(float64(up.retransmissions), "resent-up")
			b.ReportMetric(float64(down.retransmissions), "resent-down")
			b.ReportMetric(float64(up.nacks), "nacks-up")
			b.ReportMetric(float64(down.nacks), "nacks-down")
		})
	}
}
