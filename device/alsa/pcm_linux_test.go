//go:build linux

package alsa

import (
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// step is what the fake kernel does with the next transfer ioctl: move up
// to n frames, or fail with err. EAGAIN steps also make the PCM's file
// readable and writable again, the way a period interrupt wakes poll.
type step struct {
	n   int
	err error
}

// fakeKernel stands in for the PCM ioctls. The PCM's file is one end of a
// socketpair, so Go's poller really parks and wakes the transfer loop.
type fakeKernel struct {
	t        *testing.T
	peer     *os.File
	channels int

	mu       sync.Mutex
	script   []step
	resumes  []error // results of RESUME, in order; then nil
	calls    []string
	written  []int16
	next     int16         // the next captured sample
	blocking bool          // with an empty script, park forever (no wake-up)
	parked   chan struct{} // closed when a blocking transfer first parks
}

func (k *fakeKernel) wake() {
	if _, err := k.peer.Write([]byte{0}); err != nil {
		k.t.Errorf("fake kernel: wake: %v", err)
	}
}

func (k *fakeKernel) ioctl(_, req uintptr, arg unsafe.Pointer) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch req {
	case ioctlWriteIFrames, ioctlReadIFrames:
		if len(k.script) == 0 {
			if !k.blocking {
				k.t.Error("fake kernel: transfer past the end of the script")
			} else if k.parked != nil {
				close(k.parked)
				k.parked = nil
			}
			return unix.EAGAIN
		}
		s := k.script[0]
		k.script = k.script[1:]
		if s.err != nil {
			if errors.Is(s.err, unix.EAGAIN) {
				k.wake()
			}
			return s.err
		}
		x := (*xferi)(arg)
		n := min(s.n, int(x.Frames))
		buf := unsafe.Slice((*int16)(x.Buf), n*k.channels)
		if req == ioctlWriteIFrames {
			k.written = append(k.written, buf...)
		} else {
			for i := range buf {
				buf[i] = k.next
				k.next++
			}
		}
		x.Result = n
		return nil
	case ioctlPrepare:
		k.calls = append(k.calls, "prepare")
	case ioctlResume:
		k.calls = append(k.calls, "resume")
		if len(k.resumes) > 0 {
			err := k.resumes[0]
			k.resumes = k.resumes[1:]
			return err
		}
	case ioctlDrop:
		k.calls = append(k.calls, "drop")
	default:
		k.t.Errorf("fake kernel: unexpected ioctl %#x", req)
		return unix.ENOTTY
	}
	return nil
}

func (k *fakeKernel) callLog() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.calls)
}

// newFakePCM returns a PCM of 2 channels over a fake kernel.
func newFakePCM(t *testing.T, s Stream, script ...step) (*PCM, *fakeKernel) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "fake-pcm")
	peer := os.NewFile(uintptr(fds[1]), "fake-kernel")
	t.Cleanup(func() { peer.Close() })
	k := &fakeKernel{t: t, peer: peer, channels: 2, script: script}
	p, err := newPCM(f, Addr{Card: 9, CardID: "Fake", Device: 0, Subdevice: 0}, s, k.ioctl, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.params = Params{Channels: 2, Rate: 48000, PeriodFrames: 960, BufferFrames: 3840}
	t.Cleanup(func() { p.Close() })
	return p, k
}

