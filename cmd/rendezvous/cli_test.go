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

	"github.com/tuanju/tuanju/internal/boltfile/boltfiletest"
	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestHelp: -h, --help and help print the usage, with every command and
// the server's flags, on stdout, and succeed; so does each command's -h.
func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"-h"}, []string{"usage:", "audit", "revoke", "-listen", "-device-ca"}},
		{[]string{"--help"}, []string{"usage:", "audit", "revoke"}},
		{[]string{"help"}, []string{"usage:", "audit", "revoke"}},
		{[]string{"-listen", "127.0.0.1:0", "-h"}, []string{"usage:", "audit", "revoke"}},
		{[]string{"audit", "-h"}, []string{"usage: rendezvous audit", "-json"}},
		{[]string{"help", "audit"}, []string{"usage: rendezvous audit"}},
		{[]string{"revoke", "--help"}, []string{"usage: rendezvous revoke", "-undo"}},
		{[]string{"migrate", "-h"}, []string{"usage: rendezvous migrate", "-to", "-replicas", "its parent's call log", "Not migrated: the audit log"}},
		{[]string{"-h"}, []string{"migrate"}},
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

// TestUnknownCommand: a mistyped command is named, with a suggestion, and
// the usage; it does not start a server.
func TestUnknownCommand(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"adit", `unknown command "adit" (did you mean "audit"?)`},
		{"revok", `unknown command "revok" (did you mean "revoke"?)`},
		{"serve", `unknown command "serve"`},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), []string{tc.arg}, &bytes.Buffer{}, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.arg, err, tc.want)
		}
		if !strings.Contains(stderr.String(), "revoke") {
			t.Errorf("%s: no usage on stderr:\n%s", tc.arg, stderr.String())
		}
	}
}

// TestErrorNamedOnce: what main prints names the program once, whether the
// error came prefixed by the package (rendezvous: config: ...) or not
// (a flag, the listen address). It printed "rendezvous: rendezvous: ...".
func TestErrorNamedOnce(t *testing.T) {
	ca := rendezvoustest.TestCAFile(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"package error", []string{"-ice-policy", "some", "-device-ca", ca}, "rendezvous: config: ice_transport_policy"},
		{"flag error", []string{"-log-format", "xml"}, `rendezvous: -log-format "xml"`},
		{"command error", []string{"audit", "stray"}, "rendezvous: audit: unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, &bytes.Buffer{}, &bytes.Buffer{})
			var stderr bytes.Buffer
			if code := cli.Exit(&stderr, "rendezvous", err); code != 1 {
				t.Fatalf("exit code %d for %v, want 1", code, err)
			}
			got := stderr.String()
			if !strings.HasPrefix(got, tc.want) || strings.Count(got, "rendezvous:") != 1 {
				t.Errorf("printed %q, want it to start %q and name the program once", got, tc.want)
			}
		})
	}
}

