package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/certreload/certtest"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
)

func TestParseLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "r.toml")
	os.WriteFile(file, []byte(`
listen = "127.0.0.1:9000"
data_dir = "/from/file"
ice_transport_policy = "relay"
device_ca_files = ["/from/file.pem"]
[turn]
realm = "file-realm"
`), 0o600)
	opts, err := parse([]string{"-config", file, "-data", "/from/flag", "-turn-allow-peers", "", "-device-ca", "a.pem, b.pem"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := opts.cfg
	if c.Listen != "127.0.0.1:9000" || c.DataDir != "/from/flag" || c.ICETransportPolicy != "relay" ||
		c.TURN.Realm != "file-realm" || c.TURN.AllowPeers != nil || c.TURN.Listen != "127.0.0.1:3478" ||
		len(c.DeviceCAFiles) != 2 || c.DeviceCAFiles[1] != "b.pem" {
		t.Fatalf("defaults → file → flags gave %+v", c)
	}
}

func TestParseRejects(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknown, []byte("listen = \"127.0.0.1:1\"\n[turn]\npasword = \"x\"\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"-config", unknown}, "turn.pasword"},
		{"bad policy", []string{"-ice-policy", "some"}, "ice_transport_policy"},
		{"loopback peers on public relay", []string{"-turn-public-ip", "203.0.113.9", "-turn-allow-peers", "127.0.0.0/8"}, "loopback"},
		{"bad log format", []string{"-log-format", "xml"}, "log-format"},
		{"stray argument", []string{"serve"}, "unexpected"},
		{"no program CA", nil, "device_ca_files is empty"},
	}
	for _, tc := range tests {
		_, err := parse(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

// TestRun starts the binary's run on loopback, checks it serves (plain http,
// and https from certificate files), and shuts it down by cancelling the
// context (what Ctrl-C does).
func TestRun(t *testing.T) {
	ca := certtest.NewCA(t)
	leaf := ca.Issue(t, t.TempDir(), "server", 7, "127.0.0.1")
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	for _, tc := range []struct {
		name   string
		args   []string
		scheme string
		client *http.Client
	}{
		{"http", nil, "http://", http.DefaultClient},
		{"https", []string{"-tls-cert", leaf.CertFile, "-tls-key", leaf.KeyFile}, "https://", tlsClient},
		{"nats", []string{"-nats-url", "embedded", "-node-name", "a"}, "http://", http.DefaultClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			data := t.TempDir()
			args := append([]string{"-listen", "127.0.0.1:0", "-turn-listen", "127.0.0.1:0", "-data", data, "-log-format", "json", "-device-ca", rendezvoustest.TestCAFile(t)}, tc.args...)
			go func() {
				done <- run(ctx, args, pw, io.Discard)
				pw.Close()
			}()
			line := make(chan string, 1)
			go func() {
				s := bufio.NewScanner(pr)
				for s.Scan() {
					if strings.HasPrefix(s.Text(), "rendezvous listening on ") {
						line <- strings.TrimPrefix(s.Text(), "rendezvous listening on ")
					}
				}
			}()
			var base string
			select {
			case base = <-line:
			case err := <-done:
				t.Fatalf("run ended early: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("run did not print its URL")
			}
			if !strings.HasPrefix(base, tc.scheme) {
				t.Fatalf("listening on %s, want %s", base, tc.scheme)
			}
			resp, err := tc.client.Get(base + "healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("healthz = %d", resp.StatusCode)
			}
			if tc.scheme == "https://" {
				if resp.TLS == nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != leaf.Serial {
					t.Fatalf("served over %+v, want the configured certificate", resp.TLS)
				}
				// Plain http to the TLS port gets nothing of the app.
				plain, err := http.Get("http://" + strings.TrimPrefix(base, "https://") + "healthz")
				if err == nil {
					plain.Body.Close()
					if plain.StatusCode == http.StatusOK {
						t.Fatal("the TLS port answered plain http")
					}
				}
			}
			var device string // a terminal that logged in, to be found in the registry
			if tc.name == "nats" {
				key, id := rendezvoustest.NewKey()
				c, err := rendezvoustest.DialTerminal(ctx, "ws"+strings.TrimPrefix(base, "http")+"ws", key)
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
				device = id
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run after shutdown: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("run did not shut down")
			}
			if device != "" {
				// The registry was the embedded NATS server's, in data/nats,
				// and nothing went to a bbolt file.
				if _, err := os.Stat(filepath.Join(data, rendezvous.RegistryFile)); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("a bbolt registry beside the NATS one: %v", err)
				}
				srv, err := natsreg.StartEmbedded(filepath.Join(data, "nats"), natsreg.Embed{})
				if err != nil {
					t.Fatal(err)
				}
				defer srv.Shutdown()
				reg, err := natsreg.Connect(srv.URL(), natsreg.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer reg.Close()
				if d, err := reg.Device(device); err != nil || d.Version == "" {
					t.Fatalf("the terminal that logged in is %+v in the NATS registry (%v)", d, err)
				}
			}
		})
	}
}

// TestRunRefusesBadTLS: a certificate that does not load stops the server at
// start, saying which file.
func TestRunRefusesBadTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t)
	a := ca.Issue(t, dir, "a", 1, "127.0.0.1")
	b := ca.Issue(t, dir, "b", 2, "127.0.0.1")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"key without certificate", []string{"-tls-key", a.KeyFile}, "set both or neither"},
		{"mismatched key", []string{"-tls-cert", a.CertFile, "-tls-key", b.KeyFile}, "tls_cert_file"},
		{"missing file", []string{"-tls-cert", dir + "/none.pem", "-tls-key", a.KeyFile}, "none.pem"},
	} {
		args := append([]string{"-listen", "127.0.0.1:0", "-turn-listen", "", "-data", t.TempDir(), "-device-ca", rendezvoustest.TestCAFile(t)}, tc.args...)
		err := run(t.Context(), args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: run = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

// The shipped example must stay a valid configuration.
func TestExampleConfigLoads(t *testing.T) {
	opts, err := parse([]string{"-config", "rendezvous.example.toml"}, io.Discard)
	if err != nil {
		t.Fatalf("rendezvous.example.toml: %v", err)
	}
	if opts.cfg.TURN.PublicIP != "203.0.113.10" || opts.cfg.TURN.CredentialTTL != 10*time.Minute || len(opts.cfg.TURN.AllowPeers) != 0 {
		t.Errorf("example decoded as %+v", opts.cfg)
	}
	// It reads X-Forwarded-For from nobody unless the operator lists a proxy.
	if len(opts.cfg.TrustedProxies) != 0 || opts.cfg.TrustForwardedFor != nil {
		t.Errorf("example trusts forwarded headers: trusted_proxies %v, trust_forwarded_for %v", opts.cfg.TrustedProxies, opts.cfg.TrustForwardedFor)
	}
	// The example spells out the default limits, so operators see them.
	if want := rendezvous.DefaultLimits(); opts.cfg.Limits != want {
		t.Errorf("example limits %+v, want the defaults %+v", opts.cfg.Limits, want)
	}
	// Web Push on, with the defaults spelled out; the notifier off until a
	// programme points it at its adapter.
	def := rendezvous.DefaultConfig()
	push := opts.cfg.Push
	push.Subject = ""
	if opts.cfg.Push.Subject == "" || push.MissedTTL != def.Push.MissedTTL || push.Workers != def.Push.Workers || push.RetryMin != def.Push.RetryMin {
		t.Errorf("example push %+v, want a subject and the defaults %+v", opts.cfg.Push, def.Push)
	}
	if opts.cfg.Notifier != def.Notifier {
		t.Errorf("example notifier %+v, want the defaults (off) %+v", opts.cfg.Notifier, def.Notifier)
	}
}

// TestAuditCommand: "rendezvous audit" prints what the server appended, as a
// table and as JSON lines, and an absent log as an empty table.
func TestAuditCommand(t *testing.T) {
	dir := t.TempDir()
	var out strings.Builder
	if err := run(context.Background(), []string{"audit", "-data", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "TIME  EVENT  DEVICE  PARENT" {
		t.Errorf("empty audit printed %q", got)
	}
	log := `{"time":"2026-11-28T18:00:00Z","event":"paired","device_id":"dev1","parent_id":"par1"}
{"time":"2026-11-28T19:00:00Z","event":"factory_reset","device_id":"dev1","parent_id":"par1"}
{"time":"2026-11-28T19:01:00Z","event":"factory_reset","device_id":"dev2"}
`
	if err := os.WriteFile(filepath.Join(dir, "audit.jsonl"), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"audit", "-data", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], "2026-11-28T18:00:00Z  paired") ||
		!strings.Contains(lines[2], "factory_reset  dev1") || !strings.HasSuffix(lines[3], "dev2    -") {
		t.Errorf("audit table:\n%s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"audit", "-data", dir, "-json"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out.String() != log {
		t.Errorf("audit -json:\n%s\nwant\n%s", out.String(), log)
	}
	os.WriteFile(filepath.Join(dir, "audit.jsonl"), []byte("{not json\n"), 0o600)
	if err := run(context.Background(), []string{"audit", "-data", dir}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("corrupt audit log: err = %v, want one naming line 1", err)
	}

	// A cluster's log, read through NATS: the same lines, oldest first.
	natsSrv, err := natsreg.StartEmbedded(t.TempDir(), natsreg.Embed{})
	if err != nil {
		t.Fatal(err)
	}
	defer natsSrv.Shutdown()
	reg, err := natsreg.Connect(natsSrv.URL(), natsreg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, l := range []int{2, 0, 1} { // appended out of order, printed by time
		var e rendezvous.AuditEntry
		if err := json.Unmarshal([]byte(strings.Split(log, "\n")[l]), &e); err != nil {
			t.Fatal(err)
		}
		if err := reg.AppendAudit(e); err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"audit", "-nats-url", natsSrv.URL(), "-json"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out.String() != log {
		t.Errorf("audit -nats-url -json:\n%s\nwant\n%s", out.String(), log)
	}
}

// TestRevokeCommand: `rendezvous revoke` adds units to the deny list named by
// the configuration, lists them with their reasons, takes one off, and
// refuses a mistyped ID without touching the file.
func TestRevokeCommand(t *testing.T) {
	// The two lists it edits: the file, and a NATS cluster's.
	natsSrv, err := natsreg.StartEmbedded(t.TempDir(), natsreg.Embed{})
	if err != nil {
		t.Fatal(err)
	}
	defer natsSrv.Shutdown()
	reg, err := natsreg.Connect(natsSrv.URL(), natsreg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, tc := range []struct {
		name  string
		toml  func(list string) string
		read  func(list string) (map[string]string, error)
		where func(list string) string
	}{
		{"file", func(list string) string { return "revoked_devices_file = " + strconv.Quote(list) }, rendezvous.ReadRevoked,
			func(list string) string { return list }},
		{"nats", func(string) string { return "nats_url = " + strconv.Quote(natsSrv.URL()) }, func(string) (map[string]string, error) { return reg.DenyList() },
			func(string) string { return "the cluster's deny list" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			list := filepath.Join(dir, "revoked.txt")
			conf := filepath.Join(dir, "rendezvous.toml")
			if err := os.WriteFile(conf, []byte(tc.toml(list)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, a := rendezvoustest.NewKey()
			_, b := rendezvoustest.NewKey()
			revoke := func(args ...string) (string, error) {
				var out strings.Builder
				err := run(context.Background(), append([]string{"revoke", "-config", conf}, args...), &out, io.Discard)
				return out.String(), err
			}
			if out, err := revoke("-reason", "stolen", a, b); err != nil || !strings.HasPrefix(out, "revoked 2 units (0 already listed)") {
				t.Fatalf("revoke: %q, %v", out, err)
			}
			if out, err := revoke(a); err != nil || !strings.HasPrefix(out, "revoked 0 units (1 already listed)") {
				t.Fatalf("revoke again: %q, %v", out, err)
			}
			out, err := revoke("-list")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if err != nil || len(lines) != 4 || !strings.Contains(out, a+"  stolen") || !strings.Contains(out, b+"  stolen") || lines[3] != "2 units revoked in "+tc.where(list) {
				t.Fatalf("list: %v\n%s", err, out)
			}
			if out, err := revoke("-undo", a); err != nil || !strings.HasPrefix(out, "took 1 of 1 units off") {
				t.Fatalf("undo: %q, %v", out, err)
			}
			ids, err := tc.read(list)
			if _, stillA := ids[a]; err != nil || stillA || ids[b] != "stolen" || len(ids) != 1 {
				t.Fatalf("list after undo: %v, %v; want only %s", ids, err, b)
			}
			before, _ := os.ReadFile(list)
			if _, err := revoke("abc"); err == nil || !strings.Contains(err.Error(), "not a device ID") {
				t.Fatalf("mistyped ID: %v, want refused", err)
			}
			if after, _ := os.ReadFile(list); string(after) != string(before) {
				t.Fatalf("a refused revoke changed the file:\n%s", after)
			}
			if ids, err := tc.read(list); err != nil || len(ids) != 1 {
				t.Fatalf("a refused revoke changed the list: %v, %v", ids, err)
			}
			if _, err := revoke("-undo", b); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := run(context.Background(), []string{"revoke", "x"}, io.Discard, io.Discard); err == nil {
		t.Fatal("revoke without a list to edit succeeded")
	}
}

// TestForwardedForConfig: the old switch that trusted every client's
// X-Forwarded-For is refused, naming its replacement; trusted_proxies must
// be CIDR prefixes and may not trust everyone.
func TestForwardedForConfig(t *testing.T) {
	for _, tc := range []struct{ name, toml, want string }{
		{"old switch on", "trust_forwarded_for = true", "trusted_proxies"},
		{"old switch off", "trust_forwarded_for = false", "trusted_proxies"},
		{"not a prefix", `trusted_proxies = ["10.0.0.1"]`, "not a CIDR prefix"},
		{"everyone", `trusted_proxies = ["0.0.0.0/0"]`, "every client"},
		{"everyone, IPv6", `trusted_proxies = ["::/0"]`, "every client"},
		{"a proxy (control)", `trusted_proxies = ["127.0.0.1/32", "10.0.0.0/8"]`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rendezvous.toml")
			if err := os.WriteFile(path, []byte(tc.toml+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := parse([]string{"-config", path, "-data", t.TempDir(), "-device-ca", rendezvoustest.TestCAFile(t)}, io.Discard)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("parse = %v, want it accepted", err)
				}
				return
			}
			if !errors.Is(err, rendezvous.ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parse = %v, want ErrBadConfig mentioning %q", err, tc.want)
			}
		})
	}
}
