package device

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultWatchdogPath is the kernel's first watchdog device. The watchdog
// core creates it (beside /dev/watchdog0) for whichever driver registered
// first: the SoC's own (bcm2835-wdt, sunxi-wdt, dw_wdt ...) on a board,
// softdog in the test VM.
const DefaultWatchdogPath = "/dev/watchdog"

// DefaultWatchdogTimeout is short enough that a hung terminal is back within
// a minute, long enough that a loop stalled for a few seconds (a slow flash
// write, a camera that takes its time to open) is not rebooted, and within
// what common SoC watchdogs can do in hardware (the Raspberry Pi's tops out
// near 16 s).
const DefaultWatchdogTimeout = 15 * time.Second

// petByte is what Pet writes. Any byte pets the watchdog; it must not be
// 'V', which would arm the magic close (see Close).
const petByte = '.'

// magicClose is the byte that, written before close, tells the kernel the
// daemon is stopping on purpose and the watchdog may stop too
// (Documentation/watchdog/watchdog-api.rst, "Magic Close feature").
const magicClose = 'V'

// Watchdog is the board's hardware watchdog: once opened it reboots the board
// unless it is petted at least once per Timeout.
//
// The point is to catch a daemon that is alive but stuck, so the one rule
// for using it is: pet it from the terminal's main loop, after a health check
// that passed, and from nowhere else. A separate goroutine petting on a timer
// would keep on petting while the loop it is meant to watch is hung, and the
// board would never reboot. A daemon that crashes, or is killed, closes the
// device without the magic close, and the board reboots too.
//
// The kernel lets one process at a time hold the device open.
type Watchdog struct {
	log     *slog.Logger
	path    string
	timeout time.Duration

	mu sync.Mutex // guards f
	f  *os.File   // nil once closed
}

// OpenWatchdog opens the watchdog device at path (normally
// DefaultWatchdogPath) and asks it for timeout, rounded up to whole seconds,
// the kernel's unit. Opening the device starts the watchdog: from here on the
// caller must Pet it, and end with Close (stop) or Abandon (let it reboot).
//
// A timeout of 0 keeps the device's own. A device without a settable timeout
// (or a file that is not a watchdog at all, as in tests) is logged and used
// as it is; Timeout then reports what the device said, or 0 when it cannot
// say. A timeout the device refuses (out of its range) is an error wrapping
// ErrInvalidConfig, and the device is stopped again before returning.
//
// When there is no watchdog at path the error wraps ErrAbsent: a board (or a
// kernel) without one is not a broken board, and the terminal runs without it.
func OpenWatchdog(path string, timeout time.Duration, log *slog.Logger) (*Watchdog, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if timeout < 0 {
		return nil, fmt.Errorf("device: open watchdog %s: negative timeout %v: %w", path, timeout, ErrInvalidConfig)
	}
	secs := int64((timeout + time.Second - 1) / time.Second)
	if secs > math.MaxInt32 {
		return nil, fmt.Errorf("device: open watchdog %s: timeout %v too long: %w", path, timeout, ErrInvalidConfig)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		// ENODEV/ENXIO: the node exists (a static /dev) but no driver is
		// bound to it.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) {
			return nil, fmt.Errorf("device: open watchdog %s: %w: %w", path, ErrAbsent, err)
		}
		return nil, fmt.Errorf("device: open watchdog %s: %w", path, err)
	}
	w := &Watchdog{log: log.With("component", "watchdog", "path", path), path: path, f: f}

	identity, options, infoErr := w.info()
	if infoErr == nil {
		w.log = w.log.With("identity", identity)
	}
	if secs > 0 {
		switch err := w.ioctlSetInt(unix.WDIOC_SETTIMEOUT, int(secs)); {
		case err == nil:
		case notSupported(err):
			w.log.Warn("watchdog timeout not settable: using the device's own", "want", time.Duration(secs)*time.Second, "err", err)
		default:
			// Leave the device as it was found: stopped, if it can be.
			_ = w.Close()
			if errors.Is(err, syscall.EINVAL) {
				return nil, fmt.Errorf("device: open watchdog %s: set timeout %ds: out of the device's range: %w",
					path, secs, ErrInvalidConfig)
			}
			return nil, fmt.Errorf("device: open watchdog %s: set timeout %ds: %w", path, secs, err)
		}
	}
	switch got, err := w.ioctlGetInt(unix.WDIOC_GETTIMEOUT); {
	case err == nil:
		w.timeout = time.Duration(got) * time.Second
	case notSupported(err):
		w.log.Warn("watchdog timeout not readable: Timeout will report 0", "err", err)
	default:
		_ = w.Close()
		return nil, fmt.Errorf("device: open watchdog %s: get timeout: %w", path, err)
	}
	if infoErr == nil && options&unix.WDIOF_MAGICCLOSE == 0 {
		// Close cannot stop such a device: every shutdown of the daemon
		// ends in a reboot one timeout later.
		w.log.Warn("watchdog has no magic close: stopping the daemon will reboot the board")
	}
	w.log.Info("watchdog armed", "timeout", w.timeout)
	return w, nil
}

