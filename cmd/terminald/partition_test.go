package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/devcert"
	"github.com/tuanju/tuanju/provisioning/programme"
)

// fakeBlock points findPartition at a sysfs and /dev of the test's own:
// one disk "vda" with the OS image's partitions, "provisioning" (vda4)
// holding part (a 4 MiB raw partition: the bundle, then zeros).
func fakeBlock(t *testing.T, part []byte, extra ...string) (dev string) {
	t.Helper()
	root := t.TempDir()
	oldSys, oldDev := sysClassBlock, devDir
	sysClassBlock, devDir = filepath.Join(root, "sys"), filepath.Join(root, "dev")
	t.Cleanup(func() { sysClassBlock, devDir = oldSys, oldDev })
	names := append([]string{"boot", "rootA", "rootB", "provisioning", "data"}, extra...)
	for i, n := range names {
		devName := fmt.Sprintf("vda%d", i+1)
		dir := filepath.Join(sysClassBlock, devName)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		uevent := fmt.Sprintf("MAJOR=254\nMINOR=%d\nDEVNAME=%s\nDEVTYPE=partition\nPARTN=%d\nPARTNAME=%s\n", i+1, devName, i+1, n)
		if err := os.WriteFile(filepath.Join(dir, "uevent"), []byte(uevent), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The whole disk has no PARTNAME.
	os.MkdirAll(filepath.Join(sysClassBlock, "vda"), 0o755)
	os.WriteFile(filepath.Join(sysClassBlock, "vda", "uevent"), []byte("MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n"), 0o644)
	if err := os.MkdirAll(devDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dev = filepath.Join(devDir, "vda4")
	raw := make([]byte, 4<<20)
	copy(raw, part)
	if err := os.WriteFile(dev, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return dev
}

// unitConfig is the OS image's config for a unit whose state is in dir.
func unitConfig(t *testing.T, dir, keyFile string) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`state_file = %q
programme_key_file = %q
provisioning_partition = "provisioning"
board = "sim"
log_format = "text"
[media]
camera = "synthetic"
microphone = "synthetic"
`, filepath.Join(dir, "terminald", "state.db"), keyFile))
}

// TestFirstBootImportsFromPartition: the daemon's config load reads the
// bundle off the provisioning partition, verifies and imports it (the
// unit's identity and the bundle's server); at the next start, the same
// bundle already held, nothing is written.
func TestFirstBootImportsFromPartition(t *testing.T) {
	b := makeBatch(t)
	good, err := os.ReadFile(b.bundlePath(0))
	if err != nil {
		t.Fatal(err)
	}
	fakeBlock(t, good)
	dir := t.TempDir()
	conf := unitConfig(t, dir, b.keyFile)
	cfg, err := loadConfigFor(configUse{name: "terminald", provision: true}, []string{"-config", conf}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.provisionErr != nil {
		t.Fatalf("refused: %v", cfg.provisionErr)
	}
	if cfg.ServerURL != "ws://127.0.0.1:9/ws" {
		t.Fatalf("server_url %q, want the bundle's", cfg.ServerURL)
	}
	idPath := cfg.identityFile()
	s, err := terminalstore.OpenFiles(cfg.StateFile, idPath)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := s.Certificate()
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if info, err := devcert.Describe(cert); err != nil || info.DeviceID != b.recs[0].DeviceID {
		t.Fatalf("device %+v (%v), want %s", info, err, b.recs[0].DeviceID)
	}
	before := map[string]time.Time{}
	for _, p := range []string{idPath, terminalstore.BundlePath(idPath)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		before[p] = fi.ModTime()
	}
	time.Sleep(20 * time.Millisecond) // mtimes would show a rewrite
	cfg, err = loadConfigFor(configUse{name: "terminald", provision: true}, []string{"-config", conf}, io.Discard)
	if err != nil || cfg.provisionErr != nil {
		t.Fatalf("second start: %v, %v", err, cfg.provisionErr)
	}
	for p, m := range before {
		if fi, _ := os.Stat(p); !fi.ModTime().Equal(m) {
			t.Errorf("%s rewritten at the second start", p)
		}
	}
	// The technician's command reads the same partition.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"identity", "import", "-config", conf, "-partition", "provisioning"}, &out, io.Discard); err != nil {
		t.Fatalf("identity import -partition: %v", err)
	}
}

// TestPartitionBundleRefused: no bundle on the partition, a tampered one, a
// foreign one, another unit's (the identity held is not its), no partition,
// two partitions of the name: the daemon shows needs-repair, logs the
// reason, and never runs the call loop (it never reaches the server).
func TestPartitionBundleRefused(t *testing.T) {
	// The daemon runs in-process: the bundle's time zone must not become
	// time.Local under the test's feet (applyTimeZone leaves a set $TZ).
	t.Setenv("TZ", "UTC")
	b := makeBatch(t)
	good, err := os.ReadFile(b.bundlePath(0))
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(b.bundlePath(1))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(good)
	tampered[len(tampered)/2] ^= 1
	foreign, err := programme.Init(filepath.Join(t.TempDir(), "other"), b.prog.Settings, []byte("another passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		part    []byte
		extra   []string
		key     string
		before  []byte // imported from a first partition before this one
		want    error
		wantMsg string
	}{
		{name: "empty", part: nil, key: b.keyFile, want: bundle.ErrEmpty},
		{name: "tampered", part: tampered, key: b.keyFile, want: bundle.ErrTampered},
		{name: "foreign", part: good, key: foreign.PublicKeyFile(), want: bundle.ErrForeign},
		{name: "another unit's", part: other, key: b.keyFile, before: good, want: terminalstore.ErrIdentityExists},
		{name: "tampered after import", part: tampered, key: b.keyFile, before: good, want: bundle.ErrTampered},
		{name: "two partitions", part: good, extra: []string{"provisioning"}, key: b.keyFile, wantMsg: "2 partitions named"},
		{name: "garbage", part: []byte("not a bundle at all, but not zero either: a wrong image"), key: b.keyFile, want: bundle.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := unitConfig(t, dir, tc.key)
			if tc.before != nil {
				fakeBlock(t, tc.before)
				if cfg, _ := loadConfigFor(configUse{name: "terminald", provision: true}, []string{"-config", conf}, io.Discard); cfg.provisionErr != nil {
					t.Fatalf("first import: %v", cfg.provisionErr)
				}
			}
			fakeBlock(t, tc.part, tc.extra...)
			cfg, err := loadConfigFor(configUse{name: "terminald", provision: true}, []string{"-config", conf}, io.Discard)
			if err != nil {
				t.Fatalf("config with a refused bundle must load (the daemon shows needs-repair): %v", err)
			}
			if cfg.provisionErr == nil || (tc.want != nil && !errors.Is(cfg.provisionErr, tc.want)) || !strings.Contains(cfg.provisionErr.Error(), tc.wantMsg) {
				t.Fatalf("provisionErr %v, want %v %q", cfg.provisionErr, tc.want, tc.wantMsg)
			}
			if tc.before == nil {
				if _, err := os.Stat(cfg.identityFile()); !errors.Is(err, os.ErrNotExist) {
					t.Fatal("a refused bundle wrote an identity")
				}
			}
			// The daemon: needs-repair, the reason in its log, no call loop.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out, logs := newLines(), newLines()
			done := make(chan error, 1)
			go func() { done <- run(ctx, []string{"-config", conf, "-panel", "127.0.0.1:0"}, out.w, logs.w) }()
			logs.wait(t, "provisioning bundle refused")
			out.wait(t, "needs repair")
			if tc.want != nil {
				logs.wait(t, tc.want.Error())
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("terminald after Ctrl-C: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("terminald did not stop")
			}
			if strings.Contains(out.text(), "terminal ") {
				t.Fatalf("the terminal started:\n%s", out.text())
			}
		})
	}
}

func (l *lines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}