// TestFlagsOverrideFileOnlyWhenGiven: every bound flag beats the file when
// given and leaves the file alone when not; a list flag given empty clears
// the file's list.
func TestFlagsOverrideFileOnlyWhenGiven(t *testing.T) {
	dir := t.TempDir()
	ca := rendezvoustest.TestCAFile(t)
	file := filepath.Join(dir, "r.toml")
	if err := os.WriteFile(file, []byte(`
listen = "127.0.0.1:9001"
data_dir = "/file/data"
public_url = "https://file.example"
allowed_origins = ["file.example"]
device_ca_files = ["`+ca+`"]
ice_transport_policy = "all"
[turn]
listen = "127.0.0.1:9002"
tcp_listen = "127.0.0.1:9003"
public_ip = "127.0.0.1"
realm = "file-realm"
allow_peers = ["127.0.0.0/8"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	type cfg = rendezvous.Config
	list := func(s []string) string { return strings.Join(s, ",") }
	tests := []struct {
		flag, value, file string
		get               func(cfg) string
	}{
		{"listen", "127.0.0.1:9100", "127.0.0.1:9001", func(c cfg) string { return c.Listen }},
		{"data", "/flag/data", "/file/data", func(c cfg) string { return c.DataDir }},
		{"public-url", "https://flag.example", "https://file.example", func(c cfg) string { return c.PublicURL }},
		{"allowed-origins", "a.example,b.example", "file.example", func(c cfg) string { return list(c.AllowedOrigins) }},
		{"allowed-origins", "", "file.example", func(c cfg) string { return list(c.AllowedOrigins) }},
		{"turn-listen", "127.0.0.1:9102", "127.0.0.1:9002", func(c cfg) string { return c.TURN.Listen }},
		{"turn-tcp-listen", "127.0.0.1:9103", "127.0.0.1:9003", func(c cfg) string { return c.TURN.TCPListen }},
		{"turn-public-ip", "127.0.0.2", "127.0.0.1", func(c cfg) string { return c.TURN.PublicIP }},
		{"turn-realm", "flag-realm", "file-realm", func(c cfg) string { return c.TURN.Realm }},
		{"turn-allow-peers", "127.0.0.1/32", "127.0.0.0/8", func(c cfg) string { return list(c.TURN.AllowPeers) }},
		{"turn-allow-peers", "", "127.0.0.0/8", func(c cfg) string { return list(c.TURN.AllowPeers) }},
		{"ice-policy", "relay", "all", func(c cfg) string { return c.ICETransportPolicy }},
		{"device-ca", ca + "," + ca, ca, func(c cfg) string { return list(c.DeviceCAFiles) }},
	}
	for _, tt := range tests {
		t.Run(tt.flag+"="+tt.value, func(t *testing.T) {
			opts, err := parse([]string{"-config", file}, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(opts.cfg); got != tt.file {
				t.Errorf("without -%s: %q, want the file's %q", tt.flag, got, tt.file)
			}
			opts, err = parse([]string{"-config", file, "-" + tt.flag + "=" + tt.value}, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tt.get(opts.cfg), list(cli.SplitList(tt.value)); got != want {
				t.Errorf("-%s=%q: %q, want %q", tt.flag, tt.value, got, want)
			}
		})
	}
	// The TLS flags, which go together, over a file without them.
	tls := t.TempDir()
	opts, err := parse([]string{"-config", file, "-tls-cert", tls + "/c.pem", "-tls-key", tls + "/k.pem", "-turn-tls-listen", "127.0.0.1:9104"}, &bytes.Buffer{})
	if err != nil || opts.cfg.TLSCertFile != tls+"/c.pem" || opts.cfg.TLSKeyFile != tls+"/k.pem" || opts.cfg.TURN.TLSListen != "127.0.0.1:9104" {
		t.Errorf("-tls-cert, -tls-key, -turn-tls-listen: %+v, %v", opts.cfg, err)
	}
}

// TestDamagedRegistry: the server refuses to start on each kind of damaged
// registry with the way out in its error, never a panic, and `rendezvous
// check` says DAMAGED and exits non-zero; on a sound one (the control)
// check passes.
func TestDamagedRegistry(t *testing.T) {
	kinds := append([]boltfiletest.Kind{{Name: "undamaged (control)", Damage: func(testing.TB, string) {}}}, boltfiletest.Kinds()...)
	for _, k := range kinds {
		t.Run(k.Name, func(t *testing.T) {
			dir := t.TempDir()
			fillRegistry(t, filepath.Join(dir, rendezvous.RegistryFile))
			k.Damage(t, filepath.Join(dir, rendezvous.RegistryFile))
			var out bytes.Buffer
			err := run(context.Background(), []string{"check", "-data", dir}, &out, io.Discard)
			if k.Name == "undamaged (control)" {
				if err != nil || !strings.Contains(out.String(), "ok") {
					t.Errorf("check of a sound registry: %v\n%s", err, out.String())
				}
				return
			}
			if !errors.Is(err, errCheckFailed) || !strings.Contains(out.String(), "DAMAGED") {
				t.Errorf("check = %v\n%s; want DAMAGED and a failure", err, out.String())
			}
			ctx, cancel := context.WithTimeout(context.Background(), rendezvoustest.Timeout)
			defer cancel()
			err = run(ctx, []string{"-listen", "127.0.0.1:0", "-turn-listen", "", "-data", dir, "-device-ca", rendezvoustest.TestCAFile(t)}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "will not start") || !strings.Contains(err.Error(), "rendezvous restore") {
				t.Errorf("serve on a damaged registry = %v, want a refusal naming the way out", err)
			}
		})
	}
}

// fillRegistry makes a registry with enough pairings for data pages.
func fillRegistry(t *testing.T, path string) {
	t.Helper()
	st, err := rendezvous.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	for i := range 40 {
		dev, parent := protocol.NewID(), protocol.NewID()
		if _, err := st.RegisterDevice(dev, []byte(fmt.Sprintf("key-%d", i)), "", now); err != nil {
			t.Fatal(err)
		}
		if err := st.CreatePairing(dev, parent, make([]byte, 32), "", now); err != nil {
			t.Fatal(err)
		}
	}
}
