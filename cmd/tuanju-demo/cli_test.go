package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestHelp: -h and --help print the usage with the flags and succeed.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-data", "x", "-h"}} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, &stdout, &stderr); err != nil {
			t.Errorf("%q: run = %v, want success\n%s", args, err, stderr.String())
		}
		for _, w := range []string{"usage:", "-data", "-bin"} {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("%q: stdout lacks %q:\n%s", args, w, stdout.String())
			}
		}
	}
}

// TestSecondDemoRefused: a demo started beside a running one (which holds
// the data directory's lock, as a running demo does) is refused with the
// first one's pid, and leaves its log and its state alone (it must not
// truncate the log, nor advise removing the directory, pairing and all).
// Once the first one is gone, a demo starts again (control: it gets
// past the lock, here to the missing binaries).
func TestSecondDemoRefused(t *testing.T) {
	data := t.TempDir()
	logPath := filepath.Join(data, "demo.log")
	state := filepath.Join(data, "terminal.db")
	for _, f := range []struct{ path, body string }{{logPath, "the first demo's log\n"}, {state, "the pairing\n"}} {
		if err := os.WriteFile(f.path, []byte(f.body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The first demo, as far as the lock goes.
	lock, err := os.OpenFile(filepath.Join(data, "demo.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	const firstPid = 424242
	lock.WriteString(strconv.Itoa(firstPid) + "\n")

	args := []string{"-bin", filepath.Join(t.TempDir(), "nobin"), "-data", data, "-listen", "127.0.0.1:1", "-panel", "127.0.0.1:1"}
	err = run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
	want := "another demo is running from " + data + " (pid 424242); stop it first"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("second demo: err = %v, want %q", err, want)
	}
	if err != nil && strings.Contains(err.Error(), "remove") {
		t.Errorf("second demo: err = %v advises removing the data directory", err)
	}
	for _, f := range []struct{ path, body string }{{logPath, "the first demo's log\n"}, {state, "the pairing\n"}} {
		if b, err := os.ReadFile(f.path); err != nil || string(b) != f.body {
			t.Errorf("%s after the refused demo: %q, %v; want %q untouched", filepath.Base(f.path), b, err, f.body)
		}
	}

	lock.Close() // the first demo ends
	err = run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || strings.Contains(err.Error(), "another demo") || !strings.Contains(err.Error(), "nobin") {
		t.Errorf("demo after the first ended: err = %v, want it past the lock, failing on the missing binary", err)
	}
}
