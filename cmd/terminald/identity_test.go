package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

func TestIdentityImportShow(t *testing.T) {
	state := filepath.Join(t.TempDir(), "sub", "terminal.db")
	runOut := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"identity"}, args...), &out, io.Discard)
		return out.String(), err
	}

	out, err := runOut("show", "-state", state)
	if err == nil {
		t.Fatalf("show on a missing state file succeeded: %s", out)
	}

	bundle, id := rendezvoustest.BundleFile(t)
	out, err = runOut("import", "-state", state, bundle)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if !strings.Contains(out, "device ID   "+id) {
		t.Errorf("import printed %q, want the device ID %s", out, id)
	}
	out, err = runOut("show", "-state", state)
	if err != nil {
		t.Fatalf("show: %v", err)
	}
	for _, want := range []string{id, "issuer      CN=rendezvoustest program CA", "valid       "} {
		if !strings.Contains(out, want) {
			t.Errorf("show printed %q, want it to contain %q", out, want)
		}
	}
	// Importing the same bundle again is harmless.
	if _, err := runOut("import", "-state", state, bundle); err != nil {
		t.Errorf("re-importing the same bundle: %v", err)
	}

	other, _ := rendezvoustest.BundleFile(t)
	if _, err := runOut("import", "-state", state, other); !errors.Is(err, terminalstore.ErrIdentityExists) {
		t.Errorf("importing another unit's bundle err = %v, want ErrIdentityExists", err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600)
	if _, err := runOut("import", "-state", state, garbage); !errors.Is(err, devcert.ErrBadBundle) {
		t.Errorf("importing garbage err = %v, want ErrBadBundle", err)
	}
	if _, err := runOut("import", "-state", state); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("import without a file err = %v, want usage", err)
	}
	if out, _ := runOut("show", "-state", state); !strings.Contains(out, id) {
		t.Errorf("after refused imports show printed %q, want %s still", out, id)
	}

	// A unit that was never provisioned says so and fails.
	empty := filepath.Join(t.TempDir(), "empty.db")
	s, err := terminalstore.Open(empty)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	out, err = runOut("show", "-state", empty)
	if !errors.Is(err, errNotProvisioned) || !strings.Contains(out, "no device certificate") {
		t.Errorf("show on an unprovisioned unit = %q, %v; want errNotProvisioned", out, err)
	}
}

type recordLEDs struct {
	mu   sync.Mutex
	seen []device.Pattern
}

func (l *recordLEDs) Show(p device.Pattern) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, p)
	return nil
}

// TestAwaitIdentityShowsFault: an unprovisioned unit shows needs-repair and
// says why once, however often it looks again. The context ends after the
// third look, so "once" is checked over three looks, not over however many
// a slow machine managed in a fixed time.
func TestAwaitIdentityShowsFault(t *testing.T) {
	old := provisionPoll
	provisionPoll = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	looks := 0
	provisionLooked = func() {
		if looks++; looks == 3 {
			cancel()
		}
	}
	t.Cleanup(func() { provisionPoll, provisionLooked = old, nil })
	var leds recordLEDs
	var out bytes.Buffer
	var statuses []string
	state := filepath.Join(t.TempDir(), "t.db")
	store, _, err := awaitIdentity(ctx, state, terminalstore.IdentityPath(state), &leds, func(s string) { statuses = append(statuses, s) }, slog.New(slog.DiscardHandler), &out)
	if store != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("awaitIdentity = %v, %v; want to wait until the context ends", store, err)
	}
	if looks != 3 {
		t.Fatalf("looked %d times, want 3", looks)
	}
	if len(leds.seen) != 1 || leds.seen[0] != device.Fault {
		t.Errorf("LEDs showed %v over %d looks, want [fault] once", leds.seen, looks)
	}
	if strings.Count(out.String(), notProvisioned) != 1 || len(statuses) != 1 {
		t.Errorf("said %q and status %q over %d looks; want the message once", out.String(), statuses, looks)
	}
}

// lines collects a writer's lines for a test to wait on.
type lines struct {
	mu  sync.Mutex
	all []string
	w   *io.PipeWriter
}

func newLines() *lines {
	pr, pw := io.Pipe()
	l := &lines{w: pw}
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			l.mu.Lock()
			l.all = append(l.all, s.Text())
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *lines) wait(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(rendezvoustest.Timeout)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, s := range l.all {
			if strings.Contains(s, want) {
				l.mu.Unlock()
				return
			}
		}
		l.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no line containing %q; got %q", want, l.all)
}

// TestServeWaitsForIdentity: terminald on an unprovisioned unit does not log
// in, and starts by itself once a technician imports an identity beside it;
// the server then registers that very device.
func TestServeWaitsForIdentity(t *testing.T) {
	old := provisionPoll
	provisionPoll = 50 * time.Millisecond
	t.Cleanup(func() { provisionPoll = old })
	srv := rendezvoustest.NewServer(t, nil)
	state := filepath.Join(t.TempDir(), "terminal.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newLines()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-server", srv.WSURL, "-state", state, "-board", "sim", "-camera", "synthetic",
			"-mic", "synthetic", "-loopback-only", "-log-format", "text"}, out.w, io.Discard)
	}()
	out.wait(t, notProvisioned)

	bundle, id := rendezvoustest.BundleFile(t)
	if err := run(ctx, []string{"identity", "import", "-state", state, bundle}, io.Discard, io.Discard); err != nil {
		t.Fatalf("import beside the running daemon: %v", err)
	}
	out.wait(t, "terminal "+id)
	deadline := time.Now().Add(rendezvoustest.Timeout)
	for {
		if _, err := srv.Registry().Device(id); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never registered %s after the import", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("terminald after Ctrl-C: %v", err)
		}
	case <-time.After(rendezvoustest.Timeout):
		t.Fatal("terminald did not stop")
	}
}
