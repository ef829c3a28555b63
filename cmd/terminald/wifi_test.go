package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/internal/terminal/wifi"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// checkWiFiFile: path holds wifi.Config(nets), mode 0600.
func checkWiFiFile(t *testing.T, path string, nets []bundle.WiFi) {
	t.Helper()
	want, err := wifi.Config(nets)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("wifi configuration: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("wifi configuration:\n%s\nwant:\n%s", got, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("wifi configuration mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

// storeBundle puts a bundle with nets where the unit keeps its stored
// bundle (as an import would have).
func storeBundle(t *testing.T, identityPath string, nets []bundle.WiFi) {
	t.Helper()
	storeBundleSettings(t, identityPath, bundle.Settings{WiFi: nets})
}

// storeBundleSettings stores a bundle with s (and a server URL).
func storeBundleSettings(t *testing.T, identityPath string, s bundle.Settings) {
	t.Helper()
	s.ServerURL = "ws://127.0.0.1:9/ws"
	k, err := signing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bundle.Encode(bundle.Unit{Unit: "B1-00007", DeviceID: "abcdefghijklmnopqrstuvwxyz", Identity: "-", PairingSecret: "-",
		IssuedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Settings: s}, k)
	if err != nil {
		t.Fatal(err)
	}
	path := terminalstore.BundlePath(identityPath)
	os.Remove(path)
	if err := os.WriteFile(path, raw, 0o400); err != nil {
		t.Fatal(err)
	}
}

// TestStartAppliesBundleWiFi: at start a bundle with Wi-Fi gives
// wpa_supplicant.conf beside it (mode 0600, wifi.Config's bytes), logged,
// and wifi_reload runs; a start with the file as it should be changes
// nothing and runs nothing; a looser mode is put right; a bundle without
// Wi-Fi removes a stale file (and reloads); a failing wifi_reload is
// logged and nothing more.
func TestStartAppliesBundleWiFi(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	identity := terminalstore.IdentityPath(state)
	conf := wifiConfFile(identity)
	if filepath.Dir(conf) != dir || filepath.Base(conf) != "wpa_supplicant.conf" {
		t.Fatalf("wifi configuration at %s, want %s/wpa_supplicant.conf (the network script's name)", conf, dir)
	}
	reloads := filepath.Join(dir, "reloads")
	script := filepath.Join(dir, "reload")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1\" >>"+reloads+"\necho reloaded\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	ran := func() int {
		b, _ := os.ReadFile(reloads)
		return strings.Count(string(b), "wifi\n")
	}
	start := func(reload ...string) (config, string) {
		t.Helper()
		cfg, err := loadConfigFor(configUse{name: "terminald"}, []string{"-state", state, "-board", "sim"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		cfg.WiFiReload = reload
		var log bytes.Buffer
		applyBundleAtStart(cfg, slog.New(slog.NewTextHandler(&log, nil)))
		return cfg, log.String()
	}
	nets := []bundle.WiFi{{SSID: "school\"\n}", PSK: "password1"}, {SSID: "lab", PSK: strings.Repeat("ab", 32)}, {SSID: "guest"}}
	storeBundle(t, identity, nets)

	cfg, log := start(script, "wifi")
	checkWiFiFile(t, conf, nets)
	if !strings.Contains(log, "wifi: wrote the bundle's networks") || !strings.Contains(log, "networks=3") || !strings.Contains(log, "wifi_reload ran") {
		t.Errorf("log:\n%s\nwant the file written and wifi_reload run", log)
	}
	if ran() != 1 {
		t.Errorf("wifi_reload ran %d times, want 1", ran())
	}
	if !slices.Contains(cfg.bundle.applied, "wifi") || slices.Contains(cfg.bundle.notHere, "wifi") {
		t.Errorf("applied %v, left for the OS %v: wifi is applied now", cfg.bundle.applied, cfg.bundle.notHere)
	}

	if _, log := start(script, "wifi"); strings.Contains(log, "wifi:") || ran() != 1 {
		t.Errorf("a start with the file as it should be: log\n%s\nwifi_reload ran %d times, want still 1", log, ran())
	}

	if err := os.Chmod(conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, log := start(script, "wifi"); !strings.Contains(log, "wifi: wrote") || ran() != 2 {
		t.Errorf("a file readable by others was not rewritten: log\n%s", log)
	}
	checkWiFiFile(t, conf, nets)

	storeBundle(t, identity, nil)
	if _, log := start(script, "wifi"); !strings.Contains(log, "removed the configuration") || ran() != 3 {
		t.Errorf("a bundle without Wi-Fi: log\n%s\nwifi_reload ran %d times, want 3", log, ran())
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Fatalf("a bundle without Wi-Fi left %s (%v)", conf, err)
	}

	storeBundle(t, identity, nets[:1])
	if _, log := start(filepath.Join(dir, "no-such-command")); !strings.Contains(log, "wifi_reload failed") {
		t.Errorf("a failing wifi_reload: log\n%s", log)
	}
	checkWiFiFile(t, conf, nets[:1])
}
