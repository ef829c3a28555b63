package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/mediadevices/pkg/io/audio"
	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/mediadevices/pkg/wave"

	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/opusdec"
	"github.com/tuanju/tuanju/media/synth"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// callWindow is how long each benchmark iteration measures a live call.
const callWindow = 5 * time.Second

// BenchmarkTerminalCallCPU measures the real terminald process (simulated
// board, synthetic camera and microphone) during a call with a Go phone:
// capture, H.264 + Opus encode, SRTP, the parent's media decoded. Its CPU
// share of one core and its RSS are reported beside the reference measured
// in the same run: the call's codecs alone, both ways, at the call's pace
// and back to back (rawCodecCPU). x-raw-codec is the pipeline's overhead
// factor over the paced codecs (issue 12's goal: ≤ 2), x-raw-codec-hot
// over the back-to-back ones. TUANJU_TERMINALD is a prebuilt binary,
// possibly behind a runner
// ("qemu-aarch64 bin/arm64/terminald", with this test binary cross-built
// and run under qemu-aarch64 too, so the reference is emulated alike: see
// bench/run); by default terminald is built here as make build builds it.
func BenchmarkTerminalCallCPU(b *testing.B) {
	bin := strings.Fields(os.Getenv("TUANJU_TERMINALD"))
	if len(bin) == 0 {
		bin = []string{filepath.Join(b.TempDir(), "terminald")}
		// As make build makes what ships (the Makefile's STATIC): a
		// static, stripped binary; a default build links openh264, libopus
		// and libc as shared libraries, whose pages count in its RSS.
		build := exec.Command("go", "build", "-trimpath", "-tags", "netgo,osusergo",
			"-ldflags", "-s -w -linkmode external -extldflags -static", "-o", bin[0], "./cmd/terminald")
		build.Dir = filepath.Join("..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("build terminald: %v\n%s", err, out)
		}
	}
	// The reference first, on a quiet machine, as the terminal's figure is
	// taken with only the call running.
	window := callWindow * time.Duration(b.N)
	hot, ref, sources := rawCodecCPU(b, window)
	if b.Failed() {
		return
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := rendezvoustest.NewServer(b, nil)
	p := startTerminald(b, ctx, bin, srv)

	// Pair once it is online: a pairing request for a terminal the server
	// has not seen yet goes nowhere.
	eventually(b, step, "terminald online", func() bool { return p.status(b, ctx).Online })
	st := p.status(b, ctx)
	pctx, pcancel := context.WithTimeout(ctx, step)
	defer pcancel()
	cred, err := rendezvoustest.PairLink(pctx, srv.WSURL, st.PairingURL, p.pressWhenPairing)
	if err != nil {
		b.Fatalf("pairing: %v", err)
	}
	conn, err := rendezvoustest.DialPaired(ctx, srv.WSURL, cred)
	if err != nil {
		b.Fatal(err)
	}
	ph := NewPhone(conn, PhoneConfig{
		API:     loopbackAPI(b),
		Capture: media.CaptureConfig{Profile: media.LowData, Camera: media.SourceSynthetic, Microphone: media.SourceSynthetic},
		Log:     testLog(b),
	})
	go ph.Run(ctx)
	defer conn.Close()
	eventually(b, step, "terminald ready", func() bool { s := p.status(b, ctx); return s.State == "idle" && s.PeerOnline })

	if err := p.post(ctx, "/api/button/press"); err != nil {
		b.Fatal(err)
	}
	ring := await(b, ph, protocol.TypeRing)
	if err := ph.Accept(ctx, ring.CallID); err != nil {
		b.Fatal(err)
	}
	await(b, ph, protocol.TypeOffer)
	c := ph.Current()
	eventually(b, mediaWait, "phone decodes the terminal's video", func() bool { return c.Stats().VideoFramesDecoded >= 30 })

	var cpu time.Duration
	frames0 := c.Stats().VideoFramesDecoded
	b.ResetTimer()
	for range b.N {
		t0 := p.cpu(b)
		time.Sleep(callWindow)
		cpu += p.cpu(b) - t0
	}
	b.StopTimer()
	frames := c.Stats().VideoFramesDecoded - frames0
	if frames < int64(window.Seconds())*int64(media.LowData.FPS)/2 {
		b.Fatalf("phone decoded only %d frames in %v: the call is not live", frames, window)
	}
	m := p.memory(b)

	b.ReportMetric(100*cpu.Seconds()/window.Seconds(), "%core-terminal")
	b.ReportMetric(100*ref.Seconds()/window.Seconds(), "%core-raw-codec")
	b.ReportMetric(100*hot.Seconds()/window.Seconds(), "%core-raw-codec-hot")
	b.ReportMetric(cpu.Seconds()/hot.Seconds(), "x-raw-codec-hot")
	b.ReportMetric(100*sources.Seconds()/window.Seconds(), "%core-synth-sources")
	b.ReportMetric(cpu.Seconds()/ref.Seconds(), "x-raw-codec")
	b.ReportMetric((cpu-sources).Seconds()/ref.Seconds(), "x-raw-codec-board")
	b.ReportMetric(float64(m["VmRSS"])/1024, "MB-rss")
	b.ReportMetric(float64(m["VmHWM"])/1024, "MB-rss-peak")
	b.ReportMetric(float64(m["RssAnon"])/1024, "MB-rss-anon")
	b.ReportMetric(float64(m["RssFile"])/1024, "MB-rss-file")
}

// rawCodecCPU is the CPU time the codecs alone take for a low-data call of
// the given length, with the call's own settings (media.CodecParams):
// openh264 encoding the synthetic camera's frames and decoding them again
// (the terminal encodes its camera and decodes the parent's picture), and
// libopus encoding the synthetic microphone and decoding the packets
// again (its microphone, the parent's voice). It is the whole process's
// CPU time (getrusage RUSAGE_SELF) with nothing else running, so every
// codec thread counts; the pictures and the sound are made beforehand
// (the terminal's synthetic camera and microphone render in the call:
// counted against it in x-raw-codec; sources is what making them took,
// which x-raw-codec-board takes off, as a board's camera and microphone
// hand over their pictures and sound for a fraction of that).
//
// The codecs run twice: hot, every picture and packet back to back, and
// paced, at the call's own pace (a picture every 1/FPS and an Opus frame
// every AudioFrame, each in its own goroutine as in a call). A call can
// only run its codecs paced, and a codec called every 40 or 67 ms finds
// its tables and state out of the caches: libopus costs ~1.7× as much
// paced as hot. Paced is the codecs' own work in a call, what the
// pipeline's overhead is measured against; hot is reported beside it.
func rawCodecCPU(b *testing.B, window time.Duration) (hot, paced, sources time.Duration) {
	p := media.LowData
	// The terminal's camera as the call opens it (media.Profile.CaptureFPS;
	// it paints only the pictures the call sends, synth.CameraOptions.SentFPS).
	n := int(window.Seconds()) * p.FPS
	rendering := processCPU(b)
	cam, err := synth.NewCamera(synth.CameraOptions{Width: p.Width, Height: p.Height, FPS: p.CaptureFPS(), SentFPS: p.FPS, Unpaced: true})
	if err != nil {
		b.Fatal(err)
	}
	pics := make([]image.Image, n)
	for i := range pics {
		if pics[i], _, err = cam.Read(); err != nil {
			b.Fatal(err)
		}
	}
	mic, err := synth.NewMicrophone(synth.MicrophoneOptions{Unpaced: true})
	if err != nil {
		b.Fatal(err)
	}
	var chunks []wave.Audio
	for range int(window / (10 * time.Millisecond)) {
		a, _, err := mic.Read()
		if err != nil {
			b.Fatal(err)
		}
		chunks = append(chunks, a)
	}
	sources = processCPU(b) - rendering
	for _, pace := range []bool{false, true} {
		start := processCPU(b)
		var wg sync.WaitGroup
		wg.Go(func() { videoCodecs(b, p, pics, pace) })
		if !pace {
			wg.Wait()
		}
		wg.Go(func() { audioCodecs(b, p, chunks, window, pace) })
		wg.Wait()
		if used := processCPU(b) - start; pace {
			paced = used
		} else {
			hot = used
		}
	}
	return hot, paced, sources
}

// sliceReader hands out items one by one, then io.EOF: a source of
// pictures or sound made beforehand.
func sliceReader[T any](items []T) func() (T, func(), error) {
	i := 0
	return func() (T, func(), error) {
		if i == len(items) {
			var zero T
			return zero, func() {}, io.EOF
		}
		i++
		return items[i-1], func() {}, nil
	}
}

// ticker paces a reference codec loop: nil when it runs hot.
func ticker(pace bool, every time.Duration) func() {
	if !pace {
		return func() {}
	}
	t := time.NewTicker(every)
	return func() { <-t.C }
}

// videoCodecs encodes pics with the call's H.264 settings and decodes them
// again, one a frame period apart when paced.
func videoCodecs(b *testing.B, p media.Profile, pics []image.Image, pace bool) {
	hp, _, err := media.CodecParams(p)
	if err != nil {
		b.Error(err)
		return
	}
	src := video.ReaderFunc(sliceReader(pics))
	venc, err := hp.BuildVideoEncoder(src, prop.Media{Video: prop.Video{Width: p.Width, Height: p.Height, FrameRate: float32(p.FPS)}})
	if err != nil {
		b.Error(err)
		return
	}
	defer venc.Close()
	vdec, err := h264dec.New()
	if err != nil {
		b.Error(err)
		return
	}
	defer vdec.Close()
	tick := ticker(pace, time.Second/time.Duration(p.FPS))
	decoded := 0
	for range pics {
		tick()
		au, release, err := venc.Read()
		if err != nil {
			b.Error(err)
			return
		}
		if img, err := vdec.Decode(au); err == nil && img != nil {
			decoded++
		}
		release()
	}
	if decoded < len(pics)/2 {
		b.Errorf("reference decoded %d of %d frames", decoded, len(pics))
	}
}

// audioCodecs encodes chunks with the call's Opus settings and decodes
// the packets again, one a frame apart when paced.
func audioCodecs(b *testing.B, p media.Profile, chunks []wave.Audio, window time.Duration, pace bool) {
	_, op, err := media.CodecParams(p)
	if err != nil {
		b.Error(err)
		return
	}
	sound := audio.ReaderFunc(sliceReader(chunks))
	aenc, err := op.BuildAudioEncoder(sound, prop.Media{Audio: prop.Audio{SampleRate: 48000, ChannelCount: 1}})
	if err != nil {
		b.Error(err)
		return
	}
	defer aenc.Close()
	adec, err := opusdec.New(48000, 1)
	if err != nil {
		b.Error(err)
		return
	}
	defer adec.Close()
	tick := ticker(pace, p.AudioFrame)
	pcm := make([]int16, 48000*120/1000) // libopus's longest frame
	var samples time.Duration
	for {
		tick()
		pkt, release, err := aenc.Read()
		if err != nil {
			break // the sound's end
		}
		// A DTX gap is decoded as concealment, as a receiver does.
		k, err := adec.Decode(pkt, pcm)
		if err != nil {
			b.Error(err)
			return
		}
		samples += time.Duration(k) * time.Second / 48000
		release()
	}
	if samples < window/2 {
		b.Errorf("reference decoded %v of sound, want about %v", samples, window)
	}
}

// processCPU is this process's CPU time, all threads (getrusage
// RUSAGE_SELF).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// terminaldProc is a running terminald with the simulated board's panel.
type terminaldProc struct {
	cmd   *exec.Cmd
	panel string // http://host:port
}

func startTerminald(b *testing.B, ctx context.Context, bin []string, srv *rendezvoustest.Server) *terminaldProc {
	dir := b.TempDir()
	state := filepath.Join(dir, "terminal.db")
	rendezvoustest.ProvisionFile(b, state)
	cmd := exec.CommandContext(ctx, bin[0], append(bin[1:], "-server", srv.WSURL, "-public-url", srv.URL, "-board", "sim",
		"-panel", "127.0.0.1:0", "-loopback-only", "-state", state,
		"-camera", media.SourceSynthetic, "-mic", media.SourceSynthetic, "-log-format", "text")...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(dir, "terminald.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		logs.Close()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "device panel: "); ok {
				found <- strings.TrimSuffix(rest, "/")
			}
		}
	}()
	select {
	case panel := <-found:
		return &terminaldProc{cmd: cmd, panel: panel}
	case <-time.After(step):
		b.Fatalf("terminald printed no panel address (log %s)", logs.Name())
	}
	return nil
}

func (p *terminaldProc) status(b *testing.B, ctx context.Context) terminal.Status {
	var st terminal.Status
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.panel+"/api/terminal", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		b.Fatal(err)
	}
	return st
}

func (p *terminaldProc) post(ctx context.Context, path string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.panel+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return nil
}

// pressWhenPairing presses the button once the lights ask for it.
func (p *terminaldProc) pressWhenPairing(ctx context.Context) error {
	for {
		var s struct{ Pattern string }
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.panel+"/api/state", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			json.NewDecoder(resp.Body).Decode(&s)
			resp.Body.Close()
		}
		if s.Pattern == "pairing" {
			return p.post(ctx, "/api/button/press")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cpu is the process's user + system time so far (/proc/PID/stat).
func (p *terminaldProc) cpu(b *testing.B) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name in parentheses; utime and stime are
	// the 14th and 15th fields, in clock ticks (100 per second on Linux).
	stat := string(raw)
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+stime) * (time.Second / 100)
}

// memory is the process's resident set and its peak, in KiB.
func (p *terminaldProc) memory(b *testing.B) map[string]int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		m[strings.TrimSuffix(f[0], ":")] = v
	}
	if m["VmRSS"] == 0 {
		b.Fatalf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
	}
	return m
}
