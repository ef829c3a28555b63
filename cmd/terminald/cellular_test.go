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

	"github.com/tuanju/tuanju/internal/terminal/cellular"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/provisioning/bundle"
)

// checkCellularFiles: the pppd files are cellular.Make(a)'s, mode 0600,
// and the secrets are absent when a has no user.
func checkCellularFiles(t *testing.T, identity string, a bundle.APN) {
	t.Helper()
	peer, chat, secrets := cellularFiles(identity)
	want, err := cellular.Make(a, chat)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		want []byte
	}{{peer, want.Peer}, {chat, want.Chat}, {secrets, want.Secrets}} {
		got, err := os.ReadFile(f.path)
		if f.want == nil {
			if !os.IsNotExist(err) {
				t.Fatalf("%s exists (%v), want none for APN %+v", f.path, err, a)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, f.want) {
			t.Fatalf("%s (%v):\n%s\nwant:\n%s", f.path, err, got, f.want)
		}
		if fi, err := os.Stat(f.path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v (%v), want 0600", f.path, fi.Mode().Perm(), err)
		}
	}
}

// TestStartAppliesBundleAPN: at start a bundle with an APN gives pppd's
// peer file, chat script and secrets beside it (mode 0600, cellular.Make's
// bytes, the peer's connect line naming the chat script there), logged,
// and cellular_reload runs; a start with the files as they should be
// changes nothing and runs nothing; a looser mode on the secrets is put
// right; an APN without a user removes the secrets; a bundle without an
// APN removes every file (and reloads); an APN the unit refuses (a bundle
// signed before provisioning checked it) writes nothing and is logged; a
// failing cellular_reload is logged and nothing more. Wi-Fi's files and
// reload are untouched by all of it.
func TestStartAppliesBundleAPN(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	identity := terminalstore.IdentityPath(state)
	peer, chat, secrets := cellularFiles(identity)
	for path, name := range map[string]string{peer: "ppp-peer", chat: "ppp-chat", secrets: "ppp-secrets"} {
		if filepath.Dir(path) != dir || filepath.Base(path) != name {
			t.Fatalf("pppd file at %s, want %s/%s (the network script's name)", path, dir, name)
		}
	}
	reloads := filepath.Join(dir, "reloads")
	script := filepath.Join(dir, "reload")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1\" >>"+reloads+"\necho reloaded\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	ran := func(what string) int {
		b, _ := os.ReadFile(reloads)
		return strings.Count(string(b), what+"\n")
	}
	start := func(reload ...string) (config, string) {
		t.Helper()
		cfg, err := loadConfigFor(configUse{name: "terminald"}, []string{"-state", state, "-board", "sim"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		cfg.CellularReload = reload
		cfg.WiFiReload = []string{script, "wifi"}
		var log bytes.Buffer
		applyBundleAtStart(cfg, slog.New(slog.NewTextHandler(&log, nil)))
		return cfg, log.String()
	}
	apn := bundle.APN{Name: "ctnet", User: "ctnet@mycdma.cn", Password: "vnet.mobi"}
	storeBundleSettings(t, identity, bundle.Settings{APN: &apn})

	cfg, log := start(script, "cellular")
	checkCellularFiles(t, identity, apn)
	if p, _ := os.ReadFile(peer); !bytes.Contains(p, []byte("-f "+chat+"\"\n")) {
		t.Errorf("the peer file's connect line does not name %s:\n%s", chat, p)
	}
	if !strings.Contains(log, "cellular: wrote the bundle's APN") || !strings.Contains(log, "apn=ctnet") || !strings.Contains(log, "cellular_reload ran") ||
		strings.Contains(log, "vnet.mobi") {
		t.Errorf("log:\n%s\nwant the files written and cellular_reload run, and no password", log)
	}
	if ran("cellular") != 1 || ran("wifi") != 0 {
		t.Errorf("cellular_reload ran %d times, wifi_reload %d; want 1 and 0", ran("cellular"), ran("wifi"))
	}
	if !slices.Contains(cfg.bundle.applied, "apn") || slices.Contains(cfg.bundle.notHere, "apn") {
		t.Errorf("applied %v, left for the OS %v: apn is applied now", cfg.bundle.applied, cfg.bundle.notHere)
	}

	if _, log := start(script, "cellular"); strings.Contains(log, "cellular:") || ran("cellular") != 1 {
		t.Errorf("a start with the files as they should be: log\n%s\ncellular_reload ran %d times, want still 1", log, ran("cellular"))
	}

	if err := os.Chmod(secrets, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, log := start(script, "cellular"); !strings.Contains(log, "cellular: wrote") || ran("cellular") != 2 {
		t.Errorf("secrets readable by others were not rewritten: log\n%s", log)
	}
	checkCellularFiles(t, identity, apn)

	noUser := bundle.APN{Name: "cmnet"}
	storeBundleSettings(t, identity, bundle.Settings{APN: &noUser})
	if _, log := start(script, "cellular"); !strings.Contains(log, "apn=cmnet") || ran("cellular") != 3 {
		t.Errorf("an APN without a user: log\n%s\ncellular_reload ran %d times, want 3", log, ran("cellular"))
	}
	checkCellularFiles(t, identity, noUser)

	storeBundleSettings(t, identity, bundle.Settings{})
	if _, log := start(script, "cellular"); !strings.Contains(log, "the bundle has no APN: removed the pppd files") || ran("cellular") != 4 {
		t.Errorf("a bundle without an APN: log\n%s\ncellular_reload ran %d times, want 4", log, ran("cellular"))
	}
	for _, p := range []string{peer, chat, secrets} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("a bundle without an APN left %s (%v)", p, err)
		}
	}

	storeBundleSettings(t, identity, bundle.Settings{APN: &apn})
	if _, log := start(filepath.Join(dir, "no-such-command")); !strings.Contains(log, "cellular_reload failed") {
		t.Errorf("a failing cellular_reload: log\n%s", log)
	}
	checkCellularFiles(t, identity, apn)
	if ran("wifi") != 0 {
		t.Errorf("wifi_reload ran %d times for a bundle without Wi-Fi", ran("wifi"))
	}
}

// TestApplyCellularRefuses: an APN that would add a pppd option (a bundle
// signed before provisioning checked APNs, so Encode would now refuse it)
// writes no file, runs no reload and says why; the files of the APN before
// it stay as they were.
func TestApplyCellularRefuses(t *testing.T) {
	dir := t.TempDir()
	cfg := config{StateFile: filepath.Join(dir, "state.db"), CellularReload: []string{"/bin/false"}}
	identity := cfg.identityFile()
	good := bundle.APN{Name: "cmnet", User: "u"}
	applyCellular(cfg, bundle.Unit{Settings: bundle.Settings{APN: &good}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	checkCellularFiles(t, identity, good)
	var log bytes.Buffer
	applyCellular(cfg, bundle.Unit{Settings: bundle.Settings{APN: &bundle.APN{Name: "cmnet", User: "x\nplugin evil.so"}}}, slog.New(slog.NewTextHandler(&log, nil)))
	if !strings.Contains(log.String(), "the bundle's APN is not applied") || !strings.Contains(log.String(), "user has a character") || strings.Contains(log.String(), "cellular_reload") {
		t.Errorf("log:\n%s", log.String())
	}
	checkCellularFiles(t, identity, good)
}
