package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tuanju/tuanju/internal/terminal/selftest"
)

// commands is every subcommand a newcomer must be able to find in the help.
var commands = []string{"selftest", "identity", "label", "reset", "version"}

// TestHelp: -h, --help and help, at the top and per subcommand, print a
// usage on stdout and succeed; the top-level one lists every subcommand with
// its line. (It was "flag: help requested" and exit 1, naming none.)
func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string // on stdout
	}{
		{[]string{"-h"}, append([]string{"usage:", "-server"}, commands...)},
		{[]string{"--help"}, append([]string{"usage:", "-server"}, commands...)},
		{[]string{"-help"}, append([]string{"usage:"}, commands...)},
		{[]string{"help"}, append([]string{"usage:"}, commands...)},
		{[]string{"-board", "sim", "-h"}, append([]string{"usage:"}, commands...)},
		{[]string{"selftest", "-h"}, []string{"usage: terminald selftest", "-no-interactive"}},
		{[]string{"selftest", "-config", "x.toml", "--help"}, []string{"usage: terminald selftest"}},
		{[]string{"help", "selftest"}, []string{"usage: terminald selftest"}},
		{[]string{"identity", "-h"}, []string{"usage: terminald identity import"}},
		{[]string{"identity", "import", "-h"}, []string{"usage: terminald identity import"}},
		{[]string{"help", "identity"}, []string{"usage: terminald identity import"}},
		{[]string{"label", "-h"}, []string{"usage: terminald label", "-public-url"}},
		{[]string{"reset", "--help"}, []string{"usage: terminald reset --yes", "-yes"}},
		{[]string{"version", "-h"}, []string{"usage: terminald version"}},
		{[]string{"help", "version"}, []string{"usage: terminald version"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), tt.args, &stdout, &stderr); err != nil {
				t.Fatalf("run = %v, want success\nstderr:\n%s", err, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
		})
	}
}

// TestHelpListsEveryCommandWithALine: each subcommand has its own line in
// the list, with a description after the name.
func TestHelpListsEveryCommandWithALine(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"help"}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	_, list, _ := strings.Cut(stdout.String(), "commands:\n")
	for _, c := range append(commands, "help") {
		found := false
		for _, l := range strings.Split(list, "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[0] == c {
				found = true
			}
		}
		if !found {
			t.Errorf("no line for %q under commands:\n%s", c, stdout.String())
		}
	}
}

// TestUnknownCommand: a first argument that is not a flag and not a command
// is named, with the usage and the nearest command; it never reaches the
// daemon's config check (which said `server_url "" must be a ws:// URL`).
func TestUnknownCommand(t *testing.T) {
	tests := []struct {
		args    []string
		want    string
		suggest string // "" : none expected
	}{
		{[]string{"selftset"}, `unknown command "selftset"`, `did you mean "selftest"?`},
		{[]string{"lable", "-config", "x"}, `unknown command "lable"`, `did you mean "label"?`},
		{[]string{"versio"}, `unknown command "versio"`, `did you mean "version"?`},
		{[]string{"serve"}, `unknown command "serve"`, ""},
		{[]string{"help", "selftset"}, `unknown command "selftset"`, `did you mean "selftest"?`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "server_url") {
				t.Errorf("err = %v: fell through to the daemon's config", err)
			}
			if hasSuggestion := strings.Contains(err.Error(), "did you mean"); tt.suggest == "" && hasSuggestion {
				t.Errorf("err = %v, want no suggestion", err)
			} else if tt.suggest != "" && !strings.Contains(err.Error(), tt.suggest) {
				t.Errorf("err = %v, want %q", err, tt.suggest)
			}
			for _, c := range commands {
				if !strings.Contains(stderr.String(), c) {
					t.Errorf("the usage on stderr lacks %q:\n%s", c, stderr.String())
				}
			}
		})
	}
}

