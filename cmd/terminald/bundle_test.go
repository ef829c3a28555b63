package main

import (
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
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/provisioning/batch"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/labels"
	"github.com/tuanju/tuanju/provisioning/programme"
)

// batchWiFi is the test programme's Wi-Fi.
var batchWiFi = []bundle.WiFi{{SSID: "新河小学", PSK: "password1"}, {SSID: "guest"}}

// testBatch is a programme and a two-unit batch made once per test binary.
type testBatch struct {
	prog    *programme.Dir
	dir     string
	recs    []batch.Record
	keyFile string
}

var (
	batchOnce sync.Once
	batchMade testBatch
	batchErr  error
)

func makeBatch(t *testing.T) testBatch {
	t.Helper()
	batchOnce.Do(func() {
		programme.ScryptLogN = 10
		root, err := os.MkdirTemp("", "terminald-batch-")
		if err != nil {
			batchErr = err
			return
		}
		pass := []byte("terminald test passphrase")
		d, err := programme.Init(filepath.Join(root, "prog"), programme.Settings{Name: "T", ServerURL: "ws://127.0.0.1:9/ws", DataBudgetMB: 300,
			PublicURL: "http://127.0.0.1:9", TimeZone: "Asia/Urumqi", Language: "zh-CN", WiFi: batchWiFi}, pass)
		if err != nil {
			batchErr = err
			return
		}
		keys, err := d.Unlock(pass)
		if err != nil {
			batchErr = err
			return
		}
		fonts, err := labels.LoadFonts("", "")
		if err != nil {
			batchErr = err
			return
		}
		rows, err := batch.ReadCSV(strings.NewReader("site,child,region,reunion_windows\n新河小学,小明,河北,Sat 19:00-20:00\n新河小学,小红,河北,\n"),
			batch.Defaults{Language: "zh-CN", TimeZone: "Asia/Urumqi"}, nil)
		if err != nil {
			batchErr = err
			return
		}
		out := filepath.Join(root, "b1")
		if _, err := batch.Run(context.Background(), batch.Options{Dir: out, Name: "B1", Rows: rows, Programme: d, Keys: keys, Fonts: fonts}); err != nil {
			batchErr = err
			return
		}
		recs, err := batch.Units(out)
		batchMade, batchErr = testBatch{prog: d, dir: out, recs: recs, keyFile: d.PublicKeyFile()}, err
	})
	if batchErr != nil {
		t.Fatal(batchErr)
	}
	return batchMade
}

func (b testBatch) bundlePath(i int) string {
	return filepath.Join(b.dir, batch.BundlesDir, b.recs[i].Unit+batch.BundleExt)
}