// Timeout is the device's timeout as it reported it after OpenWatchdog (the
// hardware may round what was asked for), or 0 when it could not say. Pet
// well within it: the terminal pets once a second.
func (w *Watchdog) Timeout() time.Duration { return w.timeout }

// Path is the device's path, for logs and the technician's self-test.
func (w *Watchdog) Path() string { return w.path }

// Pet tells the watchdog the daemon is healthy, restarting its countdown.
// Call it only after the health check that justifies it (see Watchdog).
//
// It writes one byte rather than issuing WDIOC_KEEPALIVE: every driver
// accepts a write, only some the ioctl.
func (w *Watchdog) Pet() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("device: pet watchdog %s: %w", w.path, ErrClosed)
	}
	if _, err := w.f.Write([]byte{petByte}); err != nil {
		return fmt.Errorf("device: pet watchdog %s: %w", w.path, err)
	}
	return nil
}

// Close stops the watchdog, for a clean shutdown of the daemon: it writes the
// magic character 'V' and then closes the device, which tells the kernel the
// close is deliberate. Without that, a stopping daemon would be
// indistinguishable from a crashed one and the board would reboot.
//
// Kernels built with CONFIG_WATCHDOG_NOWAYOUT (or drivers loaded with
// nowayout=1) ignore the magic close on purpose: the board then reboots one
// timeout after Close unless another process takes the device over.
// Close is safe to call more than once, and after Abandon.
func (w *Watchdog) Close() error {
	f := w.take()
	if f == nil {
		return nil
	}
	_, werr := f.Write([]byte{magicClose})
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		w.log.Error("watchdog magic close failed: the board may reboot", "err", err)
		return fmt.Errorf("device: close watchdog %s: %w", w.path, err)
	}
	w.log.Info("watchdog stopped")
	return nil
}

// Abandon closes the device without the magic close, so the watchdog keeps
// counting and reboots the board one Timeout later. It is for a daemon that
// knows it is unhealthy (a fault it cannot clear, a state it cannot trust)
// and wants the reboot rather than limping on: it is the same outcome as a
// hang, reached on purpose and logged. Further Pet calls fail with
// ErrClosed, and Close does nothing.
func (w *Watchdog) Abandon() {
	f := w.take()
	if f == nil {
		return
	}
	w.log.Error("abandoning the watchdog: the board will reboot", "within", w.timeout)
	if err := f.Close(); err != nil {
		w.log.Error("watchdog close failed", "err", err)
	}
}

// take hands over the open file exactly once.
func (w *Watchdog) take() *os.File {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.f
	w.f = nil
	return f
}

// info asks the driver who it is and what it can do (WDIOC_GETSUPPORT).
func (w *Watchdog) info() (identity string, options uint32, err error) {
	var wi *unix.WatchdogInfo
	err = w.control(func(fd int) error {
		var err error
		wi, err = unix.IoctlGetWatchdogInfo(fd)
		return err
	})
	if err != nil {
		return "", 0, err
	}
	n := 0
	for n < len(wi.Identity) && wi.Identity[n] != 0 {
		n++
	}
	return string(wi.Identity[:n]), wi.Options, nil
}

// ioctlSetInt passes v by pointer, as the watchdog ioctls expect.
func (w *Watchdog) ioctlSetInt(req uint, v int) error {
	return w.control(func(fd int) error { return unix.IoctlSetPointerInt(fd, req, v) })
}

func (w *Watchdog) ioctlGetInt(req uint) (int, error) {
	// The kernel writes a C int; read it as one so the result does not
	// depend on the byte order of a wider Go int.
	var v int
	err := w.control(func(fd int) error {
		got, err := unix.IoctlGetUint32(fd, req)
		v = int(int32(got))
		return err
	})
	return v, err
}

// control runs fn on the file's descriptor without taking it out of the Go
// runtime's hands (unlike File.Fd).
func (w *Watchdog) control(fn func(fd int) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return ErrClosed
	}
	rc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// notSupported reports whether an ioctl failed because the device does not
// do it: ENOTTY ("inappropriate ioctl", a file that is not a watchdog) or
// EOPNOTSUPP (a watchdog without that feature).
func notSupported(err error) bool {
	return errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EOPNOTSUPP)
}
