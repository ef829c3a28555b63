package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/pairing"
)

// provisioned returns a provisioned state file (closed) and its pairing
// secret.
func provisioned(t *testing.T) (string, pairing.Secret) {
	t.Helper()
	state := filepath.Join(t.TempDir(), "terminal.db")
	rendezvoustest.ProvisionFile(t, state)
	store, err := terminalstore.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	secret, err := store.PairingSecret()
	if err != nil {
		t.Fatal(err)
	}
	return state, secret
}

// TestUnpairedBootKeepsSecretOutOfLogs: an unpaired unit boots, connects
// and waits for pairing, with every log line on (debug); neither its log
// nor its stdout carries the label's pairing secret. `terminald label`
// prints it, with the QR code and the reset line, on request.
func TestUnpairedBootKeepsSecretOutOfLogs(t *testing.T) {
	srv := rendezvoustest.NewServer(t, nil)
	state, secret := provisioned(t)
	conf := filepath.Join(t.TempDir(), "terminald.toml")
	if err := os.WriteFile(conf, []byte("log_level = \"debug\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newLines(), newLines()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-config", conf, "-server", srv.WSURL, "-public-url", srv.URL, "-state", state,
			"-board", "sim", "-camera", "synthetic", "-mic", "synthetic", "-loopback-only", "-log-format", "text"}, stdout.w, stderr.w)
	}()
	stdout.wait(t, "not paired")
	stderr.wait(t, "connected to the rendezvous server")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("terminald after Ctrl-C: %v", err)
		}
	case <-time.After(rendezvoustest.Timeout):
		t.Fatal("terminald did not stop")
	}
	stdout.w.Close()
	stderr.w.Close()
	for name, l := range map[string]*lines{"stdout": stdout, "log": stderr} {
		l.mu.Lock()
		text := strings.Join(l.all, "\n")
		l.mu.Unlock()
		if strings.Contains(text, secret.String()) {
			t.Errorf("the pairing secret is in terminald's %s:\n%s", name, text)
		}
		if len(text) == 0 {
			t.Errorf("terminald's %s is empty: the check proves nothing", name)
		}
	}

	// The explicit command prints the link.
	var out strings.Builder
	if err := run(context.Background(), []string{"label", "-server", srv.WSURL, "-public-url", srv.URL, "-state", state, "-board", "sim"}, &out, io.Discard); err != nil {
		t.Fatalf("terminald label: %v", err)
	}
	for _, want := range []string{secret.String(), srv.URL + "/pair#", "█", "恢复出厂设置", "Factory reset: hold the button while plugging in"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("terminald label printed %q, want it to contain %q", out.String(), want)
		}
	}
}

// TestResetCommand: `terminald reset` erases nothing without --yes, nothing
// within a minute of a call, and otherwise does what the power-up gesture
// does: pairing and call log gone, unpair pending for the server, identity
// and label secret kept.
func TestResetCommand(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		lastCall  time.Duration // ago; 0: no call logged
		wantErr   error
		wantReset bool
	}{
		{"without --yes nothing is erased", nil, 0, errResetUnconfirmed, false},
		{"--yes resets", []string{"--yes"}, 0, nil, true},
		{"--yes long after a call resets", []string{"--yes"}, 10 * time.Minute, nil, true},
		{"--yes just after a call is refused", []string{"--yes"}, 20 * time.Second, terminal.ErrRecentCall, false},
		{"--yes with no server configured resets", []string{"--yes", "-server", ""}, 0, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, secret := provisioned(t)
			store, err := terminalstore.Open(state)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.SetParent(terminalstore.Parent{ParentID: "p1", PairedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if tt.lastCall > 0 {
				if err := store.AppendCall(terminalstore.CallRecord{CallID: "c1", EndedAt: time.Now().Add(-tt.lastCall)}); err != nil {
					t.Fatal(err)
				}
			}
			store.Close()

			args := append([]string{"reset", "-server", "ws://127.0.0.1:1/ws", "-state", state, "-board", "sim"}, tt.args...)
			err = run(context.Background(), args, io.Discard, io.Discard)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("terminald reset: %v, want %v", err, tt.wantErr)
			}
			store, err = terminalstore.Open(state)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			_, perr := store.Parent()
			pending, _ := store.UnpairPending()
			if reset := errors.Is(perr, terminalstore.ErrNotPaired); reset != tt.wantReset || pending != tt.wantReset {
				t.Fatalf("after reset: unpaired %v, unpair pending %v; want both %v", reset, pending, tt.wantReset)
			}
			if s, err := store.PairingSecret(); err != nil || s != secret {
				t.Errorf("the label's secret changed: %v", err)
			}
			if _, err := store.Identity(); err != nil {
				t.Errorf("identity gone: %v", err)
			}
		})
	}
}