// TestImportSignedBundle: a batch's bundle, checked against the programme's
// key, gives the unit its identity, its label's pairing secret (`terminald
// label` prints the label's link) and its settings where the config file
// is silent: server, public URL, reunion windows; and its Wi-Fi
// configuration at once (mode 0600, wifi.Config's bytes).
func TestImportSignedBundle(t *testing.T) {
	b := makeBatch(t)
	state := filepath.Join(t.TempDir(), "terminal.db")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"identity", "import", "-state", state, "-programme-key", b.keyFile, b.bundlePath(0)}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	r := b.recs[0]
	for _, want := range []string{"unit        B1-00001", "device ID   " + r.DeviceID, "Sat 19:00-20:00", `wifi        "新河小学"`, "wifi: wrote the bundle's networks"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("import printed %q, lacks %q", out.String(), want)
		}
	}
	checkWiFiFile(t, wifiConfFile(terminalstore.IdentityPath(state)), batchWiFi)
	cfg, err := loadConfigFor(configUse{name: "terminald"}, []string{"-state", state, "-board", "sim"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerURL != "ws://127.0.0.1:9/ws" || cfg.PublicURL != "http://127.0.0.1:9" || len(cfg.AutoAnswer.Windows) != 1 {
		t.Fatalf("config from the bundle: server %q, public %q, windows %v", cfg.ServerURL, cfg.PublicURL, cfg.AutoAnswer.Windows)
	}
	if cfg.DataBudgetMB != 300 {
		t.Fatalf("data_budget_mb from the bundle: %d, want the programme's 300", cfg.DataBudgetMB)
	}
	if tc, err := terminalConfigOf(cfg); err != nil || tc.DataBudget != 300_000_000 {
		t.Fatalf("the terminal's data budget: %d bytes (%v), want 300 MB", tc.DataBudget, err)
	}
	// The file's key wins over the bundle.
	cf := filepath.Join(t.TempDir(), "terminald.toml")
	if err := os.WriteFile(cf, []byte("data_budget_mb = 800\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := loadConfigFor(configUse{name: "terminald"}, []string{"-config", cf, "-state", state, "-board", "sim"}, io.Discard); err != nil || cfg.DataBudgetMB != 800 {
		t.Fatalf("data_budget_mb from the file: %d (%v), want 800", cfg.DataBudgetMB, err)
	}
	// A flag wins over the bundle.
	if cfg, _ := loadConfigFor(configUse{name: "terminald"}, []string{"-state", state, "-board", "sim", "-server", "ws://127.0.0.2/ws"}, io.Discard); cfg.ServerURL != "ws://127.0.0.2/ws" {
		t.Fatalf("-server gave %q", cfg.ServerURL)
	}
	out.Reset()
	if err := run(context.Background(), []string{"label", "-state", state}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	sec, _ := pairing.ParseSecret(r.PairingSecret)
	if want := pairing.URL("http://127.0.0.1:9", r.DeviceID, sec); !strings.Contains(out.String(), want) {
		t.Fatalf("terminald label printed %q, want the label's link %s", out.String(), want)
	}
	// The same bundle again: harmless. Another unit's: refused.
	if err := run(context.Background(), []string{"identity", "import", "-state", state, "-programme-key", b.keyFile, b.bundlePath(0)}, io.Discard, io.Discard); err != nil {
		t.Fatalf("re-import: %v", err)
	}
	if err := run(context.Background(), []string{"identity", "import", "-state", state, "-programme-key", b.keyFile, b.bundlePath(1)}, io.Discard, io.Discard); !errors.Is(err, terminalstore.ErrIdentityExists) {
		t.Fatalf("another unit's bundle: %v", err)
	}
	// A fresh state file (the old one damaged and moved aside) takes the
	// label's secret again, from the stored bundle.
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	s, err := terminalstore.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.PairingSecret()
	s.Close()
	if err != nil || got != sec {
		t.Fatalf("fresh state file's secret %v (%v), want the label's", got, err)
	}
}

// TestImportRefusesBadBundles: a tampered, truncated or foreign bundle, or
// one with no programme key to check it against, is refused before
// anything is written; the reason is kept, and a daemon waiting for its
// identity logs it and shows needs-repair.
func TestImportRefusesBadBundles(t *testing.T) {
	b := makeBatch(t)
	good, err := os.ReadFile(b.bundlePath(0))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		return p
	}
	tampered := bytes.Clone(good)
	tampered[100] ^= 1
	foreignProg, err := programme.Init(filepath.Join(dir, "other"), b.prog.Settings, []byte("another passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, key string
		want            error
	}{
		{"tampered", write("tampered.tjb", tampered), b.keyFile, bundle.ErrTampered},
		{"truncated", write("truncated.tjb", good[:len(good)-10]), b.keyFile, bundle.ErrTruncated},
		{"foreign", b.bundlePath(0), foreignProg.PublicKeyFile(), bundle.ErrForeign},
		{"no programme key", b.bundlePath(0), "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "terminal.db")
			args := []string{"identity", "import", "-state", state}
			if tc.key != "" {
				args = append(args, "-programme-key", tc.key)
			}
			err := run(context.Background(), append(args, tc.file), io.Discard, io.Discard)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("err %v, want refused: %v", err, tc.want)
			}
			if _, err := os.Stat(terminalstore.IdentityPath(state)); !os.IsNotExist(err) {
				t.Fatal("a refused bundle wrote an identity")
			}
			reason, _ := terminalstore.ReadRefusal(terminalstore.IdentityPath(state))
			if reason == "" {
				t.Fatal("no refusal kept for the daemon")
			}
			// The daemon says why and shows needs-repair.
			var leds recordLEDs
			var logBuf bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			old := provisionPoll
			provisionPoll = time.Hour
			provisionLooked = cancel
			t.Cleanup(func() { provisionPoll, provisionLooked = old, nil })
			awaitIdentity(ctx, state, terminalstore.IdentityPath(state), &leds, nil, slog.New(slog.NewTextHandler(&logBuf, nil)), io.Discard)
			if !strings.Contains(logBuf.String(), "provisioning bundle refused") || !strings.Contains(logBuf.String(), "refused") {
				t.Fatalf("log %q lacks the refusal", logBuf.String())
			}
			if len(leds.seen) == 0 || leds.seen[0] != device.Fault {
				t.Fatalf("LEDs %v, want needs-repair", leds.seen)
			}
		})
	}
	// A good import after a refusal clears it.
	state := filepath.Join(t.TempDir(), "terminal.db")
	run(context.Background(), []string{"identity", "import", "-state", state, "-programme-key", b.keyFile, write("t2.tjb", tampered)}, io.Discard, io.Discard)
	if err := run(context.Background(), []string{"identity", "import", "-state", state, "-programme-key", b.keyFile, b.bundlePath(0)}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if reason, _ := terminalstore.ReadRefusal(terminalstore.IdentityPath(state)); reason != "" {
		t.Fatalf("refusal %q kept after a good import", reason)
	}
}