// TestSelftestSaysWhySkipped: on the simulated board with no server
// configured, the hardware checks run and pass, the network check is
// skipped because there is no server_url, and the button's press test says
// its real reason, not a -no-interactive that was never given.
func TestSelftestSaysWhySkipped(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		network selftest.Status
		netWhy  string
		button  string // the button detail must hold it
		notSay  string // and must not
	}{
		{"sim, no server, interactive", nil, selftest.Skipped, "no server_url", "nobody can press it", "-no-interactive"},
		{"sim, no server, -no-interactive (control)", []string{"-no-interactive"}, selftest.Skipped, "no server_url", "(-no-interactive)", "nobody can press"},
		{"sim, a server (control)", []string{"-server", "ws://" + loopbackServer(t) + "/ws"}, selftest.Pass, "connected", "nobody can press it", "-no-interactive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"selftest", "-board", "sim", "-camera", "synthetic", "-mic", "none",
				"-state", filepath.Join(t.TempDir(), "terminal.db"), "-led-hold", "1ms", "-json"}, tt.args...)
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("selftest: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
			}
			var rep struct {
				Results []selftest.Result `json:"results"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("JSON report: %v\n%s", err, stdout.String())
			}
			got := map[string]selftest.Result{}
			for _, r := range rep.Results {
				got[r.Check] = r
			}
			if n := got["network"]; n.Status != tt.network || !strings.Contains(n.Detail, tt.netWhy) {
				t.Errorf("network = %s %q, want %s with %q", n.Status, n.Detail, tt.network, tt.netWhy)
			}
			if b := got["button"]; b.Status != selftest.Skipped || !strings.Contains(b.Detail, tt.button) || strings.Contains(b.Detail, tt.notSay) {
				t.Errorf("button = %s %q, want skipped saying %q and not %q", b.Status, b.Detail, tt.button, tt.notSay)
			}
			for _, c := range []string{"led green", "led red", "led blue", "camera", "screen"} {
				if got[c].Status != selftest.Pass {
					t.Errorf("%s = %s %q, want pass", c, got[c].Status, got[c].Detail)
				}
			}
		})
	}
}

// TestSelftestRefusesABadServer: an empty server_url is allowed to the
// self-test, a wrong one is not.
func TestSelftestRefusesABadServer(t *testing.T) {
	err := run(context.Background(), []string{"selftest", "-board", "sim", "-server", "http://x/ws",
		"-state", filepath.Join(t.TempDir(), "terminal.db")}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "server_url") {
		t.Fatalf("err = %v, want the server_url refused", err)
	}
}

// TestFlagsOverrideFileOnlyWhenGiven: each bound flag beats the file when
// given and leaves the file's value alone when not.
func TestFlagsOverrideFileOnlyWhenGiven(t *testing.T) {
	file := writeConfig(t, `
server_url = "ws://file.example/ws"
public_url = "http://file.example"
state_file = "/file/state.db"
board = "sim"
panel_listen = "127.0.0.1:1"
loopback_only = false
log_format = "text"
[media]
profile = "audio-only"
camera = "none"
microphone = "none"
`)
	tests := []struct {
		flag, value string
		get         func(config) string
		file        string
	}{
		{"server", "wss://flag.example/ws", func(c config) string { return c.ServerURL }, "ws://file.example/ws"},
		{"public-url", "https://flag.example", func(c config) string { return c.PublicURL }, "http://file.example"},
		{"state", "/flag/state.db", func(c config) string { return c.StateFile }, "/file/state.db"},
		{"board", "gpio", func(c config) string { return c.Board }, "sim"},
		{"panel", "127.0.0.1:2", func(c config) string { return c.PanelListen }, "127.0.0.1:1"},
		{"loopback-only", "true", func(c config) string { return map[bool]string{true: "true", false: "false"}[c.LoopbackOnly] }, "false"},
		{"profile", "low-data", func(c config) string { return c.Media.Profile }, "audio-only"},
		{"camera", "synthetic", func(c config) string { return c.Media.Camera }, "none"},
		{"mic", "synthetic", func(c config) string { return c.Media.Microphone }, "none"},
		{"log-format", "json", func(c config) string { return c.LogFormat }, "text"},
	}
	for _, tt := range tests {
		t.Run(tt.flag, func(t *testing.T) {
			cfg, err := loadConfig([]string{"-config", file}, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(cfg); got != tt.file {
				t.Errorf("without -%s: %q, want the file's %q", tt.flag, got, tt.file)
			}
			cfg, err = loadConfig([]string{"-config", file, "-" + tt.flag + "=" + tt.value}, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(cfg); got != tt.value {
				t.Errorf("-%s %s: %q, want the flag's", tt.flag, tt.value, got)
			}
		})
	}
}
