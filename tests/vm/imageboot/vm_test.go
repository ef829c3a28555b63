package imageboot_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// vm is one boot of the image in qemu-system-aarch64 (virt, Cortex-A53,
// TCG): the image's own kernel and initramfs (qemu's -kernel and -initrd
// stand in for the board's bootloader), the unit's disk as virtio-blk,
// an e1000 on qemu's user network reaching only the rendezvous server
// (restrict=on, one guestfwd), and i6300esb as the board's watchdog. The
// serial console is the test's only view into the unit: the simulated
// board's SIMLED lines, terminald's log, and "press".
type vm struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *os.File // the whole console, for a failure's post-mortem

	mu    sync.Mutex
	lines []line
	next  int
	led   ledState
	first ledState // the first SIMLED line: the simulated board set up (rcS's S01, after /data and the network)
	done  chan struct{}
	err   error // qemu's exit, once done
}

type line struct {
	text string
	at   time.Time
}

// ledState is the LEDs as the last SIMLED line said: "GRB" digits, the
// guest's uptime then, and when the host read it.
type ledState struct {
	rgb    string
	uptime float64
	at     time.Time
}

// qemuLimit bounds one boot's qemu whatever the test does.
const qemuLimit = 10 * time.Minute

// start boots the image with disk as its disk; server is the host port the
// guest's 10.0.2.100:80 leads to.
func (h *harness) start(t testing.TB, disk string, name string) *vm {
	t.Helper()
	logPath := filepath.Join(h.logDir, name+".console.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-M", "virt", "-cpu", "cortex-a53", "-accel", "tcg,thread=multi", "-smp", "2", "-m", "512",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", filepath.Join(h.image, "Image"), "-initrd", filepath.Join(h.image, "initrd.gz"),
		// The boot partition's cmdline.txt, and the simulated board's
		// console hooks; panic=-1 and -no-reboot: a panic ends qemu.
		"-append", "root=PARTLABEL=rootA console=ttyAMA0 panic=-1 tuanju.simconsole=1" + cond(h.cmdline != "", " "+h.cmdline, ""),
		// cache=unsafe: a SIGKILLed qemu loses the guest's page cache and
		// what it had not issued, whatever the mode; unsafe spares the
		// shared host the guest's flushes (tests/vm/README.md "Power cuts").
		"-drive", "file=" + disk + ",format=raw,if=virtio,cache=unsafe",
		"-netdev", "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:" + h.port + cond(h.fwd != "", ","+h.fwd, ""),
		"-device", "e1000,netdev=n0",
		"-device", "i6300esb",
	}
	args = append(args, h.qemuArgs...)
	cmd := exec.Command("qemu-system-aarch64", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = lf
	v := &vm{t: t, cmd: cmd, stdin: stdin, log: lf, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu-system-aarch64: %v", err)
	}
	t.Logf("host: %s: qemu pid %d, console %s", name, cmd.Process.Pid, logPath)
	start := time.Now()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		v.read(stdout, start)
	}()
	go func() {
		err := cmd.Wait()
		<-readDone
		v.mu.Lock()
		v.err = err
		v.mu.Unlock()
		lf.Close()
		close(v.done)
	}()
	limit := time.AfterFunc(qemuLimit, func() { cmd.Process.Kill() })
	t.Cleanup(func() {
		limit.Stop()
		cmd.Process.Kill()
		<-v.done
		if t.Failed() {
			// The lights, which the test's log leaves out.
			v.mu.Lock()
			ls := v.lines[max(0, len(v.lines)-30):]
			v.mu.Unlock()
			for _, l := range ls {
				t.Logf("%s console| %s", name, l.text)
			}
		}
	})
	return v
}

// simled is the simulated board's LED line; at the end of a console line
// too, where a kernel message written without its newline ran into it.
var simled = regexp.MustCompile(`SIMLED ([01]{3}) ([0-9.]+)$`)

