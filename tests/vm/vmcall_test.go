//go:build vmtest

package vm_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/pins"
)

// TestCallDriver is the VM's half of the whole-call test (tests/vm/call
// holds the host's half: the rendezvous server and Chromium). It starts the
// real static terminald on the gpio board — periph on gpio-sim, vivid through
// V4L2 — and plays the child: it watches the LEDs through gpio-sim's value
// files and presses the button through its pull file, exactly as a finger
// and an eye would. It prints "VMCALL ..." markers on the console for the
// host, which reads them as they stream:
//
//	VMCALL pairing_url=URL       the parent's page opens it
//	VMCALL paired                the terminal is paired and sees the parent online
//	VMCALL in_call               the parent answered: the in-call light is on
//	VMCALL rx video_frames=N ... what the terminal decoded of the parent's video
//
// It runs only when the host asked for it (TUANJU_VMCALL=1 on the kernel
// command line, with the server and ICE settings; see tests/vm/call).
func TestCallDriver(t *testing.T) {
	if os.Getenv("TUANJU_VMCALL") != "1" {
		t.Skip("the VM half of tests/vm/call: runs only when that test boots the VM")
	}
	env := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			t.Fatalf("%s not set on the kernel command line", k)
		}
		return v
	}
	button := filepath.Join(simLine(t, "CALL_BUTTON"), "pull")
	leds := map[device.Color]string{}
	for c, name := range pins.DefaultMap().LEDs {
		leds[c] = filepath.Join(simLine(t, name), "value")
	}
	writeAttr(t, button, "pull-up") // released: the button is active low

	level := os.Getenv("TUANJU_VMCALL_LOG_LEVEL") // debug: pion's and the receiver's details
	if level == "" {
		level = "info"
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "terminald.toml")
	body := fmt.Sprintf(`server_url = %q
public_url = %q
state_file = %q
board = "gpio"
log_format = "json"
log_level = %q
watchdog = "/dev/watchdog"
watchdog_timeout = "10s"
screen = ""
[media]
camera = "v4l2"
camera_device = "/dev/video0"
microphone = "synthetic"
[ice]
port = %s
advertise_ips = [%q]
networks = ["tcp4"]
`, env("TUANJU_VMCALL_SERVER"), env("TUANJU_VMCALL_PUBLIC"), filepath.Join(dir, "terminal.db"), level,
		env("TUANJU_VMCALL_ICE_PORT"), env("TUANJU_VMCALL_ICE_IP"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}

	// softdog (soft_noboot=1) is the board's watchdog: terminald pets it
	// from its loop all through the call; the kernel log must never say it
	// starved, nor that it was left running at exit.
	if _, err := os.Stat("/sys/module/softdog"); err != nil {
		t.Fatal("softdog not loaded: tests/vm/call boots the VM with -m 'softdog soft_noboot=1'")
	}
	klog := openKmsg(t)

	// Provisioning: the identity bundle the host issued, imported as the
	// flashing station would.
	if out, err := exec.Command("terminald", "identity", "import", "-config", conf, env("TUANJU_VMCALL_IDENTITY")).CombinedOutput(); err != nil {
		t.Fatalf("terminald identity import: %v\n%s", err, out)
	}
	// The label's link, read the technician's way (terminald never prints
	// or logs the pairing secret by itself).
	label, err := exec.Command("terminald", "label", "-config", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("terminald label: %v\n%s", err, label)
	}
	var url string
	for line := range strings.Lines(string(label)) {
		if strings.HasPrefix(line, "http") {
			url = strings.TrimSpace(line)
			break
		}
	}
	if url == "" {
		t.Fatalf("terminald label printed no link:\n%s", label)
	}
	d := startDaemon(t, "terminald", "-config", conf)
	// A pairing request for a terminal the server has not seen yet fails:
	// hand the link out once the terminal is online, as a label is read
	// off a unit that is already on.
	d.waitLog(t, 60*time.Second, func(r logRecord) bool { return r.Msg == "connected to the rendezvous server" })
	fmt.Printf("VMCALL pairing_url=%s\n", url)

	// The parent opens the link; the terminal asks for a press. Wait for
	// the request itself first: under TCG the "pairable" glow, sampled
	// slowly, can look like the "pairing" blink, and a press before the
	// request arrives is an ordinary press (no answer: nobody to call).
	d.waitLog(t, 120*time.Second, func(r logRecord) bool { return r.Msg == "pairing request" })
	waitPattern(t, leds, device.Pairing, 30*time.Second)
	press(t, button)
	waitPattern(t, leds, device.Ready, 30*time.Second)
	d.waitLog(t, 30*time.Second, func(r logRecord) bool {
		return r.Msg == "parent presence" && r.Online != nil && *r.Online
	})
	fmt.Println("VMCALL paired")

	// The child calls; the parent's page rings and answers.
	// (The "calling" light may last less than one look: the host answers
	// as soon as the page rings.)
	press(t, button)
	waitPattern(t, leds, device.InCall, 60*time.Second)
	fmt.Println("VMCALL in_call")

	// The parent hangs up once the page has decoded enough; the terminal
	// logs what it received.
	waitPattern(t, leds, device.Ready, 120*time.Second)
	end := d.waitLog(t, 10*time.Second, func(r logRecord) bool { return r.Msg == "call ended" })
	fmt.Printf("VMCALL rx video_frames=%d video_size=%s decode_errors=%d audio_samples=%d outcome=%s\n",
		end.RxVideoFrames, end.RxVideoSize, end.RxVideoDecodeErrors, end.RxAudioSamples, end.Outcome)
	if end.RxVideoFrames < 30 {
		t.Errorf("terminal decoded %d frames of the parent's video, want ≥ 30", end.RxVideoFrames)
	}
	if end.RxAudioSamples < 48000 {
		t.Errorf("terminal decoded %d samples of the parent's audio, want ≥ 1 s (48000)", end.RxAudioSamples)
	}
	d.stop(t)
	for _, bad := range []string{softdogFired, didNotStop} {
		if klog.has(t, bad) {
			t.Errorf("kernel log says %q: terminald's loop stopped petting the watchdog, or it exited without the magic close", bad)
		}
	}
}

