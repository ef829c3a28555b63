//go:build linux

package alsa

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctlFunc issues one ioctl on fd. PCM uses sysIoctl; unit tests put a
// model of the kernel's PCM state machine in its place.
type ioctlFunc func(fd, req uintptr, arg unsafe.Pointer) error

func sysIoctl(fd, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// maxRecoveries bounds back-to-back recoveries without a frame moved, so a
// stream that keeps failing (a driver stuck in XRUN) errors out instead of
// spinning.
const maxRecoveries = 16

// resumeTries × resumeWait bounds waiting for a suspended device to resume.
const (
	resumeTries = 100
	resumeWait  = 20 * time.Millisecond
)

// PCM is an open ALSA PCM: one direction of one (sub)device. Read (capture)
// or Write (playback) may run on one goroutine while Close, Delay and
// Xruns are called from others; Close interrupts a blocked Read or Write.
type PCM struct {
	addr   Addr
	stream Stream
	name   string // the PCM's own name (INFO)
	params Params
	log    *slog.Logger

	f     *os.File
	rc    syscall.RawConn
	ioctl ioctlFunc

	x           xferi // the Read/Write goroutine's transfer block
	needPrepare atomic.Bool
	closed      atomic.Bool
	xruns       atomic.Int64
}

// List returns the PCM devices of every sound card under dir ("" is
// DefaultDir), ordered by card and device, read through each card's control
// device (so PCMs in use are listed too). No card is no devices and no
// error; a card that cannot be read is skipped and named in the error,
// which comes with the devices of the others.
func List(dir string) ([]Device, error) {
	if dir == "" {
		dir = DefaultDir
	}
	paths, err := filepath.Glob(filepath.Join(dir, "controlC*"))
	if err != nil {
		return nil, fmt.Errorf("alsa: list %s: %w", dir, err)
	}
	var devs []Device
	var errs []error
	for _, path := range paths {
		card, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), "controlC"))
		if err != nil {
			continue
		}
		ds, err := listCard(path, card)
		if err != nil {
			errs = append(errs, fmt.Errorf("alsa: list card %d: %w", card, err))
			continue
		}
		devs = append(devs, ds...)
	}
	slices.SortFunc(devs, func(a, b Device) int {
		if a.Card != b.Card {
			return a.Card - b.Card
		}
		return a.Device - b.Device
	})
	return devs, errors.Join(errs...)
}

func listCard(path string, card int) ([]Device, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var ci ctlCardInfo
	if err := sysIoctl(uintptr(fd), ioctlCtlCardInfo, unsafe.Pointer(&ci)); err != nil {
		return nil, fmt.Errorf("card info: %w", err)
	}
	var devs []Device
	dev := int32(-1)
	for {
		if err := sysIoctl(uintptr(fd), ioctlCtlPCMNextDevice, unsafe.Pointer(&dev)); err != nil {
			return nil, fmt.Errorf("next pcm device: %w", err)
		}
		if dev < 0 {
			return devs, nil
		}
		d := Device{Card: card, CardID: cString(ci.ID[:]), CardName: cString(ci.Name[:]), Device: int(dev)}
		for _, s := range []Stream{Playback, Capture} {
			info := pcmInfo{Device: uint32(dev), Stream: s.kernel()}
			err := sysIoctl(uintptr(fd), ioctlCtlPCMInfo, unsafe.Pointer(&info))
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENXIO) {
				continue // no such direction
			}
			if err != nil {
				return nil, fmt.Errorf("pcm %d %s info: %w", dev, s, err)
			}
			d.ID, d.Name = cString(info.ID[:]), cString(info.Name[:])
			if s == Capture {
				d.CaptureSubdevices = int(info.SubdevicesCount)
			} else {
				d.PlaybackSubdevices = int(info.SubdevicesCount)
			}
		}
		devs = append(devs, d)
	}
}

// Resolve returns the address name means for direction s among the cards
// under dir ("" is DefaultDir): it checks the card, device, direction and
// subdevice exist, without opening the PCM.
func Resolve(name string, s Stream, dir string) (Addr, error) {
	devs, listErr := List(dir)
	a, err := resolve(name, s, devs)
	if err != nil && listErr != nil {
		return Addr{}, fmt.Errorf("%w (listing: %v)", err, listErr)
	}
	return a, err
}

