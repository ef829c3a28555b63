package programme_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/devcert"
	"github.com/tuanju/tuanju/provisioning/programme"
	"github.com/tuanju/tuanju/provisioning/signing"
)

func init() { programme.ScryptLogN = 10 } // fast keys for tests

var pass = []byte("correct horse battery")

func settings() programme.Settings {
	return programme.Settings{Name: "Hebei pilot", ServerURL: "wss://t.example.org/ws", PublicURL: "https://t.example.org",
		TimeZone: "Asia/Shanghai", Language: "zh-CN"}
}

// TestInitUnlockRotate: init makes the files the server and the terminals
// need, no key is on disk in the clear, the passphrase opens the keys and
// a wrong one is named as such, and rotation makes a new CA that issues
// certificates the server (with both CA files) accepts, while the old
// generation's units still verify.
func TestInitUnlockRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prog")
	if _, err := programme.Init(path, settings(), pass); err != nil {
		t.Fatal(err)
	}
	d, err := programme.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// No private key in the clear anywhere in the directory.
	filepath.WalkDir(path, func(p string, e os.DirEntry, err error) error {
		if e.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a private key in the clear", p)
		}
		if strings.HasSuffix(p, ".age") {
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
			}
		}
		return nil
	})
	if _, err := d.Unlock([]byte("wrong passphrase!!")); !errors.Is(err, programme.ErrPassphrase) {
		t.Fatalf("wrong passphrase: %v, want ErrPassphrase", err)
	}
	k1, err := d.Unlock(pass)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(d.PublicKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := signing.ParsePublic(pubPEM); err != nil || signing.IDOf(keys[0]) != k1.Signing.ID() {
		t.Fatalf("terminal key file is not the signing key: %v", err)
	}
	if gen, err := d.RotateCA([]byte("wrong passphrase!!")); !errors.Is(err, programme.ErrPassphrase) || gen != 0 {
		t.Fatalf("rotate with a wrong passphrase: %d, %v", gen, err)
	}
	gen, err := d.RotateCA(pass)
	if err != nil || gen != 2 {
		t.Fatalf("rotate: %d, %v", gen, err)
	}
	k2, err := d.Unlock(pass)
	if err != nil || k2.Generation != 2 || k2.Signing.ID() != k1.Signing.ID() {
		t.Fatalf("after rotate: %+v, %v", k2, err)
	}
	files, err := d.ServerCAFiles()
	if err != nil || len(files) != 2 {
		t.Fatalf("server CA files %v, %v", files, err)
	}
	var rootCerts []*x509.Certificate
	for _, f := range files {
		c, err := devcert.LoadCACert(f)
		if err != nil {
			t.Fatal(err)
		}
		rootCerts = append(rootCerts, c)
	}
	for _, ca := range []*devcert.CA{k1.CA, k2.CA} {
		key, _ := devcert.NewDeviceKey()
		der, err := ca.Issue(&key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := devcert.Verify(der, rootCerts, time.Now()); err != nil {
			t.Fatalf("certificate from %s: %v", ca.Cert.Subject.CommonName, err)
		}
	}
	if _, err := programme.Init(path, settings(), pass); !errors.Is(err, programme.ErrExists) {
		t.Fatalf("init over a programme: %v, want ErrExists", err)
	}
}

// TestInitRefuses: bad settings (a Wi-Fi passphrase with a newline among
// them, named by its place and SSID; an APN user that would add a pppd
// option) and a short passphrase make nothing.
func TestInitRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prog")
	bad := settings()
	bad.ServerURL = "https://not-a-websocket"
	bad.TimeZone = "Mars/Olympus"
	bad.WiFi = []bundle.WiFi{{SSID: "school", PSK: "password1"}, {SSID: "lab", PSK: "pass\nword"}}
	bad.APN = &bundle.APN{Name: "cmnet", User: "x\nplugin evil.so"}
	_, err := programme.Init(path, bad, pass)
	if !errors.Is(err, programme.ErrBadSettings) || !strings.Contains(err.Error(), "server_url") || !strings.Contains(err.Error(), "time_zone") ||
		!errors.Is(err, bundle.ErrBadWiFi) || !strings.Contains(err.Error(), `wifi[1]: ssid "lab"`) ||
		!errors.Is(err, bundle.ErrBadAPN) || !strings.Contains(err.Error(), `apn "cmnet": user has a character`) {
		t.Fatalf("bad settings: %v", err)
	}
	if _, err := programme.Init(path, settings(), []byte("short")); err == nil {
		t.Fatal("a 5-character passphrase was taken")
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Fatalf("refused init left %d entries", len(entries))
	}
}