// press presses and releases the button (pulled low while pressed), shorter
// than a long press.
func press(t *testing.T, pull string) {
	t.Helper()
	writeAttr(t, pull, "pull-down")
	time.Sleep(200 * time.Millisecond)
	writeAttr(t, pull, "pull-up")
}

// ledMode is what one LED did over a sampling window.
type ledMode string

const (
	lOff  ledMode = "off"
	lOn   ledMode = "on"
	lSlow ledMode = "slow"
	lFast ledMode = "fast"
	// lGlow: offline's software-PWM breathing. Sampled every 20 ms, its
	// 100 Hz PWM aliases into many irregular changes, more than a 4 Hz
	// blink's ~10 in the window.
	lGlow ledMode = "breathe"
)

// lookWindow is long enough to tell steady from a 1 Hz blink (on 500 ms,
// off 500 ms) and slow from fast (4 Hz: eight changes a second).
const lookWindow = 1200 * time.Millisecond

// look samples the LEDs' gpio-sim values for lookWindow and names the
// pattern they show ("" for a mix no pattern makes, e.g. mid-change).
func look(t *testing.T, leds map[device.Color]string) (device.Pattern, map[device.Color]ledMode) {
	t.Helper()
	type trace struct{ ons, changes, n int }
	tr := map[device.Color]*trace{}
	last := map[device.Color]string{}
	for c := range leds {
		tr[c] = &trace{}
	}
	for end := time.Now().Add(lookWindow); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for c, p := range leds {
			v := readAttr(t, p)
			s := tr[c]
			s.n++
			if v == "1" {
				s.ons++
			}
			if last[c] != "" && last[c] != v {
				s.changes++
			}
			last[c] = v
		}
	}
	modes := map[device.Color]ledMode{}
	for c, s := range tr {
		switch {
		case s.ons == 0:
			modes[c] = lOff
		case s.ons == s.n:
			modes[c] = lOn
		case s.changes <= 4:
			modes[c] = lSlow
		case s.changes <= 14:
			modes[c] = lFast
		default:
			modes[c] = lGlow
		}
	}
	g, r, b := modes[device.Green], modes[device.Red], modes[device.Blue]
	want := map[device.Pattern][3]ledMode{
		device.Off:      {lOff, lOff, lOff},
		device.Ready:    {lOn, lOff, lOff},
		device.Calling:  {lSlow, lOff, lOff},
		device.Ringing:  {lFast, lOff, lFast},
		device.InCall:   {lOff, lOff, lOn},
		device.NoAnswer: {lOff, lSlow, lOff},
		device.Offline:  {lOff, lGlow, lOff},
		device.Fault:    {lOff, lFast, lOff},
		device.Pairing:  {lOff, lOff, lSlow},
		device.Pairable: {lOff, lOff, lGlow},
	}
	for p, m := range want {
		if m == [3]ledMode{g, r, b} {
			return p, modes
		}
	}
	return "", modes
}

