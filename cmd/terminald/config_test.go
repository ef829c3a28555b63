package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous/certreload/certtest"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "terminald.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigLayers(t *testing.T) {
	file := writeConfig(t, `
server_url = "wss://rv.example.org/ws"
state_file = "/tmp/x.db"
board = "sim"
[media]
profile = "audio-only"
camera = "none"
`)
	cfg, err := loadConfig([]string{"-config", file, "-state", "/tmp/flag.db"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerURL != "wss://rv.example.org/ws" || cfg.Media.Profile != "audio-only" || cfg.Board != "sim" {
		t.Errorf("file values not applied: %+v", cfg)
	}
	if cfg.StateFile != "/tmp/flag.db" {
		t.Errorf("flag did not override file: state_file = %q", cfg.StateFile)
	}
	if cfg.PublicURL != "https://rv.example.org" {
		t.Errorf("public URL derived as %q, want https://rv.example.org", cfg.PublicURL)
	}
	if cfg.LogFormat != "json" {
		t.Errorf("default log format %q, want json on a device", cfg.LogFormat)
	}
	if aa, err := cfg.AutoAnswer.terminal(); err != nil || len(aa.Windows) != 0 || aa.Delay != 5*time.Second {
		t.Errorf("default auto-answer = %+v, %v; want off with a 5 s delay", aa, err)
	}
}

func TestConfigAutoAnswer(t *testing.T) {
	file := writeConfig(t, `
server_url = "wss://rv.example.org/ws"
board = "sim"
[auto_answer]
windows = ["Sat 19:00-20:00", "Wed 18:30-19:00"]
delay = "8s"
`)
	cfg, err := loadConfig([]string{"-config", file}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	aa, err := cfg.AutoAnswer.terminal()
	if err != nil {
		t.Fatal(err)
	}
	if len(aa.Windows) != 2 || aa.Windows[1].String() != "Wed 18:30-19:00" || aa.Delay != 8*time.Second {
		t.Errorf("auto-answer = %+v", aa)
	}
}

func TestConfigRejects(t *testing.T) {
	tests := []struct {
		name, file string
		args       []string
		want       string
	}{
		{"unknown key is an error", `server_url = "ws://a/ws"` + "\nsever = 1\n", nil, "unknown keys: sever"},
		{"no server", ``, nil, "server_url"},
		{"http server URL", `server_url = "http://a/ws"`, nil, "ws:// or wss://"},
		{"bad board", `server_url = "ws://a/ws"` + "\nboard = \"pi\"\n", nil, "board"},
		{"bad profile", `server_url = "ws://a/ws"`, []string{"-profile", "hd", "-board", "sim"}, "profile"},
		{"bad camera", `server_url = "ws://a/ws"`, []string{"-camera", "usb", "-board", "sim"}, "camera"},
		{"malformed toml", `server_url = `, nil, "config"},
		{"ice port out of range", `server_url = "ws://a/ws"` + "\n[ice]\nport = 70000\n", []string{"-board", "sim"}, "ice port 70000"},
		{"ice advertise not an IP", `server_url = "ws://a/ws"` + "\n[ice]\nadvertise_ips = [\"router.lan\"]\n", []string{"-board", "sim"}, "router.lan"},
		{"ice unknown network", `server_url = "ws://a/ws"` + "\n[ice]\nnetworks = [\"sctp\"]\n", []string{"-board", "sim"}, "sctp"},
		{"ice tcp without a port", `server_url = "ws://a/ws"` + "\n[ice]\nnetworks = [\"tcp4\"]\n", []string{"-board", "sim"}, "needs a fixed port"},
		{"auto-answer window misspelt", `server_url = "ws://a/ws"` + "\n[auto_answer]\nwindows = [\"Saturday 19:00-20:00\"]\n", []string{"-board", "sim"}, "auto_answer windows: window 1"},
		{"auto-answer window across midnight", `server_url = "ws://a/ws"` + "\n[auto_answer]\nwindows = [\"Sat 23:00-01:00\"]\n", []string{"-board", "sim"}, "cannot cross midnight"},
		{"auto-answer delay under 3 s", `server_url = "ws://a/ws"` + "\n[auto_answer]\nwindows = [\"Sat 19:00-20:00\"]\ndelay = \"1s\"\n", []string{"-board", "sim"}, "auto_answer delay 1s"},
		{"auto-answer unknown key", `server_url = "ws://a/ws"` + "\n[auto_answer]\nwindow = [\"Sat 19:00-20:00\"]\n", []string{"-board", "sim"}, "unknown keys"},
		{"watchdog timeout too short", `server_url = "ws://a/ws"` + "\nwatchdog_timeout = \"2s\"\n", []string{"-board", "sim"}, "watchdog_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-config", writeConfig(t, tt.file)}, tt.args...)
			_, err := loadConfig(args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestRunRefusesBadConfigBeforeTouchingDisk(t *testing.T) {
	state := filepath.Join(t.TempDir(), "sub", "state.db")
	err := run(context.Background(), []string{"-server", "ftp://x", "-state", state}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("run accepted an ftp:// server URL")
	}
	if _, statErr := os.Stat(state); !os.IsNotExist(statErr) {
		t.Errorf("state file created despite the bad config: %v", statErr)
	}
}

func TestPrintQR(t *testing.T) {
	var b bytes.Buffer
	printQR(&b, "http://127.0.0.1:8080/pair#d=abc&s=def")
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) < 12 {
		t.Fatalf("QR has %d lines, want a full code", len(lines))
	}
	width := len([]rune(lines[0]))
	for i, l := range lines {
		if n := len([]rune(l)); n != width {
			t.Fatalf("line %d is %d wide, line 0 is %d: a ragged QR code does not scan", i, n, width)
		}
	}
	if width < 25 {
		t.Errorf("QR width %d below version-1 size plus quiet zone", width)
	}
}

// The shipped example must stay a valid configuration.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := loadConfig([]string{"-config", "terminald.example.toml"}, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("terminald.example.toml: %v", err)
	}
	if cfg.Board != "gpio" || cfg.Pins.Button != "CALL_BUTTON" || len(cfg.Pins.LEDs) != 3 {
		t.Errorf("example decoded as %+v", cfg)
	}
}

// The board profile's pins apply first; the file's own pins win key by key;
// an LED set to "" is taken off; -board-profile beats the file's name.
func TestConfigBoardProfile(t *testing.T) {
	base := "server_url = \"wss://rv.example.org/ws\"\n"
	tests := []struct {
		name, file string
		args       []string
		wantButton string
		wantLEDs   map[device.Color]string
		wantPull   string
		wantErr    string
	}{
		{"profile alone", base + `board_profile = "rpi-zero-2w"`, nil, "GPIO17",
			map[device.Color]string{device.Green: "GPIO27", device.Red: "GPIO22", device.Blue: "GPIO23"}, "up", ""},
		{"file pin overrides profile", base + `board_profile = "rpi-zero-2w"` + "\n[pins]\nbutton = \"GPIO5\"\n[pins.leds]\nred = \"GPIO6\"\nblue = \"\"\n", nil, "GPIO5",
			map[device.Color]string{device.Green: "GPIO27", device.Red: "GPIO6"}, "up", ""},
		{"flag picks the profile", base + `board_profile = "rpi-zero-2w"`, []string{"-board-profile", "orangepi-zero2w"}, "300b000.pinctrl:226",
			map[device.Color]string{device.Green: "300b000.pinctrl:227", device.Red: "300b000.pinctrl:261", device.Blue: "300b000.pinctrl:270"}, "up", ""},
		{"no profile keeps the defaults", base, nil, "CALL_BUTTON",
			map[device.Color]string{device.Green: "LED_GREEN", device.Red: "LED_RED", device.Blue: "LED_BLUE"}, "", ""},
		{"unknown profile lists the known", base + `board_profile = "rpi5"`, nil, "", nil, "", "built in: orangepi-zero2w, rpi-zero-2w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(append([]string{"-config", writeConfig(t, tt.file)}, tt.args...), &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Pins.Button != tt.wantButton || !maps.Equal(cfg.Pins.LEDs, tt.wantLEDs) || cfg.Pins.ButtonPull != tt.wantPull {
				t.Errorf("pins = %+v, want button %q pull %q LEDs %v", cfg.Pins, tt.wantButton, tt.wantPull, tt.wantLEDs)
			}
		})
	}
}

func TestLoadCAs(t *testing.T) {
	dir := t.TempDir()
	good := certtest.NewCA(t).WriteCA(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "none.pem"), "none.pem"},
		{"not PEM", notPEM, "no PEM certificate"},
	} {
		if _, err := loadCAs(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	pool, err := loadCAs(good)
	if err != nil || pool == nil {
		t.Fatalf("loadCAs(a CA file) = %v, %v", pool, err)
	}
}
