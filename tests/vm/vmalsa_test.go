//go:build vmtest

package vm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/device/alsa"
	"github.com/tuanju/tuanju/device/speaker"
	"github.com/tuanju/tuanju/internal/logbuf"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/mediatest"
	"github.com/tuanju/tuanju/tests/audiotest"
)

// ALSA tests need the VM started with snd-aloop (and its dependencies
// snd-pcm, snd-timer, snd, soundcore, which tests/vm/run resolves):
//
//	tests/vm/run -m 'snd-aloop index=0 id=Loopback pcm_substreams=8' -r ALSA x.test
//
// snd-aloop is a cable per subdevice: what is played on hw:Loopback,0,N is
// captured on hw:Loopback,1,N and what is played on 1,N is captured on 0,N.
// Both ends of a cable must use the same format, rate and channels (the
// driver constrains the second to open to the first's). The copy is
// sample-exact, so the tests compare samples, not just statistics.
//
// Each test uses its own subdevices so a failing one leaves nothing open
// for the next.
const aloopModule = "-m 'snd-aloop index=0 id=Loopback pcm_substreams=8'"

// alsaTimeout bounds any single wait on the loopback: generous, TCG on a
// busy host can stall the jiffies timer aloop runs on.
const alsaTimeout = 30 * time.Second

// needLoopback skips outside the VM and fails when aloop is missing.
func needLoopback(t *testing.T) {
	t.Helper()
	vmOnly(t)
	if _, err := os.Stat("/dev/snd/controlC0"); err != nil {
		t.Fatalf("%v: start the VM with %s", err, aloopModule)
	}
}

func TestALSAList(t *testing.T) {
	needLoopback(t)
	devs, err := alsa.List("")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, d := range devs {
		t.Logf("%s: card %d %q, pcm %q, playback %d, capture %d", d.HWName(), d.Card, d.CardName, d.Name, d.PlaybackSubdevices, d.CaptureSubdevices)
	}
	if len(devs) != 2 {
		t.Fatalf("List found %d PCM devices, want aloop's 2", len(devs))
	}
	for i, d := range devs {
		if d.CardID != "Loopback" || d.Device != i || d.PlaybackSubdevices != 8 || d.CaptureSubdevices != 8 {
			t.Errorf("device %d = %+v, want Loopback device %d with 8 subdevices each way", i, d, i)
		}
	}
	for _, s := range []alsa.Stream{alsa.Playback, alsa.Capture} {
		a, err := alsa.Resolve("default", s, "")
		if err != nil || a.String() != "hw:Loopback,0" {
			t.Errorf("Resolve(default, %s) = %v, %v; want hw:Loopback,0", s, a, err)
		}
	}
}