// waitPattern watches the LEDs until they show p.
func waitPattern(t *testing.T, leds map[device.Color]string, p device.Pattern, d time.Duration) {
	t.Helper()
	start := time.Now()
	var seen device.Pattern
	var modes map[device.Color]ledMode
	for time.Since(start) < d {
		seen, modes = look(t, leds)
		if seen == p {
			t.Logf("LEDs show %s after %.1fs", p, time.Since(start).Seconds())
			return
		}
	}
	t.Fatalf("LEDs did not show %s within %v: last %q (%v)", p, d, seen, modes)
}

// logRecord is the part of terminald's JSON log lines the driver reads.
type logRecord struct {
	Msg                 string `json:"msg"`
	Online              *bool  `json:"online"`
	CallID              string `json:"call_id"`
	ParentID            string `json:"parent_id"`
	ParentOnline        *bool  `json:"parent_online"`
	Outcome             string `json:"outcome"`
	RxVideoFrames       int64  `json:"rx_video_frames"`
	RxVideoSize         string `json:"rx_video_size"`
	RxVideoDecodeErrors int64  `json:"rx_video_decode_errors"`
	RxAudioSamples      int64  `json:"rx_audio_samples"`
}

// daemon is terminald running as a child process; its output is copied to
// the console and kept for the waits.
type daemon struct {
	cmd  *exec.Cmd
	done chan error

	mu     sync.Mutex
	stdout []string
	log    []logRecord
}

func startDaemon(t *testing.T, name string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(name, args...), done: make(chan error, 1)}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	copyLines := func(r io.Reader, keep func(string)) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Printf("%s| %s\n", name, sc.Text())
			keep(sc.Text())
		}
	}
	go copyLines(stdout, func(s string) { d.mu.Lock(); d.stdout = append(d.stdout, s); d.mu.Unlock() })
	go copyLines(stderr, func(s string) {
		var r logRecord
		if json.Unmarshal([]byte(s), &r) == nil {
			d.mu.Lock()
			d.log = append(d.log, r)
			d.mu.Unlock()
		}
	})
	go func() { wg.Wait(); d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
		}
	})
	return d
}

// waitLog returns the first log record that ok accepts.
func (d *daemon) waitLog(t *testing.T, timeout time.Duration, ok func(logRecord) bool) logRecord {
	t.Helper()
	var got logRecord
	d.wait(t, timeout, "a record in terminald's log", func() bool {
		for _, r := range d.log {
			if ok(r) {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

// wait polls cond (under d.mu) until it holds, terminald exits, or timeout.
func (d *daemon) wait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d.mu.Lock()
		ok := cond()
		d.mu.Unlock()
		if ok {
			return
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("terminald exited (%v) while waiting for %s", err, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends terminald the way init does (SIGTERM) and checks it exits cleanly.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal terminald: %v", err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("terminald exited with %v after SIGTERM, want a clean exit", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("terminald did not exit within 15 s of SIGTERM")
	}
}
