package device

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The real /dev/watchdog reboots the machine, so these tests stand a regular
// file or a FIFO in for it: both take the bytes the way the driver does, and
// both refuse the watchdog ioctls with ENOTTY, which is exactly the "timeout
// not settable" path. The kernel's own behaviour (timeouts, magic close,
// expiry) is tested against softdog in tests/vm/vmwatchdog_test.go.

// fakeWatchdog creates an empty regular file to open as the device.
func fakeWatchdog(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func written(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// logTo returns a logger writing text into buf.
func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestWatchdogNotSettableStillWorks(t *testing.T) {
	path := fakeWatchdog(t)
	var logs bytes.Buffer
	w, err := OpenWatchdog(path, 10*time.Second, logTo(&logs))
	if err != nil {
		t.Fatalf("OpenWatchdog on a file that refuses ioctls: %v (want it used as is)", err)
	}
	defer w.Close()
	if got := w.Timeout(); got != 0 {
		t.Errorf("Timeout() = %v, want 0 (the file cannot say)", got)
	}
	for _, want := range []string{"timeout not settable", "timeout not readable"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, logs.String())
		}
	}
	if got := written(t, path); got != "" {
		t.Errorf("OpenWatchdog wrote %q, want nothing", got)
	}
}

func TestWatchdogPetWritesOneByteEach(t *testing.T) {
	path := fakeWatchdog(t)
	w, err := OpenWatchdog(path, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const pets = 3
	for i := range pets {
		if err := w.Pet(); err != nil {
			t.Fatalf("Pet %d: %v", i+1, err)
		}
	}
	got := written(t, path)
	if len(got) != pets {
		t.Fatalf("after %d pets the device got %q (%d bytes), want %d bytes", pets, got, len(got), pets)
	}
	if strings.ContainsRune(got, magicClose) {
		t.Errorf("Pet wrote %q: a 'V' would arm the magic close", got)
	}
}

func TestWatchdogCloseWritesMagicLast(t *testing.T) {
	path := fakeWatchdog(t)
	w, err := OpenWatchdog(path, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Pet(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := written(t, path); got != string(petByte)+"V" {
		t.Errorf("device got %q, want one pet then the magic 'V' last", got)
	}
	// A second Close neither fails nor writes again.
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := written(t, path); strings.Count(got, "V") != 1 {
		t.Errorf("after a second Close the device got %q, want exactly one 'V'", got)
	}
	if err := w.Pet(); !errors.Is(err, ErrClosed) {
		t.Errorf("Pet after Close = %v, want ErrClosed", err)
	}
}

func TestWatchdogAbandonSkipsMagicClose(t *testing.T) {
	path := fakeWatchdog(t)
	var logs bytes.Buffer
	w, err := OpenWatchdog(path, 0, logTo(&logs))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Pet(); err != nil {
		t.Fatal(err)
	}
	w.Abandon()
	if got := written(t, path); got != string(petByte) {
		t.Errorf("after Abandon the device got %q, want only the pet (no 'V')", got)
	}
	if !strings.Contains(logs.String(), "board will reboot") {
		t.Errorf("Abandon did not log the coming reboot:\n%s", logs.String())
	}
	// Close after Abandon must not sneak the magic close in.
	if err := w.Close(); err != nil {
		t.Errorf("Close after Abandon: %v", err)
	}
	if got := written(t, path); strings.ContainsRune(got, magicClose) {
		t.Errorf("Close after Abandon wrote the magic close: device got %q", got)
	}
	if err := w.Pet(); !errors.Is(err, ErrClosed) {
		t.Errorf("Pet after Abandon = %v, want ErrClosed", err)
	}
}

// TestWatchdogFIFO uses a FIFO: like the device, it is a stream the bytes
// pass through to a reader (here standing in for the driver), in order.
func TestWatchdogFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "watchdog")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// Open the reading end first (non-blocking), so that opening the
	// writing end does not wait for a reader.
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan string, 1)
	w, err := OpenWatchdog(path, 5*time.Second, nil)
	if err != nil {
		t.Fatalf("OpenWatchdog on a FIFO: %v", err)
	}
	// Read only once the writer is open: a FIFO with no writer reads as
	// end-of-file at once.
	go func() {
		b, _ := io.ReadAll(r) // until the writer closes
		got <- string(b)
	}()
	for range 2 {
		if err := w.Pet(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if want := string([]byte{petByte, petByte, magicClose}); s != want {
			t.Errorf("reader got %q, want %q (two pets, then 'V' last)", s, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not see the FIFO closed after Close")
	}
}

func TestOpenWatchdogErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		timeout time.Duration
		want    error // nil: an error that is neither of the sentinels
	}{
		{"missing device", filepath.Join(dir, "no-such-watchdog"), time.Second, ErrAbsent},
		{"missing directory", filepath.Join(dir, "no-dev", "watchdog"), time.Second, ErrAbsent},
		{"negative timeout", fakeWatchdog(t), -time.Second, ErrInvalidConfig},
		{"absurd timeout", fakeWatchdog(t), 1 << 62, ErrInvalidConfig},
		// Present but unusable is a failure, not an absence: the
		// technician's self-test must say "fail", not "absent".
		{"not writable", dir, time.Second, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := OpenWatchdog(tt.path, tt.timeout, nil)
			if err == nil {
				w.Close()
				t.Fatal("OpenWatchdog succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "device: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Errorf("error = %v, want it to wrap %v", err, tt.want)
				}
				return
			}
			for _, s := range []error{ErrAbsent, ErrInvalidConfig} {
				if errors.Is(err, s) {
					t.Errorf("error = %v: wraps %v, want a plain failure", err, s)
				}
			}
		})
	}
}

func TestWatchdogTimeoutRoundsUp(t *testing.T) {
	// The fake cannot take a timeout, so rounding is only visible in the
	// log line that says what was asked for.
	var logs bytes.Buffer
	w, err := OpenWatchdog(fakeWatchdog(t), 1500*time.Millisecond, logTo(&logs))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !strings.Contains(logs.String(), "want=2s") {
		t.Errorf("1.5 s was not rounded up to the kernel's whole seconds (2s):\n%s", logs.String())
	}
}