// TestALSALoopbackRoundTrip plays a known signal into one end of an aloop
// cable and captures it at the other, and checks every sample came back.
func TestALSALoopbackRoundTrip(t *testing.T) {
	needLoopback(t)
	tests := []struct {
		channels, rate, sub int
		freq                float64
	}{
		{channels: 1, rate: 48000, sub: 0, freq: 997},
		{channels: 2, rate: 16000, sub: 1, freq: 440},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dch-%dHz", tt.channels, tt.rate), func(t *testing.T) {
			cfg := alsa.Config{Channels: tt.channels, Rate: tt.rate}
			// Capture opens first, so the cable's parameters are set by it.
			capture, err := alsa.Open(fmt.Sprintf("hw:Loopback,1,%d", tt.sub), alsa.Capture, cfg)
			if err != nil {
				t.Fatalf("open capture: %v", err)
			}
			defer capture.Close()
			play, err := alsa.Open(fmt.Sprintf("hw:Loopback,0,%d", tt.sub), alsa.Playback, cfg)
			if err != nil {
				t.Fatalf("open playback: %v", err)
			}
			defer play.Close()
			cp, pp := capture.Params(), play.Params()
			t.Logf("capture %s %+v, playback %s %+v", capture.Addr(), cp, play.Addr(), pp)
			if cp.Rate != tt.rate || pp.Rate != tt.rate || cp.Channels != tt.channels {
				t.Fatalf("got rate %d/%d channels %d, want %d Hz %d channels", cp.Rate, pp.Rate, cp.Channels, tt.rate, tt.channels)
			}
			if want := tt.rate / 50; cp.PeriodFrames != want || pp.PeriodFrames != want {
				t.Errorf("period %d/%d frames, want %d (20 ms)", cp.PeriodFrames, pp.PeriodFrames, want)
			}
			if capture.Addr().Subdevice != tt.sub || play.Addr().Subdevice != tt.sub {
				t.Errorf("opened subdevices %d and %d, want %d", capture.Addr().Subdevice, play.Addr().Subdevice, tt.sub)
			}

			// One second of tone with dither (so every stretch is unique);
			// the right channel carries the tone inverted.
			mono := audiotest.Tone(tt.rate, tt.rate, tt.freq, 12000, 40)
			signal := make([]int16, 0, len(mono)*tt.channels)
			for _, v := range mono {
				signal = append(signal, v)
				if tt.channels == 2 {
					signal = append(signal, -v)
				}
			}
			// Capture three seconds: silence, the signal, silence. The
			// first period is read before anything is played, so the
			// capture is running when the signal starts.
			got := make([]int16, 3*tt.rate*tt.channels)
			first := cp.PeriodFrames * tt.channels
			if _, err := capture.Read(got[:first]); err != nil {
				t.Fatalf("first Read: %v", err)
			}
			captured := make(chan error, 1)
			var frames int
			go func() {
				var err error
				frames, err = capture.Read(got[first:])
				frames += cp.PeriodFrames
				captured <- err
			}()
			n, err := play.Write(signal)
			if err != nil || n != len(mono) {
				t.Fatalf("Write = %d, %v; want %d frames", n, err, len(mono))
			}
			// aloop loses up to a buffer's worth at the end of a drain
			// (copy_play_buf trims the copy by the ring position, not the
			// absolute one): pad with a buffer of silence before draining.
			if _, err := play.Write(make([]int16, pp.BufferFrames*tt.channels)); err != nil {
				t.Fatalf("Write silence: %v", err)
			}
			if err := play.Drain(); err != nil {
				t.Fatalf("Drain: %v", err)
			}
			select {
			case err := <-captured:
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
			case <-time.After(alsaTimeout):
				t.Fatal("capture did not finish")
			}
			if frames != 3*tt.rate {
				t.Errorf("Read returned %d frames, want %d", frames, 3*tt.rate)
			}
			left := audiotest.Deinterleave(got, tt.channels, 0)
			at := audiotest.Find(left, mono)
			if at < 0 {
				t.Fatalf("the played signal's start is not in the capture (peak %d)", audiotest.Peak(left))
			}
			if at+len(mono) > len(left) {
				t.Fatalf("signal starts at frame %d, capture too short to hold it", at)
			}
			t.Logf("signal found at captured frame %d (%v after capture start)", at, cp.FramesTime(at))
			// Bit-exact unless the kernel reported an xrun: a process
			// starved of CPU (an emulated VM beside CPU-bound processes)
			// loses the frames of an overrun or underrun, which the device
			// code recovers from (TestALSAXrunRecovery) and counts. Frames
			// lost with no xrun reported still fail.
			mismatch := t.Errorf
			if xr := capture.Xruns() + play.Xruns(); xr != 0 {
				mismatch = func(format string, args ...any) {
					t.Logf("after %d xruns (frames lost, reported): "+format, append([]any{xr}, args...)...)
				}
			}
			if i := firstDiff(left[at:at+len(mono)], mono); i >= 0 {
				mismatch("left channel differs from what was played at frame %d: %d != %d", i, left[at+i], mono[i])
			}
			if tt.channels == 2 {
				right := audiotest.Deinterleave(got, 2, 1)[at : at+len(mono)]
				for i, v := range mono {
					if right[i] != -v {
						mismatch("right channel differs at frame %d: %d != %d", i, right[i], -v)
						break
					}
				}
			}
			seg := left[at : at+len(mono)]
			if f := audiotest.ZeroCrossingFreq(seg, tt.rate); math.Abs(f-tt.freq) > 1 {
				mismatch("captured tone at %.2f Hz, want %.0f", f, tt.freq)
			}
			if r, want := audiotest.RMS(seg), 12000/math.Sqrt2; math.Abs(r-want)/want > 0.01 {
				mismatch("captured RMS %.0f, want %.0f", r, want)
			}
			if capture.Xruns() != 0 || play.Xruns() != 0 {
				t.Logf("xruns during the round trip: capture %d, playback %d", capture.Xruns(), play.Xruns())
			}
		})
	}
}