// read takes the console line by line. SIMLED lines (many a second while
// a light breathes) go only to the log file; the rest to the test's log.
func (v *vm) read(r io.Reader, start time.Time) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		s, err := br.ReadString('\n')
		if s != "" {
			v.log.WriteString(s)
			l := strings.TrimRight(s, "\r\n")
			now := time.Now()
			v.mu.Lock()
			if m := simled.FindStringSubmatch(l); m != nil {
				up, _ := strconv.ParseFloat(m[2], 64)
				v.led = ledState{rgb: m[1], uptime: up, at: now}
				if v.first.at.IsZero() {
					v.first = v.led
				}
			} else {
				v.t.Logf("vm %5.1fs| %s", now.Sub(start).Seconds(), l)
			}
			v.lines = append(v.lines, line{text: l, at: now})
			v.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// press types "press" on the console: the simulated board holds the call
// button down for 500 ms.
func (v *vm) press(t testing.TB) {
	t.Helper()
	if _, err := io.WriteString(v.stdin, "press\n"); err != nil {
		t.Fatalf("press on the console: %v", err)
	}
}

// cut is the power switch: SIGKILL to qemu, no warning; it returns once
// qemu is gone.
func (v *vm) cut(t testing.TB) {
	t.Helper()
	if err := v.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill qemu: %v", err)
	}
	select {
	case <-v.done:
	case <-time.After(60 * time.Second):
		t.Fatal("qemu still running 60 s after SIGKILL")
	}
}

// await returns the first unread console line containing sub.
func (v *vm) await(t testing.TB, d time.Duration, sub string) line {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v.mu.Lock()
		for ; v.next < len(v.lines); v.next++ {
			if l := v.lines[v.next]; strings.Contains(l.text, sub) {
				v.next++
				v.mu.Unlock()
				return l
			}
		}
		v.mu.Unlock()
		select {
		case <-v.done:
			v.mu.Lock()
			for ; v.next < len(v.lines); v.next++ {
				if l := v.lines[v.next]; strings.Contains(l.text, sub) {
					v.next++
					v.mu.Unlock()
					return l
				}
			}
			err := v.err
			v.mu.Unlock()
			t.Fatalf("qemu ended (%v) before the console showed %q (console: %s)", err, sub, v.log.Name())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console showed no %q within %v (console: %s)", sub, d, v.log.Name())
		}
	}
}

// find is await without consuming: the first console line, read or not,
// containing sub (two markers can share a line when the console mixes
// writers).
func (v *vm) find(t testing.TB, d time.Duration, sub string) line {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v.mu.Lock()
		for _, l := range v.lines {
			if strings.Contains(l.text, sub) {
				v.mu.Unlock()
				return l
			}
		}
		v.mu.Unlock()
		select {
		case <-v.done:
			if v.saw(sub) {
				return v.find(t, d, sub)
			}
			t.Fatalf("qemu ended before the console showed %q (console: %s)", sub, v.log.Name())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console showed no %q within %v (console: %s)", sub, d, v.log.Name())
		}
	}
}

// saw reports whether any console line so far contains sub.
func (v *vm) saw(sub string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.ContainsFunc(v.lines, func(l line) bool { return strings.Contains(l.text, sub) })
}

// steady waits until the LEDs have shown rgb with no change for hold (the
// blinks change every 125–500 ms, a breathing light every few tens of
// ms), and returns that state: its uptime is when the guest lit it.
func (v *vm) steady(t testing.TB, d time.Duration, rgb string, hold time.Duration) ledState {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v.mu.Lock()
		s := v.led
		v.mu.Unlock()
		if s.rgb == rgb && time.Since(s.at) >= hold {
			return s
		}
		select {
		case <-v.done:
			t.Fatalf("qemu ended before the LEDs held %s (console: %s)", rgb, v.log.Name())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the LEDs did not hold %s (green red blue) for %v within %v; last %+v (console: %s)", rgb, hold, d, s, v.log.Name())
		}
	}
}

// blinking waits until the LEDs show the pattern with only the given
// colours lit at times (e.g. pairing: blue's slow blink, "001"/"000").
func (v *vm) blinking(t testing.TB, d time.Duration, on string) {
	t.Helper()
	deadline := time.Now().Add(d)
	seen := 0
	last := time.Time{}
	for time.Now().Before(deadline) {
		v.mu.Lock()
		s := v.led
		v.mu.Unlock()
		if s.at != last {
			last = s.at
			if s.rgb == on {
				seen++
			} else if s.rgb != "000" {
				seen = 0
			}
			if seen >= 2 {
				return
			}
		}
		select {
		case <-v.done:
			t.Fatalf("qemu ended before the LEDs blinked %s (console: %s)", on, v.log.Name())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("the LEDs did not blink %s within %v (console: %s)", on, d, v.log.Name())
}

// jsonField is a string field of a terminald JSON log line.
func jsonField(l, key string) string {
	m := regexp.MustCompile(`"` + regexp.QuoteMeta(key) + `":"([^"]*)"`).FindStringSubmatch(l)
	if m == nil {
		return ""
	}
	return m[1]
}

func cond(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

func (s ledState) String() string {
	return fmt.Sprintf("%s at %.2fs", s.rgb, s.uptime)
}
