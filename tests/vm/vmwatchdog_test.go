//go:build vmtest

package vm_test

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tuanju/tuanju/device"
)

// These tests run device.Watchdog against the kernel's watchdog core and its
// softdog driver. softdog must be loaded with soft_noboot=1, so that an
// expiry only logs "softdog: Triggered - Reboot ignored" instead of
// rebooting the VM; that log line, read from /dev/kmsg, is the proof that
// the watchdog would have rebooted a board, and its absence the proof that
// petting (or the magic close) prevented it:
//
//	tests/vm/run -m 'softdog soft_noboot=1 soft_margin=60' -r Watchdog x.test
//
// soft_margin does not matter: the tests set their own timeout through
// WDIOC_SETTIMEOUT, which is part of what they test.

const (
	// wdTimeout is short so the expiry tests are quick; the kernel counts
	// in whole seconds.
	wdTimeout = 2 * time.Second
	// wdSlack is added to every wait for something the kernel does on its
	// own timer: under TCG on a busy host a timer can fire late.
	wdSlack = 8 * time.Second

	// softdogFired is what softdog logs on expiry with soft_noboot=1
	// (drivers/watchdog/softdog.c); without soft_noboot it would be
	// "Initiating system reboot".
	softdogFired = "softdog: Triggered - Reboot ignored"
	// didNotStop is what the watchdog core logs when the device is closed
	// without the magic close while running (watchdog_dev.c,
	// watchdog_release).
	didNotStop = "watchdog did not stop"

	sysWatchdog = "/sys/class/watchdog/watchdog0"
)

// softdog skips the test outside the VM, or when softdog is not loaded with
// soft_noboot=1 (an expiry would then reboot the VM mid-test), and fails it
// when /dev/watchdog is some other driver.
func softdog(t *testing.T) {
	t.Helper()
	if os.Getenv("TUANJU_VM") != "1" {
		t.Skip("kernel-in-the-loop test: runs only inside the VM (tests/vm/run -m 'softdog soft_noboot=1')")
	}
	if _, err := os.Stat("/sys/module/softdog"); err != nil {
		t.Skip("softdog not loaded: start the VM with -m 'softdog soft_noboot=1'")
	}
	// softdog's parameters are not in sysfs; it states them when it loads:
	// "softdog: initialized. soft_noboot=1 soft_margin=60 sec ...".
	k := &kmsg{fd: -1}
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/kmsg: %v", err)
	}
	k.fd = fd
	k.poll(t) // from the start of the log
	unix.Close(fd)
	var initLine string
	for _, m := range k.seen {
		if strings.Contains(m, "softdog: initialized.") {
			initLine = m
		}
	}
	switch {
	case initLine == "":
		t.Fatal("softdog is loaded but the kernel log has no \"softdog: initialized.\" line to tell soft_noboot")
	case !strings.Contains(initLine, "soft_noboot=1 "):
		t.Skipf("softdog loaded without soft_noboot=1 (%q): an expiry would reboot the VM", initLine)
	}
	if id := sysAttr(t, "identity"); id != "Software Watchdog" {
		t.Fatalf("%s is %q, want softdog's \"Software Watchdog\" (another watchdog registered first?)", sysWatchdog, id)
	}
}

// sysAttr reads one of the watchdog core's sysfs attributes: what the kernel
// itself believes, independently of what our ioctls returned.
func sysAttr(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(sysWatchdog + "/" + name)
	if err != nil {
		t.Fatalf("read watchdog sysfs: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// kmsg follows the kernel log from the moment it is opened.
type kmsg struct {
	fd   int
	seen []string
}

func openKmsg(t *testing.T) *kmsg {
	t.Helper()
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/kmsg: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	// Only what is logged from now on: earlier tests' messages must not
	// count for this one.
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		t.Fatalf("seek /dev/kmsg: %v", err)
	}
	return &kmsg{fd: fd}
}

// poll reads the records logged since the last poll into k.seen.
func (k *kmsg) poll(t *testing.T) {
	t.Helper()
	buf := make([]byte, 8192) // a record is at most ~1 KiB; one per read
	for {
		n, err := unix.Read(k.fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EPIPE): // records overwritten: keep going
			continue
		case err != nil:
			t.Fatalf("read /dev/kmsg: %v", err)
		}
		// "prio,seq,usec,flags;text\n[ continuation lines]"
		rec := string(buf[:n])
		if _, text, ok := strings.Cut(rec, ";"); ok {
			text, _, _ = strings.Cut(text, "\n")
			k.seen = append(k.seen, text)
		}
	}
}

// has reports whether a message containing s has been logged.
func (k *kmsg) has(t *testing.T, s string) bool {
	t.Helper()
	k.poll(t)
	for _, m := range k.seen {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// waitFor fails the test unless a message containing s is logged within d.
func (k *kmsg) waitFor(t *testing.T, s string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); !k.has(t, s); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("kernel did not log %q within %v; it logged:\n%s", s, d, strings.Join(k.seen, "\n"))
		}
	}
}

// quiet watches the kernel log for d and fails the test if a message
// containing any of ss appears.
func (k *kmsg) quiet(t *testing.T, d time.Duration, during string, ss ...string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, s := range ss {
			if k.has(t, s) {
				t.Fatalf("%s: kernel logged %q:\n%s", during, s, strings.Join(k.seen, "\n"))
			}
		}
	}
}

func openWatchdog(t *testing.T, timeout time.Duration) *device.Watchdog {
	t.Helper()
	w, err := openWhenFree(t, timeout)
	if err != nil {
		t.Fatalf("OpenWatchdog(%s, %v): %v", device.DefaultWatchdogPath, timeout, err)
	}
	return w
}