func firstDiff(a, b []int16) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestALSAXrunRecovery starves a playback stream and floods a capture one
// (the kernel stops both with XRUN) and checks the next transfer recovers
// by itself and counts the xrun.
func TestALSAXrunRecovery(t *testing.T) {
	needLoopback(t)
	cfg := alsa.Config{Channels: 1, Rate: 48000}
	capture, err := alsa.Open("hw:Loopback,1,2", alsa.Capture, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	play, err := alsa.Open("hw:Loopback,0,2", alsa.Playback, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer play.Close()
	p := play.Params()
	buf := make([]int16, p.BufferFrames)
	period := make([]int16, p.PeriodFrames)

	// A full buffer starts playback; then nothing more arrives for three
	// buffers' time: underrun. Not reading the capture side meanwhile
	// overruns it.
	if _, err := capture.Read(period); err != nil {
		t.Fatalf("first capture read: %v", err)
	}
	if _, err := play.Write(buf); err != nil {
		t.Fatalf("first write: %v", err)
	}
	time.Sleep(3 * p.BufferTime())
	if _, err := play.Write(buf); err != nil {
		t.Fatalf("write after underrun: %v", err)
	}
	if _, err := capture.Read(period); err != nil {
		t.Fatalf("read after overrun: %v", err)
	}
	if play.Xruns() < 1 {
		t.Errorf("playback Xruns() = %d after starving it, want ≥ 1", play.Xruns())
	}
	if capture.Xruns() < 1 {
		t.Errorf("capture Xruns() = %d after not reading, want ≥ 1", capture.Xruns())
	}
	// And the streams run on: a few more periods move.
	for range 5 {
		if _, err := play.Write(period); err != nil {
			t.Fatalf("write after recovery: %v", err)
		}
		if _, err := capture.Read(period); err != nil {
			t.Fatalf("read after recovery: %v", err)
		}
	}
	t.Logf("xruns: playback %d, capture %d", play.Xruns(), capture.Xruns())
}

func TestALSAErrors(t *testing.T) {
	needLoopback(t)
	cfg := alsa.Config{Channels: 1, Rate: 48000}
	tests := []struct {
		name    string
		stream  alsa.Stream
		wantErr error
	}{
		{"hw:NoSuchCard", alsa.Capture, alsa.ErrNoDevice},
		{"hw:Loopback,2", alsa.Capture, alsa.ErrNoDevice},
		{"hw:Loopback,1,8", alsa.Capture, alsa.ErrNoDevice},
		{"hw:7,0", alsa.Playback, alsa.ErrNoDevice},
		{"plughw:Loopback", alsa.Playback, alsa.ErrBadName},
	}
	for _, tt := range tests {
		p, err := alsa.Open(tt.name, tt.stream, cfg)
		if !errors.Is(err, tt.wantErr) {
			if err == nil {
				p.Close()
			}
			t.Errorf("Open(%q, %s) = %v, want %v", tt.name, tt.stream, err, tt.wantErr)
		} else {
			t.Logf("Open(%q, %s): %v", tt.name, tt.stream, err)
		}
	}
	if _, err := alsa.Open("hw:Loopback,1,0", alsa.Capture, alsa.Config{Channels: 3}); !errors.Is(err, alsa.ErrUnsupported) {
		t.Errorf("Open with 3 channels = %v, want ErrUnsupported", err)
	}

	// The same subdevice twice: busy.
	first, err := alsa.Open("hw:Loopback,1,6", alsa.Capture, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if second, err := alsa.Open("hw:Loopback,1,6", alsa.Capture, cfg); !errors.Is(err, alsa.ErrBusy) {
		if err == nil {
			second.Close()
		}
		t.Errorf("second Open of hw:Loopback,1,6 = %v, want ErrBusy", err)
	}
	// Without a subdevice, the next free one.
	free, err := alsa.Open("hw:Loopback,1", alsa.Capture, cfg)
	if err != nil {
		t.Fatalf("Open(hw:Loopback,1) with subdevice 6 busy: %v", err)
	}
	if free.Addr().Subdevice == 6 {
		t.Errorf("hw:Loopback,1 opened the busy subdevice 6")
	}
	free.Close()

	// Close unblocks a Read that would take ten seconds.
	done := make(chan error, 1)
	var n int
	go func() {
		var err error
		n, err = first.Read(make([]int16, 10*48000))
		done <- err
	}()
	time.Sleep(500 * time.Millisecond) // let the Read block: not an assertion
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, alsa.ErrClosed) {
			t.Errorf("Read interrupted by Close = %v, want ErrClosed", err)
		}
		// Some frames, normally (9,024 on a quiet machine); none when a
		// starved goroutine had not reached Read by the Close, which must
		// then refuse it the same way.
		if n < 0 || n >= 10*48000 {
			t.Errorf("interrupted Read returned %d frames, want fewer than asked", n)
		}
		t.Logf("Close interrupted a Read after %d frames", n)
	case <-time.After(alsaTimeout):
		t.Fatal("Close did not unblock Read")
	}
	// The subdevice is free again.
	again, err := alsa.Open("hw:Loopback,1,6", alsa.Capture, cfg)
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	again.Close()
}

// feedTone plays a tone (rising and falling like speech) into the aloop end name until stop is
// closed, then closes the PCM. It returns when the stream is open, so the
// cable's format (mono 48 kHz) is set before the capture side opens.
func feedTone(t *testing.T, name string, freq float64, amp float64, stop <-chan struct{}) <-chan error {
	t.Helper()
	play, err := alsa.Open(name, alsa.Playback, alsa.Config{Channels: 1, Rate: 48000})
	if err != nil {
		t.Fatalf("open feed %s: %v", name, err)
	}
	tone := audiotest.Tone(48000, 48000, freq, amp, 0) // a whole number of cycles for 440 Hz
	// The tone rises and falls twice a second, between 0.35 and 1 of amp,
	// as a voice does by syllables: a steady tone is what Opus's DTX
	// takes for background noise, and it then sent a 60 ms frame now and
	// then (34 in 9 s), the receiver filling the rest with comfort noise.
	for i := range tone {
		tone[i] = int16(float64(tone[i]) * (0.675 + 0.325*math.Cos(2*math.Pi*2*float64(i)/48000)))
	}
	done := make(chan error, 1)
	go func() {
		defer play.Close()
		period := play.Params().PeriodFrames
		for i := 0; ; i = (i + period) % len(tone) {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := play.Write(tone[i : i+period]); err != nil {
				done <- err
				return
			}
		}
	}()
	return done
}

// TestALSAMicrophoneOpus runs the terminal's microphone path: a 440 Hz
// tone played into aloop is captured by media.Open's SourceALSA (the
// alsamic mediadevices driver over device/alsa), Opus-encoded by the
// AudioOnly profile's encoder, sent over a loopback call and decoded by a
// media.Receiver: the decoded audio must carry the tone.
func TestALSAMicrophoneOpus(t *testing.T) {
	needLoopback(t)
	stop := make(chan struct{})
	fed := feedTone(t, "hw:Loopback,0,4", 440, 8000, stop)
	defer func() {
		close(stop)
		if err := <-fed; err != nil {
			t.Errorf("feeding the tone: %v", err)
		}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), cameraTimeout)
	defer cancel()
	var logged logbuf.Buffer
	log := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), &logged), &slog.HandlerOptions{Level: slog.LevelInfo}))
	capture, err := openCapture(ctx, media.CaptureConfig{
		Profile:          media.AudioOnly,
		Microphone:       media.SourceALSA,
		MicrophoneDevice: "hw:Loopback,1,4",
		Log:              log,
	})
	if err != nil {
		t.Fatalf("media.Open(SourceALSA hw:Loopback,1,4): %v", err)
	}
	defer capture.Close()
	defer func() {
		// The kernel's period is the profile's Opus frame: a period read
		// is one frame encoded.
		want := fmt.Sprintf("period=%v", media.AudioOnly.AudioFrame)
		if l := logged.String(); !strings.Contains(l, "microphone recording") || !strings.Contains(l, want) {
			t.Errorf("the microphone did not record in periods of the call's Opus frame (%s); its log:\n%s", want, l)
		}
	}()
	if n := len(capture.Tracks()); n != 1 {
		t.Fatalf("capture has %d tracks, want the microphone's", n)
	}

	api, err := media.NewAPI(media.APIConfig{SettingEngine: mediatest.LoopbackSettingEngine()})
	if err != nil {
		t.Fatal(err)
	}
	terminal, phone := mediatest.NewCall(t, api, capture.Tracks())
	var mu sync.Mutex
	var heard []int16
	recv := media.NewReceiver(media.ReceiverConfig{
		WriteRTCP: phone.WriteRTCP,
		OnAudio: func(pcm []int16) {
			mu.Lock()
			heard = append(heard, pcm...)
			mu.Unlock()
		},
		Log: log,
	})
	var handlers sync.WaitGroup
	phone.OnTrack(func(tr *webrtc.TrackRemote, rr *webrtc.RTPReceiver) {
		handlers.Add(1)
		defer handlers.Done()
		if err := recv.Handle(tr, rr); err != nil {
			t.Errorf("receiver: %v", err)
		}
	})
	defer func() {
		capture.Detach(terminal)
		terminal.Close()
		phone.Close()
		handlers.Wait()
	}()
	mediatest.Negotiate(t, terminal, phone)

	// Two seconds decoded from packets. What the receiver plays also holds
	// the jitter buffer's comfort noise for the silence before the tone
	// came (DTX sends nothing for it): the last second played is the
	// tone once two seconds of it have been decoded.
	const want = 2 * media.AudioSampleRate
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		mu.Lock()
		n := len(heard)
		mu.Unlock()
		if recv.Stats().AudioSamplesDecoded >= want && n >= want {
			break
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			t.Fatalf("decoded %d samples before the deadline, want %d; stats %+v", n, want, recv.Stats())
		}
	}
	mu.Lock()
	pcm := slices.Clone(heard)
	mu.Unlock()
	t.Logf("receiver stats %+v", recv.Stats())
	// Skip the first half second (the encoder's start, the tone's onset).
	// Opus's DTX takes a steady tone for background noise at times and
	// sends nothing, which the receiver's jitter buffer fills with quiet
	// comfort noise: the tone is measured in the longest run of 20 ms
	// blocks that carry it (a speaking child's voice is not held back so).
	// One run, not every such block joined: each join is a jump in phase,
	// and on a starved VM (a capture overrun, blocks lost between) the
	// joins spread the tone's power onto its neighbours (440 Hz below
	// 400/480 Hz once in CI).
	var seg []int16
	last := pcm[len(pcm)-media.AudioSampleRate:]
	for start, end := 0, 0; end+960 <= len(last); end += 960 {
		if audiotest.RMS(last[end:end+960]) <= 8000/math.Sqrt2/4 {
			start = end + 960 // the run breaks here
			continue
		}
		if end+960-start > len(seg) {
			seg = last[start : end+960]
		}
	}
	if len(seg) < media.AudioSampleRate/10 {
		t.Fatalf("the longest run of the last second's blocks that carry the tone is %d samples, want 0.1 s; stats %+v", len(seg), recv.Stats())
	}
	rms := audiotest.RMS(seg)
	on := audiotest.Goertzel(seg, media.AudioSampleRate, 440)
	off := audiotest.Goertzel(seg, media.AudioSampleRate, 660)
	near := max(audiotest.Goertzel(seg, media.AudioSampleRate, 400), audiotest.Goertzel(seg, media.AudioSampleRate, 480))
	t.Logf("decoded: RMS %.0f, power at 440 Hz %.0f vs 400/480 Hz %.0f vs 660 Hz %.0f", rms, on, near, off)
	// Opus at 16 kbit/s is lossy but keeps a pure tone's pitch and level.
	// The pitch by its power (zero crossings are fooled by the joins of
	// the blocks kept): 440 Hz far above its neighbours a tenth away.
	// The fed tone's RMS: 8000/√2 under an envelope whose mean square is
	// 0.675² + 0.325²/2.
	if want := 8000 / math.Sqrt2 * math.Sqrt(0.675*0.675+0.325*0.325/2); rms < want/2 || rms > want*1.5 {
		t.Errorf("decoded RMS %.0f, want about %.0f (the fed tone's)", rms, want)
	}
	if on < 20*near {
		t.Errorf("440 Hz power %.0f is not far above 400/480 Hz's %.0f: the pitch moved", on, near)
	}
	if on < 100*off {
		t.Errorf("440 Hz power %.0f is not far above 660 Hz's %.0f", on, off)
	}
}