// Open opens the PCM name (see the package doc) for direction s and sets
// it up as cfg asks: S16_LE, interleaved, cfg.Channels, the rate and period
// nearest cfg's. The stream is prepared; capture starts at the first Read,
// playback once the buffer is full (or on Drain).
func Open(name string, s Stream, cfg Config) (*PCM, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("alsa: open %s %s: %w", name, s, err)
	}
	addr, err := Resolve(name, s, cfg.Dir)
	if err != nil {
		return nil, err
	}
	f, err := openNode(cfg.Dir, addr, s)
	if err != nil {
		return nil, fmt.Errorf("alsa: open %s %s: %w", addr, s, err)
	}
	p, err := newPCM(f, addr, s, sysIoctl, cfg.Log)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("alsa: open %s %s: %w", addr, s, err)
	}
	if err := p.setup(cfg); err != nil {
		f.Close()
		return nil, fmt.Errorf("alsa: open %s %s: %w", addr, s, err)
	}
	p.log.Debug("pcm open", "name", p.name, "channels", p.params.Channels, "rate", p.params.Rate,
		"period", p.params.PeriodFrames, "buffer", p.params.BufferFrames)
	return p, nil
}

// openNode opens the PCM's device node, non-blocking: ALSA then fails a
// busy device at once (EBUSY) instead of waiting for it, and transfers
// return EAGAIN instead of sleeping, so Go's poller does the waiting and
// Close can interrupt it.
//
// A particular subdevice is chosen the way alsa-lib does: the card's
// control device is told the preferred subdevice (PCM_PREFER_SUBDEVICE)
// before the open. The kernel matches that preference by the opening task's
// pid, which is the thread's, so both happen on one locked OS thread.
func openNode(dir string, a Addr, s Stream) (*os.File, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if a.Subdevice >= 0 {
		ctlPath := filepath.Join(dir, fmt.Sprintf("controlC%d", a.Card))
		ctl, err := unix.Open(ctlPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, openErr(&fs.PathError{Op: "open", Path: ctlPath, Err: err})
		}
		defer unix.Close(ctl)
		sub := int32(a.Subdevice)
		if err := sysIoctl(uintptr(ctl), ioctlCtlPCMPreferSubdev, unsafe.Pointer(&sub)); err != nil {
			return nil, fmt.Errorf("prefer subdevice %d: %w", a.Subdevice, err)
		}
	}
	f, err := os.OpenFile(a.path(dir, s), os.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, openErr(err)
	}
	return f, nil
}

func openErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		return fmt.Errorf("%w: %w", ErrNoDevice, err)
	case errors.Is(err, unix.EBUSY), errors.Is(err, unix.EAGAIN):
		return fmt.Errorf("%w: %w", ErrBusy, err)
	}
	return err
}

// newPCM wraps an open, non-blocking, pollable file.
func newPCM(f *os.File, a Addr, s Stream, ioctl ioctlFunc, log *slog.Logger) (*PCM, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PCM{
		addr: a, stream: s, f: f, rc: rc, ioctl: ioctl,
		log: log.With("component", "alsa", "pcm", a.String(), "stream", s.String()),
	}, nil
}

