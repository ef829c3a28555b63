package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tuanju/tuanju/internal/terminal/selftest"
)

// loopbackServer accepts TCP connections on 127.0.0.1: the network check's
// "rendezvous server".
func loopbackServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func simSelftestConfig(t *testing.T, server string) string {
	return writeConfig(t, `
server_url = "ws://`+server+`/ws"
state_file = "`+filepath.Join(t.TempDir(), "state", "terminal.db")+`"
board = "sim"
[media]
camera = "synthetic"
`)
}

// The whole subcommand on the simulated board: every check runs, the parts
// the simulated board has pass (LEDs read back, a synthetic frame encoded,
// the test picture read back from the in-memory screen), audio is absent in
// this build, and the report parses.
func TestSelftestSimBoard(t *testing.T) {
	cfg := simSelftestConfig(t, loopbackServer(t))
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"selftest", "-config", cfg, "-no-interactive", "-led-hold", "10ms", "-json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("selftest: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	var rep struct {
		Results []selftest.Result `json:"results"`
		Failed  bool              `json:"failed"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout.String())
	}
	want := map[string]struct {
		status selftest.Status
		detail string
	}{
		"button":     {selftest.Skipped, "reads released"},
		"led green":  {selftest.Pass, "read back High/Low"},
		"led red":    {selftest.Pass, "read back High/Low"},
		"led blue":   {selftest.Pass, "read back High/Low"},
		"camera":     {selftest.Pass, "one 320x240 frame"},
		"microphone": {selftest.Absent, selftest.NoAudioDriver},
		"speaker":    {selftest.Absent, selftest.NoAudioDriver},
		"screen":     {selftest.Pass, "four bars drawn and read back"},
		"network":    {selftest.Pass, "connected"},
		"storage":    {selftest.Pass, "writable"},
		"clock":      {selftest.Pass, "UTC"},
	}
	if len(rep.Results) != len(want) {
		t.Errorf("%d results, want %d: %+v", len(rep.Results), len(want), rep.Results)
	}
	for _, r := range rep.Results {
		w, ok := want[r.Check]
		if !ok {
			t.Errorf("unexpected check %q", r.Check)
			continue
		}
		if r.Status != w.status || !strings.Contains(r.Detail, w.detail) {
			t.Errorf("%s = %s %q, want %s with %q", r.Check, r.Status, r.Detail, w.status, w.detail)
		}
	}
	if rep.Failed {
		t.Error("report says failed")
	}
	for _, line := range []string{"[ 1/11] button", "[11/11] clock"} {
		if !strings.Contains(stderr.String(), line) {
			t.Errorf("progress lacks %q:\n%s", line, stderr.String())
		}
	}
}

// A failing check makes the command fail, and the table says which.
func TestSelftestFailsWithoutServer(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	cfg := simSelftestConfig(t, addr)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"selftest", "-config", cfg, "-no-interactive", "-led-hold", "1ms"}, &stdout, &stderr)
	if !errors.Is(err, errSelftestFailed) {
		t.Fatalf("err = %v, want errSelftestFailed", err)
	}
	var netRow string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(l, "network ") {
			netRow = l
		}
	}
	if !strings.Contains(netRow, "FAIL") || !strings.Contains(netRow, "refused") {
		t.Errorf("network row %q, want FAIL ... refused; table:\n%s", netRow, stdout.String())
	}
	if !strings.Contains(stdout.String(), "FAIL: see the rows marked FAIL") {
		t.Errorf("no verdict line:\n%s", stdout.String())
	}
}

// A gpio board whose profile fits a camera, with the camera turned off in
// the config: the camera is absent, and that fails because it is fitted.
func TestSelftestFittedCameraAbsentFails(t *testing.T) {
	cfg := writeConfig(t, `
server_url = "ws://`+loopbackServer(t)+`/ws"
state_file = "`+filepath.Join(t.TempDir(), "terminal.db")+`"
board = "sim"
board_profile = "rpi-zero-2w"
[media]
camera = "none"
`)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"selftest", "-config", cfg, "-no-interactive", "-led-hold", "1ms", "-json"}, &stdout, &stderr)
	if !errors.Is(err, errSelftestFailed) {
		t.Fatalf("err = %v, want errSelftestFailed\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "the board profile says it is fitted") {
		t.Errorf("report does not blame the fitted camera:\n%s", stdout.String())
	}
}