// captureInto reads a capture PCM a period at a time into a growing
// buffer until stop, reporting the frame count as it goes.
type captureInto struct {
	mu   sync.Mutex
	pcm  []int16
	done chan error
}

func startCapture(t *testing.T, name string, stop <-chan struct{}) *captureInto {
	t.Helper()
	c, err := alsa.Open(name, alsa.Capture, alsa.Config{Channels: 1, Rate: 48000})
	if err != nil {
		t.Fatalf("open capture %s: %v", name, err)
	}
	ci := &captureInto{done: make(chan error, 1)}
	go func() {
		defer c.Close()
		buf := make([]int16, c.Params().PeriodFrames)
		for {
			select {
			case <-stop:
				ci.done <- nil
				return
			default:
			}
			if _, err := c.Read(buf); err != nil {
				ci.done <- err
				return
			}
			ci.mu.Lock()
			ci.pcm = append(ci.pcm, buf...)
			ci.mu.Unlock()
		}
	}()
	return ci
}

func (ci *captureInto) snapshot() []int16 {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	return slices.Clone(ci.pcm)
}

// TestALSASpeaker plays the speaker's cues and voice into aloop and
// captures them back: "connected" arrives sample for sample with its two
// notes at G5 and C6, PlayCueWait returns only once the whole cue has come
// out of the loopback, and the voice written with WritePCM is heard.
func TestALSASpeaker(t *testing.T) {
	needLoopback(t)
	stop := make(chan struct{})
	capt := startCapture(t, "hw:Loopback,1,5", stop)
	defer func() {
		close(stop)
		if err := <-capt.done; err != nil {
			t.Errorf("capture: %v", err)
		}
	}()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	spk, err := speaker.Open(speaker.Options{Device: "hw:Loopback,0,5", Log: log})
	if err != nil {
		t.Fatalf("speaker.Open: %v", err)
	}
	defer spk.Close()
	if f := spk.Format(); f.Rate != 48000 || f.Channels != 1 {
		t.Fatalf("speaker format %+v, want mono 48 kHz (the cable's)", f)
	}

	ctx, cancel := context.WithTimeout(t.Context(), alsaTimeout)
	defer cancel()
	cue, _ := speaker.Synthesize(speaker.CueConnected, 48000)
	// Up to three plays: under TCG on a loaded host a period can come late
	// and the stream underrun (recovered, with silence in the cue: that path
	// is TestALSAXrunRecovery's). One play must arrive sample for sample; a
	// wrong format or a lost period in our code fails all three.
	var (
		waited        time.Duration
		got           []int16
		at, atReturn  int
		from, matched = 0, false
	)
	for try := 1; try <= 3 && !matched; try++ {
		from = len(capt.snapshot())
		start := time.Now()
		if err := spk.PlayCueWait(ctx, speaker.CueConnected); err != nil {
			t.Fatalf("PlayCueWait(connected): %v", err)
		}
		waited = time.Since(start)
		atReturn = len(capt.snapshot())
		time.Sleep(500 * time.Millisecond) // let the capture run on past the cue
		got = capt.snapshot()
		at = audiotest.Find(got[from:], cue)
		if at < 0 {
			t.Logf("play %d: connected cue not captured (peak %d in %d frames)", try, audiotest.Peak(got[from:]), len(got)-from)
			continue
		}
		at += from
		if end := at + len(cue); end > len(got) || firstDiff(got[at:end], cue) >= 0 {
			t.Logf("play %d: captured cue differs from the synthesized one", try)
			continue
		}
		matched = true
	}
	if !matched {
		t.Fatalf("no play of the connected cue arrived sample for sample")
	}
	end := at + len(cue)
	t.Logf("PlayCueWait took %v (cue %v); cue captured at frames %d..%d, %d frames captured when it returned",
		waited.Round(time.Millisecond), time.Duration(len(cue))*time.Second/48000, at, end, atReturn)
	if cueTime := time.Duration(len(cue)) * time.Second / 48000; waited < cueTime {
		t.Errorf("PlayCueWait returned after %v, before the %v cue could have played", waited, cueTime)
	}
	// Heard = out of the playback buffer, into the cable: by the time
	// PlayCueWait returned, the capture side had the cue's end within a
	// capture period or two (read granularity and aloop's timer).
	if slack := 2 * 960; end > atReturn+slack {
		t.Errorf("cue ends at captured frame %d but only %d were captured when PlayCueWait returned: returned early", end, atReturn)
	}
	notes, _, _ := speaker.Timeline(speaker.CueConnected)
	for _, n := range notes {
		a := at + int(n.Start.Seconds()*48000)
		seg := got[a+int(n.Dur.Seconds()*48000)/8 : a+int(n.Dur.Seconds()*48000)*5/8]
		on, off := audiotest.Goertzel(seg, 48000, n.Freq), audiotest.Goertzel(seg, 48000, n.Freq*0.84)
		if on < 20*off {
			t.Errorf("note at %v: power at %.0f Hz %.0f, not far above %.0f Hz's %.0f", n.Start, n.Freq, on, n.Freq*0.84, off)
		}
	}

	// Voice: 1.5 s of a 300 Hz tone, fed in 20 ms chunks as a call would.
	voice := audiotest.Tone(72000, 48000, 300, 6000, 0)
	mark := len(capt.snapshot())
	tick := time.NewTicker(20 * time.Millisecond)
	for i := 0; i < len(voice); i += 960 {
		spk.WritePCM(voice[i : i+960])
		<-tick.C
	}
	tick.Stop()
	time.Sleep(300 * time.Millisecond)
	heard := capt.snapshot()[mark:]
	seg := heard[len(heard)/4 : len(heard)*3/4]
	// An underrun (the 20 ms feed late under TCG on a loaded host) leaves a
	// stretch of silence that counts no crossings; the pitch is measured on
	// what was played. Underruns themselves are the jitter buffer's business
	// and are reported in the stats.
	f := audiotest.ZeroCrossingFreq(withoutSilence(seg, 200, 48), 48000)
	t.Logf("voice: %.2f Hz, RMS %.0f; speaker stats %+v", f, audiotest.RMS(seg), spk.Stats())
	if math.Abs(f-300) > 300*0.02 {
		t.Errorf("voice captured at %.2f Hz, want 300", f)
	}
	if on, off := audiotest.Goertzel(seg, 48000, 300), audiotest.Goertzel(seg, 48000, 400); on < 100*off {
		t.Errorf("voice: power at 300 Hz %.0f is not far above 400 Hz's %.0f", on, off)
	}
	if audiotest.Find(heard, voice) < 0 {
		t.Error("the voice's first samples are not in the capture unchanged")
	}
	if err := spk.Close(); err != nil {
		t.Errorf("speaker Close: %v", err)
	}
}

// withoutSilence drops every run of at least minRun samples whose magnitude
// stays under level: gaps in a tone, not its zero crossings (a 300 Hz tone
// of amplitude 6000 stays under 200 for about one sample at 48 kHz).
func withoutSilence(pcm []int16, level int16, minRun int) []int16 {
	out := make([]int16, 0, len(pcm))
	run := 0
	for i, v := range pcm {
		if v < level && v > -level {
			run++
			continue
		}
		if run > 0 && run < minRun {
			out = append(out, pcm[i-run:i]...)
		}
		run = 0
		out = append(out, v)
	}
	if run > 0 && run < minRun {
		out = append(out, pcm[len(pcm)-run:]...)
	}
	return out
}
