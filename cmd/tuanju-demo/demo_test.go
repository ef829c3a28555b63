package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/parent"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// syncBuffer is a bytes.Buffer safe for the demo's writer and the test's reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestDemoRunsPairsAndStops is `make demo` as a newcomer meets it: both
// processes start, the terminal is paired, the printed parent link logs in
// as the terminal's parent and sees it online, Ctrl-C stops everything, and
// a second run keeps the pairing.
func TestDemoRunsPairsAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	bin := t.TempDir()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is not on PATH: %v", err)
	}
	build := exec.Command(goTool, "build", "-o", bin+"/", "../rendezvous", "../terminald")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := t.TempDir()
	args := []string{"-bin", bin, "-data", data, "-listen", freePort(t, "tcp"), "-turn", freePort(t, "udp"), "-panel", freePort(t, "tcp")}

	first := runDemo(t, args)
	caPEM, err := os.ReadFile(filepath.Join(data, "program-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	second := runDemo(t, args)
	if first.ParentID != second.ParentID || first.Token != second.Token {
		t.Errorf("second run paired anew (%s → %s); the demo should keep its pairing", first.ParentID, second.ParentID)
	}
	checkDemoIdentity(t, data, caPEM, second.DeviceID)
}

// checkDemoIdentity: the demo made a development CA once (key 0600, named
// as such), kept it across runs, and the terminal that logged in is the one
// it provisioned from that CA.
func checkDemoIdentity(t *testing.T, data string, firstCA []byte, deviceID string) {
	t.Helper()
	ca, err := devcert.LoadCA(filepath.Join(data, "program-ca.pem"), filepath.Join(data, "program-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Subject.CommonName != devcert.DevelopmentCAName {
		t.Errorf("demo CA is named %q, want %q", ca.Cert.Subject.CommonName, devcert.DevelopmentCAName)
	}
	if !bytes.Equal(ca.CertPEM(), firstCA) {
		t.Error("the second run made a new program CA")
	}
	if fi, err := os.Stat(filepath.Join(data, "program-ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	b, err := os.ReadFile(filepath.Join(data, "terminal-identity.pem"))
	if err != nil {
		t.Fatal(err)
	}
	_, cert, err := devcert.ParseBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := devcert.Verify(cert, []*x509.Certificate{ca.Cert}, time.Now())
	if err != nil || id != deviceID {
		t.Errorf("the demo's bundle certifies %s (%v); the parent is paired with %s", id, err, deviceID)
	}
}

var parentLink = regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/#(\S+)`)

func runDemo(t *testing.T, args []string) parent.Credentials {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &stdout, &stderr) }()

	deadline := time.After(60 * time.Second)
	for !strings.Contains(stdout.String(), "Press Ctrl-C") {
		select {
		case err := <-done:
			t.Fatalf("demo exited early: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("demo did not come up\nstdout:\n%s", stdout.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	m := parentLink.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no parent link in:\n%s", stdout.String())
	}
	frag, err := url.ParseQuery(m[2])
	if err != nil {
		t.Fatal(err)
	}
	cred := parent.Credentials{ParentID: frag.Get("parent"), Token: frag.Get("token"), DeviceID: frag.Get("device")}

	lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
	defer lcancel()
	conn, err := parent.Dial(lctx, "ws://"+m[1]+"/ws", cred)
	if err != nil {
		t.Fatalf("the printed parent link does not log in: %v", err)
	}
	w := conn.Welcome
	conn.Close()
	if w.DeviceID != cred.DeviceID || w.Paired == nil || !*w.Paired || w.PeerOnline == nil || !*w.PeerOnline {
		t.Errorf("parent welcome = %+v; want paired to device %s, which is online", w, cred.DeviceID)
	}
	panel := regexp.MustCompile(`device panel\): (http://\S+)`).FindStringSubmatch(stdout.String())
	if panel == nil {
		t.Fatalf("no device panel URL in:\n%s", stdout.String())
	}
	if resp, err := http.Get(panel[1] + "api/state"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("device panel not serving: %v", err)
	}

	cancel() // Ctrl-C
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop after Ctrl-C")
	}
	if _, err := http.Get(panel[1] + "api/state"); err == nil {
		t.Error("the terminal's panel still answers after the demo stopped")
	}
	return cred
}