// setup checks the protocol, negotiates and installs the hardware and
// software parameters, and prepares the stream.
func (p *PCM) setup(cfg Config) error {
	var ver int32
	if err := p.ctl(ioctlPVersion, unsafe.Pointer(&ver)); err != nil {
		return fmt.Errorf("pversion: %w", err)
	}
	if major := ver >> 16 & 0xff; major != protocolMajor {
		return fmt.Errorf("PCM protocol %d.%d.%d, want %d.x: %w", major, ver>>8&0xff, ver&0xff, protocolMajor, ErrUnsupported)
	}
	var info pcmInfo
	if err := p.ctl(ioctlInfo, unsafe.Pointer(&info)); err != nil {
		return fmt.Errorf("info: %w", err)
	}
	p.name = cString(info.Name[:])
	p.addr.Subdevice = int(info.Subdevice)

	hw, err := negotiate(func(hp *hwParams) error {
		return p.ctl(ioctlHWRefine, unsafe.Pointer(hp))
	}, cfg)
	if err != nil {
		return err
	}
	hw.Rmask = ^uint32(0)
	if err := p.ctl(ioctlHWParams, unsafe.Pointer(hw)); err != nil {
		return fmt.Errorf("hw_params: %w", err)
	}
	if p.params, err = paramsFrom(hw); err != nil {
		return err
	}
	sw := p.swParams()
	if err := p.ctl(ioctlSWParams, unsafe.Pointer(&sw)); err != nil {
		return fmt.Errorf("sw_params: %w", err)
	}
	if err := p.ctl(ioctlPrepare, nil); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

// swParams wakes the poller once a period is free (playback) or filled
// (capture), starts capture at the first Read and playback when its buffer
// is full, and stops (xrun) when the buffer runs empty or over.
func (p *PCM) swParams() swParams {
	start := uint(p.params.BufferFrames)
	if p.stream == Capture {
		start = 1
	}
	return swParams{
		PeriodStep:     1,
		AvailMin:       uint(p.params.PeriodFrames),
		XferAlign:      1,
		StartThreshold: start,
		StopThreshold:  uint(p.params.BufferFrames),
		Proto:          2<<16 | 0<<8 | 15, // SNDRV_PCM_VERSION 2.0.15
	}
}

// Addr is the PCM's address, with the subdevice actually opened.
func (p *PCM) Addr() Addr { return p.addr }

// Name is the PCM's name as the driver reports it ("Loopback PCM").
func (p *PCM) Name() string { return p.name }

// Stream is the PCM's direction.
func (p *PCM) Stream() Stream { return p.stream }

// Params is the setup the hardware accepted.
func (p *PCM) Params() Params { return p.params }

// Xruns counts the overruns, underruns and suspends recovered so far.
func (p *PCM) Xruns() int64 { return p.xruns.Load() }

// Write plays interleaved frames (len(buf) must be a multiple of the
// channel count), blocking until all are in the ring buffer. It recovers
// from underruns and suspends by itself. After Drain or Drop it prepares the
// stream again. It returns the frames written and, if not all, why.
func (p *PCM) Write(buf []int16) (int, error) {
	if p.stream != Playback {
		return 0, fmt.Errorf("alsa: write %s: a capture stream", p.addr)
	}
	n, err := p.transfer(buf, ioctlWriteIFrames)
	if err != nil {
		return n, fmt.Errorf("alsa: write %s: %w", p.addr, err)
	}
	return n, nil
}

// Read captures interleaved frames into buf (len(buf) a multiple of the
// channel count), blocking until buf is full. It recovers from overruns and
// suspends by itself (the lost frames are simply missing). It returns the
// frames read and, if not all, why.
func (p *PCM) Read(buf []int16) (int, error) {
	if p.stream != Capture {
		return 0, fmt.Errorf("alsa: read %s: a playback stream", p.addr)
	}
	n, err := p.transfer(buf, ioctlReadIFrames)
	if err != nil {
		return n, fmt.Errorf("alsa: read %s: %w", p.addr, err)
	}
	return n, nil
}

func (p *PCM) transfer(buf []int16, req uintptr) (int, error) {
	ch := p.params.Channels
	if ch == 0 || len(buf)%ch != 0 {
		return 0, fmt.Errorf("%d samples is not a whole number of %d-channel frames", len(buf), ch)
	}
	if p.closed.Load() {
		return 0, ErrClosed
	}
	if err := p.prepareIfNeeded(); err != nil {
		return 0, err
	}
	frames, done, stuck := len(buf)/ch, 0, 0
	for done < frames {
		p.x = xferi{Buf: unsafe.Pointer(&buf[done*ch]), Frames: uint(frames - done)}
		err := p.wait(func(fd uintptr) error { return p.ioctl(fd, req, unsafe.Pointer(&p.x)) })
		if err == nil {
			done += p.x.Result
			stuck = 0
			continue
		}
		if errors.Is(err, ErrClosed) {
			return done, err
		}
		if stuck++; stuck > maxRecoveries {
			return done, fmt.Errorf("giving up after %d recoveries: %w", maxRecoveries, err)
		}
		if err := p.recover(err); err != nil {
			return done, err
		}
	}
	p.x.Buf = nil
	runtime.KeepAlive(buf)
	return done, nil
}

// recover brings the stream back after a transfer failed with err, as
// alsa-lib's snd_pcm_recover does, or returns the error that cannot be.
func (p *PCM) recover(err error) error {
	switch {
	case errors.Is(err, unix.EPIPE):
		n := p.xruns.Add(1)
		what := "underrun"
		if p.stream == Capture {
			what = "overrun"
		}
		p.log.Warn("xrun: "+what+", re-preparing", "xruns", n)
		return p.prepare()
	case errors.Is(err, unix.ESTRPIPE):
		n := p.xruns.Add(1)
		p.log.Warn("suspended, resuming", "xruns", n)
		for range resumeTries {
			err = p.ctl(ioctlResume, nil)
			if !errors.Is(err, unix.EAGAIN) {
				break
			}
			if p.closed.Load() {
				return ErrClosed
			}
			time.Sleep(resumeWait)
		}
		if err == nil {
			return nil
		}
		// The driver cannot resume (ENOSYS) or timed out: start afresh.
		return p.prepare()
	case errors.Is(err, unix.EBADFD):
		// Stopped behind our back (a driver stop, SETUP): prepare again.
		return p.prepare()
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	return err
}

func (p *PCM) prepare() error {
	if err := p.ctl(ioctlPrepare, nil); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	p.needPrepare.Store(false)
	return nil
}

func (p *PCM) prepareIfNeeded() error {
	if p.needPrepare.Load() {
		return p.prepare()
	}
	return nil
}

// Delay returns how many frames stand between the application and the
// speaker (playback: written but not yet played) or the microphone
// (capture: captured but not yet read). A stream that is not running has
// none.
func (p *PCM) Delay() (int, error) {
	var d int
	err := p.ctl(ioctlDelay, unsafe.Pointer(&d))
	switch {
	case err == nil:
		return max(d, 0), nil
	case errors.Is(err, unix.EPIPE), errors.Is(err, unix.EBADFD), errors.Is(err, unix.ESTRPIPE):
		return 0, nil
	}
	return 0, fmt.Errorf("alsa: delay %s: %w", p.addr, err)
}

// Drain plays out what is buffered and stops the stream (playback; for
// capture it is Drop). It returns when the last frame has been played, or
// after the buffer's duration plus a second at the latest. The next Write
// prepares the stream again.
func (p *PCM) Drain() error {
	if p.stream == Capture {
		return p.Drop()
	}
	defer p.needPrepare.Store(true)
	err := p.ctl(ioctlDrain, nil)
	switch {
	case err == nil, errors.Is(err, unix.EBADFD), errors.Is(err, unix.EPIPE), errors.Is(err, unix.ESTRPIPE):
		return nil // drained, or nothing was running
	case !errors.Is(err, unix.EAGAIN):
		return fmt.Errorf("alsa: drain %s: %w", p.addr, err)
	}
	// Non-blocking DRAIN returns EAGAIN with the stream DRAINING. HWSYNC
	// succeeds while it is, and fails with EBADFD once it reached SETUP;
	// the stop wakes the poller.
	if err := p.f.SetWriteDeadline(time.Now().Add(p.params.BufferTime() + time.Second)); err == nil {
		defer p.f.SetWriteDeadline(time.Time{})
	}
	err = p.wait(func(fd uintptr) error {
		if err := p.ioctl(fd, ioctlHWSync, nil); err != nil {
			return err
		}
		return unix.EAGAIN
	})
	switch {
	case errors.Is(err, unix.EBADFD):
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		_ = p.ctl(ioctlDrop, nil)
		return fmt.Errorf("alsa: drain %s: not drained after %v", p.addr, p.params.BufferTime()+time.Second)
	case err != nil:
		return fmt.Errorf("alsa: drain %s: %w", p.addr, err)
	}
	return nil
}

// Drop stops the stream at once, discarding what is buffered. The next
// Read or Write prepares it again.
func (p *PCM) Drop() error {
	if err := p.ctl(ioctlDrop, nil); err != nil && !errors.Is(err, unix.EBADFD) {
		return fmt.Errorf("alsa: drop %s: %w", p.addr, err)
	}
	p.needPrepare.Store(true)
	return nil
}

// Close releases the PCM (the kernel stops the stream) and makes a blocked
// Read or Write return ErrClosed. Later calls return nil.
func (p *PCM) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("alsa: close %s: %w", p.addr, err)
	}
	return nil
}

// ctl runs one ioctl that does not wait.
func (p *PCM) ctl(req uintptr, arg unsafe.Pointer) error {
	var err error
	if cerr := p.rc.Control(func(fd uintptr) { err = p.ioctl(fd, req, arg) }); cerr != nil {
		return p.closedOr(cerr)
	}
	return err
}

// wait runs op until it stops failing with EAGAIN, parking the goroutine
// on Go's poller in between: ALSA's poll says POLLIN (capture) or POLLOUT
// (playback) once avail_min frames can move, and POLLERR on a state change
// (xrun, stop), both of which wake it. Close wakes it too.
func (p *PCM) wait(op func(fd uintptr) error) error {
	var err error
	do := func(fd uintptr) bool {
		err = op(fd)
		return !errors.Is(err, unix.EAGAIN)
	}
	var werr error
	if p.stream == Capture {
		werr = p.rc.Read(do)
	} else {
		werr = p.rc.Write(do)
	}
	if werr != nil {
		return p.closedOr(werr)
	}
	return err
}

// closedOr returns ErrClosed once Close was called, else err.
func (p *PCM) closedOr(err error) error {
	if p.closed.Load() || errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return err
}
