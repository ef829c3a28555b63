// Package call_test is the kernel-in-the-loop whole call: the real static
// terminald runs inside the qemu VM on Debian's kernel (button and LEDs on
// gpio-sim through periph, the camera on vivid through V4L2), while the
// rendezvous server and headless Chromium, the parent's phone, run here on
// the host's loopback. The VM's half is TestCallDriver in tests/vm.
//
// The VM's network is qemu's user network with restrict=on: the guest
// reaches nothing but two forwards, and slirp drops every UDP packet it
// sends. So:
//
//   - signalling: guestfwd 10.0.2.100:80 → the server's 127.0.0.1 port; the
//     terminal's server_url is ws://10.0.2.100/ws, and its public_url the
//     server's loopback address (the pairing link Chromium opens);
//   - media: the terminal's [ice] settings for a unit behind a port forward
//     — ICE on one fixed port, TCP only, host candidate advertised as
//     127.0.0.1 — and a hostfwd tcp 127.0.0.1:P → guest :P. Chromium
//     connects to that passive ICE-TCP candidate; RTP, RTCP and DTLS flow
//     over the forwarded TCP connection. The server runs without TURN, so no
//     other path exists.
//
// Run with `make vmtest-call` (it builds the static binaries and sets
// TUANJU_VMCALL_BIN); without that variable the test skips.
package call_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// Waits are generous: they bound a hang, they do not measure (the VM is
// emulated, TCG, on a shared machine).
const (
	bootWait  = 90 * time.Second // VM boot + terminald start + pairing link
	stepWait  = 60 * time.Second
	mediaWait = 90 * time.Second
	// minFrames is what the page must decode of the terminal's vivid camera.
	minFrames = 60
	// minSamples is 1 s of the terminal's (synthetic) microphone.
	minSamples = 48000
	// holdCall is how long the call goes on after that.
	holdCall = 10 * time.Second
)

func TestCallThroughVM(t *testing.T) {
	bin := os.Getenv("TUANJU_VMCALL_BIN")
	if bin == "" {
		t.Skip("boots the qemu VM: run with `make vmtest-call` (sets TUANJU_VMCALL_BIN)")
	}
	arch := os.Getenv("TUANJU_VM_ARCH")
	if arch == "" {
		arch = "amd64"
	}
	_, file, _, _ := runtime.Caller(0)
	runScript := filepath.Join(filepath.Dir(file), "..", "run")

	srv := rendezvoustest.NewServer(t, func(c *rendezvous.Config) {
		c.TURN.Listen = "" // no relay: the forwarded ICE-TCP port is the only path
		// qemu's guestfwd opens its connection to the server when the VM
		// starts, and the guest's request arrives on it only once terminald
		// runs, seconds later: the production header deadline (5 s, against
		// slow-loris clients) would close it first.
		c.Limits.ReadHeaderTimeout = 3 * time.Minute
	})
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	icePort := freeTCPPort(t)
	// The unit's identity, as the flashing station writes it: the VM's
	// terminald imports it before it starts.
	bundle, deviceID := rendezvoustest.BundleFile(t)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var cpu []string
	if arch == "amd64" {
		// mediadevices' bundled libopus used AVX, which qemu's default x86
		// CPU lacks (SIGILL in opus_encoder_create); TCG's "max" has it.
		// Debian's libopus, linked now, has no AVX code; "max" is kept.
		cpu = []string{"-c", "max"}
	}
	vm := bootVM(ctx, t, runScript, arch,
		append(cpu,
			"-g", "-m", "vivid n_devs=1 node_types=0x1", "-m", "softdog soft_noboot=1",
			"-n", fmt.Sprintf("guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:%s,hostfwd=tcp:127.0.0.1:%d-:%d", u.Port(), icePort, icePort),
			"-a", filepath.Join(bin, "terminald"),
			"-d", bundle,
			"-e", "TUANJU_VMCALL_IDENTITY=/usr/local/share/vm/"+filepath.Base(bundle),
			"-r", "^TestCallDriver$",
			"-t", "220",
			"-e", "TUANJU_VMCALL=1",
			"-e", "TUANJU_VMCALL_SERVER=ws://10.0.2.100/ws",
			"-e", "TUANJU_VMCALL_PUBLIC="+srv.URL,
			"-e", fmt.Sprintf("TUANJU_VMCALL_ICE_PORT=%d", icePort),
			"-e", "TUANJU_VMCALL_ICE_IP=127.0.0.1",
			"-e", "TUANJU_VMCALL_LOG_LEVEL="+cmp.Or(os.Getenv("TUANJU_VMCALL_LOG_LEVEL"), "info"),
			filepath.Join(bin, "vmcheck.test"),
		))

	pairingURL := strings.TrimPrefix(vm.await(t, bootWait, "VMCALL pairing_url="), "VMCALL pairing_url=")
	t.Logf("host: pairing link from the VM: %s", pairingURL)

	// The parent opens the link; the VM's driver presses the button when the
	// terminal's lights ask for it.
	page, closePage := browsertest.Launch(ctx, t)
	defer closePage()
	if _, err := chromedp.Run(page, chromedp.Navigate(pairingURL)); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "home", stepWait); err != nil {
		t.Fatal(err)
	}
	vm.await(t, stepWait, "VMCALL paired")
	if _, err := srv.Registry().Device(deviceID); err != nil {
		t.Fatalf("the VM's terminal is not the unit the bundle provisioned (%s): %v", deviceID, err)
	}

	// The child presses the button in the VM: the page rings; the parent answers.
	if err := browsertest.WaitStateFor(page, "incoming", stepWait); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#answer"))); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "call", stepWait); err != nil {
		t.Fatal(err)
	}
	vm.await(t, stepWait, "VMCALL in_call")

	var st browsertest.CallStats
	deadline := time.Now().Add(mediaWait)
	for {
		st, err = browsertest.Stats(page)
		if err == nil && st.Video.FramesDecoded >= minFrames && st.Audio.TotalSamplesReceived >= minSamples &&
			st.Outbound.VideoBytesSent > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %v the page decoded %d frames of the VM's camera (want ≥ %d) and %d audio samples (want ≥ %d), sent %d video bytes (stats err %v)",
				mediaWait, st.Video.FramesDecoded, minFrames, st.Audio.TotalSamplesReceived, minSamples, st.Outbound.VideoBytesSent, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("host: page decoded %d frames (%dx%d, %d key) of the VM's vivid camera, %d audio samples; sent %d video bytes",
		st.Video.FramesDecoded, st.Video.FrameWidth, st.Video.FrameHeight, st.Video.KeyFramesDecoded,
		st.Audio.TotalSamplesReceived, st.Outbound.VideoBytesSent)
	// The low-data profile asks for 320x240; vivid's webcam input offers
	// 320x180 as its nearest size (see vmcamera_test.go).
	if st.Video.FrameWidth != 320 || st.Video.FrameHeight != 180 {
		t.Errorf("page decoded %dx%d, want vivid's 320x180", st.Video.FrameWidth, st.Video.FrameHeight)
	}

	// Hold the call a while so the terminal decodes a fair stretch of the
	// page's video (it cannot be asked mid-call), then the parent hangs up
	// and the VM's driver reports what the terminal decoded.
	time.Sleep(holdCall)
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#hangup"))); err != nil {
		t.Fatal(err)
	}
	rx := vm.await(t, stepWait, "VMCALL rx ")
	t.Logf("host: the VM's terminal reports %s", strings.TrimPrefix(rx, "VMCALL rx "))
	if rc := vm.wait(t, stepWait); rc != 0 {
		t.Fatalf("VM: tests/vm/run exited %d (the driver's verdict; see its output above)", rc)
	}
}

