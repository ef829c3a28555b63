package certreload

import (
	"crypto/tls"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous/certreload/certtest"
)

func TestNewRefusesBadPairs(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t)
	a := ca.Issue(t, dir, "a", 10, "127.0.0.1")
	b := ca.Issue(t, dir, "b", 11, "127.0.0.1")
	garbage := dir + "/garbage.pem"
	os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n"), 0o600)
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"missing cert", dir + "/none.pem", a.KeyFile, "none.pem"},
		{"key of another certificate", a.CertFile, b.KeyFile, "private key does not match"},
		{"truncated PEM", garbage, a.KeyFile, "garbage.pem"},
	} {
		_, err := New(tc.cert, tc.key, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

// TestReload: a renewed pair is served after the next check; a broken
// replacement is not, and the one in use stays until a good one comes.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t)
	ca.Issue(t, dir, "server", 1, "127.0.0.1")
	r, err := New(dir+"/server.pem", dir+"/server-key.pem", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	r.now = func() time.Time { return clock }
	serial := func() int64 {
		t.Helper()
		c, err := r.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.Int64()
	}
	bumps := 0
	touch := func() {
		// Files rewritten within the filesystem's mtime granularity could
		// look unchanged; move their times on explicitly.
		bumps++
		later := time.Now().Add(time.Duration(bumps) * time.Minute)
		os.Chtimes(dir+"/server.pem", later, later)
		os.Chtimes(dir+"/server-key.pem", later, later)
	}

	steps := []struct {
		name    string
		change  func()
		advance time.Duration
		want    int64
	}{
		{"unchanged", func() {}, 2 * CheckEvery, 1},
		{"renewed, before the next check", func() { ca.Issue(t, dir, "server", 2, "127.0.0.1"); touch() }, 0, 1},
		{"renewed, after the next check", func() {}, CheckEvery, 2},
		{"half-written replacement", func() { os.WriteFile(dir+"/server.pem", []byte("-----BEGIN"), 0o600); touch() }, CheckEvery, 2},
		{"good again", func() { ca.Issue(t, dir, "server", 3, "127.0.0.1"); touch() }, CheckEvery, 3},
	}
	for _, s := range steps {
		s.change()
		clock = clock.Add(s.advance)
		if got := serial(); got != s.want {
			t.Fatalf("%s: serving serial %d, want %d", s.name, got, s.want)
		}
	}
	if r.Leaf().SerialNumber.Int64() != 3 {
		t.Errorf("Leaf serial %d, want 3", r.Leaf().SerialNumber.Int64())
	}
}
