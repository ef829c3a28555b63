package netwatch_test

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tuanju/tuanju/internal/terminal/netwatch"
)

// inNewNetns runs f on a thread of its own in a new, empty network
// namespace (only lo, down), so the test changes no network of the
// machine's; it skips where that is not allowed.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	skip := make(chan error, 1)
	go func() {
		defer close(done)
		// The thread is never given back: it stays in the namespace and
		// exits with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			skip <- err
			return
		}
		f()
	}()
	<-done
	select {
	case err := <-skip:
		t.Skipf("no network namespace of its own (needs CAP_SYS_ADMIN): %v", err)
	default:
	}
}

// ip runs ip(8) from the calling (locked) thread: the child starts in that
// thread's namespace.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Errorf("ip %v: %v: %s", args, err, out)
	}
}

// TestWatchSeesNewAddress: a link coming up and an address added (as a
// DHCP client adds its lease) are each news on the channel; before any
// change there is none; the channel closes when the context ends. Run in
// a namespace of the test's own.
func TestWatchSeesNewAddress(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip(8)")
	}
	inNewNetns(t, func() {
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := netwatch.Watch(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Error(err)
			cancel()
			return
		}
		select {
		case <-ch:
			t.Error("news before anything changed")
		case <-time.After(200 * time.Millisecond):
		}
		for _, step := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", "10.77.0.2/24", "dev", "lo"}} {
			ip(t, step...)
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
				t.Errorf("no news of ip %v", step)
			}
			// The rest of this step's burst.
			for drained := false; !drained; {
				select {
				case <-ch:
				case <-time.After(100 * time.Millisecond):
					drained = true
				}
			}
		}
		cancel()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case _, open := <-ch:
				if !open {
					return
				}
			case <-deadline:
				t.Error("the channel stayed open after the context ended")
				return
			}
		}
	})
}