// vm is a running tests/vm/run whose console the test reads line by line.
type vm struct {
	mu    sync.Mutex
	lines []string
	next  int // lines before this were consumed by await
	done  chan struct{}
	rc    int
}

func bootVM(ctx context.Context, t *testing.T, script, arch string, args []string) *vm {
	t.Helper()
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Env = append(os.Environ(), "TUANJU_VM_ARCH="+arch)
	// Its own process group, so that a test that gives up stops qemu too
	// (run starts qemu under `timeout --foreground`, which stays in it).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errOut, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	v := &vm{done: make(chan struct{}), rc: -1}
	var wg sync.WaitGroup
	read := func(r io.Reader) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			t.Logf("vm %5.1fs| %s", time.Since(start).Seconds(), line)
			v.mu.Lock()
			v.lines = append(v.lines, line)
			v.mu.Unlock()
		}
	}
	wg.Add(2)
	go read(out)
	go read(errOut)
	go func() {
		wg.Wait()
		err := cmd.Wait()
		v.rc = cmd.ProcessState.ExitCode()
		if err != nil && v.rc == 0 {
			v.rc = -1
		}
		close(v.done)
	}()
	t.Cleanup(func() {
		select {
		case <-v.done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-v.done
		}
	})
	return v
}

// await returns the first unread console line that starts with prefix.
func (v *vm) await(t *testing.T, d time.Duration, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v.mu.Lock()
		for ; v.next < len(v.lines); v.next++ {
			if l := v.lines[v.next]; strings.HasPrefix(l, prefix) {
				v.next++
				v.mu.Unlock()
				return l
			}
		}
		v.mu.Unlock()
		select {
		case <-v.done:
			t.Fatalf("VM ended (tests/vm/run exit %d) before printing %q", v.rc, prefix)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM printed no %q within %v", prefix, d)
		}
	}
}

// wait returns tests/vm/run's exit status (the VM's tests' verdict).
func (v *vm) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-v.done:
		return v.rc
	case <-time.After(d):
		t.Fatalf("VM still running %v after the call", d)
		return -1
	}
}

// freeTCPPort returns a loopback TCP port that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