// openWhenFree opens the watchdog once the kernel has let the last opener
// go. The watchdog core allows one opener and frees the device when the
// last reference to its file is dropped, which on a loaded emulated machine
// came after the previous test's close had returned (EBUSY seen once under
// two CPU-bound processes; a process forked meanwhile holds the file until
// it execs). An EBUSY open starts nothing, so waiting for the device
// changes nothing a test asserts.
func openWhenFree(t *testing.T, timeout time.Duration) (*device.Watchdog, error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, err := device.OpenWatchdog(device.DefaultWatchdogPath, timeout, nil)
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return w, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWatchdogSetTimeout: the timeout asked for is the one the kernel runs
// with, both as WDIOC_GETTIMEOUT reports it and as the watchdog core's sysfs
// shows it; the magic close stops the watchdog and frees the device.
func TestWatchdogSetTimeout(t *testing.T) {
	softdog(t)
	for _, want := range []time.Duration{wdTimeout, 7 * time.Second} {
		w := openWatchdog(t, want)
		if got := w.Timeout(); got != want {
			t.Errorf("Timeout() = %v, want %v", got, want)
		}
		if got, wantS := sysAttr(t, "timeout"), strings.TrimSuffix(want.String(), "s"); got != wantS {
			t.Errorf("sysfs timeout = %s s, want %s", got, wantS)
		}
		if got := sysAttr(t, "state"); got != "active" {
			t.Errorf("sysfs state with the device open = %q, want active", got)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := sysAttr(t, "state"); got != "inactive" {
			t.Errorf("sysfs state after Close = %q, want inactive (magic close refused?)", got)
		}
	}
}

// TestWatchdogPettingKeepsItAlive is the real proof: petting for well over
// the timeout does not fire the watchdog, and then not petting does.
func TestWatchdogPettingKeepsItAlive(t *testing.T) {
	softdog(t)
	k := openKmsg(t)
	w := openWatchdog(t, wdTimeout)
	defer w.Close()

	petFor := 3 * wdTimeout
	for end := time.Now().Add(petFor); time.Now().Before(end); time.Sleep(wdTimeout / 5) {
		if err := w.Pet(); err != nil {
			t.Fatalf("Pet: %v", err)
		}
		if k.has(t, softdogFired) {
			t.Fatalf("watchdog fired although petted every %v (timeout %v):\n%s",
				wdTimeout/5, wdTimeout, strings.Join(k.seen, "\n"))
		}
	}
	t.Logf("petted for %v with a %v timeout: not fired", petFor, wdTimeout)

	// A hung loop: no more pets.
	k.waitFor(t, softdogFired, wdTimeout+wdSlack)
	t.Logf("not petted: kernel logged %q", softdogFired)
}

// TestWatchdogMagicCloseStops: after Close, nothing fires however long the
// board waits, and the device can be opened again.
func TestWatchdogMagicCloseStops(t *testing.T) {
	softdog(t)
	k := openKmsg(t)
	w := openWatchdog(t, wdTimeout)
	if err := w.Pet(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	k.quiet(t, 2*wdTimeout+time.Second, "after a magic close", softdogFired, didNotStop)
	if got := sysAttr(t, "state"); got != "inactive" {
		t.Errorf("sysfs state after Close = %q, want inactive", got)
	}
	w = openWatchdog(t, wdTimeout) // the kernel allows one opener: Close freed it
	if err := w.Close(); err != nil {
		t.Fatalf("Close after reopening: %v", err)
	}
}

// TestWatchdogAbandonFires: Abandon leaves the watchdog running, and it
// fires one timeout later, which on a board is the reboot.
func TestWatchdogAbandonFires(t *testing.T) {
	softdog(t)
	k := openKmsg(t)
	w := openWatchdog(t, wdTimeout)
	if err := w.Pet(); err != nil {
		t.Fatal(err)
	}
	w.Abandon()
	k.waitFor(t, didNotStop, wdSlack)
	if got := sysAttr(t, "state"); got != "active" {
		t.Errorf("sysfs state after Abandon = %q, want active", got)
	}
	k.waitFor(t, softdogFired, wdTimeout+wdSlack)

	// Leave the watchdog stopped for whatever runs next.
	w = openWatchdog(t, wdTimeout)
	if err := w.Close(); err != nil {
		t.Fatalf("Close after reopening: %v", err)
	}
	if got := sysAttr(t, "state"); got != "inactive" {
		t.Errorf("sysfs state after the final Close = %q, want inactive", got)
	}
}

// TestWatchdogTimeoutOutOfRange: a timeout the driver refuses (softdog's
// range is 1..65535 s) is a configuration error, and OpenWatchdog leaves the
// watchdog stopped, not running with a timeout nobody chose.
func TestWatchdogTimeoutOutOfRange(t *testing.T) {
	softdog(t)
	k := openKmsg(t)
	w, err := openWhenFree(t, 70000*time.Second)
	if err == nil {
		w.Close()
		t.Fatal("OpenWatchdog with a 70000 s timeout succeeded, want the driver to refuse it")
	}
	if !errors.Is(err, device.ErrInvalidConfig) {
		t.Errorf("error = %v, want it to wrap device.ErrInvalidConfig", err)
	}
	if got := sysAttr(t, "state"); got != "inactive" {
		t.Errorf("sysfs state after the refused open = %q, want inactive", got)
	}
	if k.has(t, didNotStop) {
		t.Errorf("the refused open left the watchdog running: kernel logged %q", didNotStop)
	}

	// Timeout 0 keeps the device's own, and Timeout reports it.
	w = openWatchdog(t, 0)
	defer w.Close()
	if got, want := w.Timeout(), sysAttr(t, "timeout")+"s"; got.String() != want {
		t.Errorf("Timeout() with the device's own timeout = %v, want sysfs's %s", got, want)
	}
}