func TestTransferRecovers(t *testing.T) {
	eagain, epipe, estrpipe := step{err: unix.EAGAIN}, step{err: unix.EPIPE}, step{err: unix.ESTRPIPE}
	tests := []struct {
		name      string
		script    []step
		resumes   []error
		wantCalls []string
		wantXruns int64
	}{
		{"whole", []step{{n: 100}}, nil, nil, 0},
		{"partial and waits", []step{{n: 30}, eagain, eagain, {n: 50}, eagain, {n: 20}}, nil, nil, 0},
		{"xrun then prepare", []step{{n: 40}, epipe, {n: 60}}, nil, []string{"prepare"}, 1},
		{"suspend, resume after EAGAIN", []step{estrpipe, {n: 100}}, []error{unix.EAGAIN, nil}, []string{"resume", "resume"}, 1},
		{"suspend, no resume: prepare", []step{estrpipe, {n: 100}}, []error{unix.ENOSYS}, []string{"resume", "prepare"}, 1},
		{"stopped behind our back", []step{{n: 10}, {err: unix.EBADFD}, {n: 90}}, nil, []string{"prepare"}, 0},
	}
	for _, s := range []Stream{Playback, Capture} {
		for _, tt := range tests {
			t.Run(s.String()+"/"+tt.name, func(t *testing.T) {
				p, k := newFakePCM(t, s, tt.script...)
				k.resumes = tt.resumes
				buf := make([]int16, 200) // 100 stereo frames
				for i := range buf {
					buf[i] = int16(i)
				}
				var n int
				var err error
				if s == Playback {
					n, err = p.Write(buf)
				} else {
					n, err = p.Read(buf)
				}
				if err != nil || n != 100 {
					t.Fatalf("transfer = %d, %v; want 100 frames", n, err)
				}
				// Frames arrive in order, none twice, none lost, across
				// partial transfers and recoveries.
				got := k.written
				if s == Capture {
					got = buf
				}
				for i, v := range got {
					if v != int16(i) {
						t.Fatalf("sample %d = %d, want %d (data mangled across partial transfers)", i, v, i)
					}
				}
				if calls := k.callLog(); !slices.Equal(calls, tt.wantCalls) {
					t.Errorf("ioctls = %v, want %v", calls, tt.wantCalls)
				}
				if got := p.Xruns(); got != tt.wantXruns {
					t.Errorf("Xruns() = %d, want %d", got, tt.wantXruns)
				}
			})
		}
	}
}

func TestTransferErrors(t *testing.T) {
	t.Run("odd samples", func(t *testing.T) {
		p, _ := newFakePCM(t, Playback)
		if _, err := p.Write(make([]int16, 3)); err == nil {
			t.Error("Write of 3 samples to a stereo PCM succeeded")
		}
	})
	t.Run("wrong direction", func(t *testing.T) {
		p, _ := newFakePCM(t, Capture)
		if _, err := p.Write(make([]int16, 2)); err == nil {
			t.Error("Write to a capture PCM succeeded")
		}
	})
	t.Run("endless xruns give up", func(t *testing.T) {
		script := make([]step, maxRecoveries+1)
		for i := range script {
			script[i] = step{err: unix.EPIPE}
		}
		p, _ := newFakePCM(t, Capture, script...)
		if _, err := p.Read(make([]int16, 2)); !errors.Is(err, unix.EPIPE) {
			t.Errorf("Read = %v, want the EPIPE it gave up on", err)
		}
	})
	t.Run("device gone", func(t *testing.T) {
		p, _ := newFakePCM(t, Playback, step{err: unix.ENODEV})
		if _, err := p.Write(make([]int16, 2)); !errors.Is(err, ErrNoDevice) {
			t.Errorf("Write = %v, want ErrNoDevice", err)
		}
	})
	t.Run("drop then write prepares", func(t *testing.T) {
		p, k := newFakePCM(t, Playback, step{n: 1})
		if err := p.Drop(); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Write(make([]int16, 2)); err != nil {
			t.Fatal(err)
		}
		if calls := k.callLog(); !slices.Equal(calls, []string{"drop", "prepare"}) {
			t.Errorf("ioctls = %v, want [drop prepare]", calls)
		}
	})
}

// TestCloseUnblocks parks a Read (and a Write) on a device that never
// becomes ready and checks Close makes it return ErrClosed.
func TestCloseUnblocks(t *testing.T) {
	for _, s := range []Stream{Capture, Playback} {
		t.Run(s.String(), func(t *testing.T) {
			p, k := newFakePCM(t, s, step{n: 1}, step{err: unix.EAGAIN})
			k.blocking = true
			parked := make(chan struct{})
			k.parked = parked
			done := make(chan error, 1)
			var n int
			go func() {
				var err error
				buf := make([]int16, 20)
				if s == Capture {
					n, err = p.Read(buf)
				} else {
					n, err = p.Write(buf)
				}
				done <- err
			}()
			select {
			case err := <-done:
				t.Fatalf("transfer returned before Close: %v", err)
			case <-parked:
			}
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, ErrClosed) {
					t.Errorf("transfer after Close = %v, want ErrClosed", err)
				}
				if n != 1 {
					t.Errorf("transfer reported %d frames, want the 1 moved before Close", n)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not unblock the transfer")
			}
			if _, err := p.Read(make([]int16, 2)); !errors.Is(err, ErrClosed) && s == Capture {
				t.Errorf("Read after Close = %v, want ErrClosed", err)
			}
			if err := p.Close(); err != nil {
				t.Errorf("second Close = %v, want nil", err)
			}
		})
	}
}
