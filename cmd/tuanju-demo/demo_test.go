package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/logbuf"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

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
// processes start, the printed pairing link pairs a parent (here a Go
// client, pressing the panel's button as a person would), the parent sees
// the terminal online, Ctrl-C stops everything, and a second run keeps the
// pairing and prints no pairing link.
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

	var cred rendezvoustest.Credentials
	var secret string
	runDemo(t, args, func(ctx context.Context, out, ws, panel string) {
		m := pairingLink.FindString(out)
		if m == "" {
			t.Fatalf("no pairing link in:\n%s", out)
		}
		_, secret, _ = strings.Cut(m, "s=")
		var err error
		cred, err = rendezvoustest.PairLink(ctx, ws, m, func(ctx context.Context) error { return pressWhenPairing(ctx, panel) })
		if err != nil {
			t.Fatalf("pairing through the printed link: %v", err)
		}
		// The parent has its credentials when the server says paired; the
		// terminal stores the pairing a moment later. Stop only once it has,
		// as a person would after the panel shows it.
		if _, err := waitTerminal(ctx, strings.TrimSuffix(panel, "/"), func(s terminal.Status) bool { return s.Paired }); err != nil {
			t.Fatalf("the terminal never stored the pairing: %v", err)
		}
		checkOnline(t, ctx, ws, cred)
	})
	// The link came from the panel (the simulated label); the processes'
	// logs must not hold its secret.
	if logs, err := os.ReadFile(filepath.Join(data, "demo.log")); err != nil || len(secret) < 20 || bytes.Contains(logs, []byte(secret)) {
		t.Errorf("demo.log (%d bytes, %v) holds the pairing secret %q, or the check cannot run", len(logs), err, secret)
	}
	caPEM, err := os.ReadFile(filepath.Join(data, "program-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	runDemo(t, args, func(ctx context.Context, out, ws, _ string) {
		if pairingLink.MatchString(out) {
			t.Errorf("second run prints a pairing link though the terminal is paired:\n%s", out)
		}
		checkOnline(t, ctx, ws, cred) // the pairing survived the restart
	})
	checkDemoIdentity(t, data, caPEM, cred.DeviceID)
}

var (
	pairingLink = regexp.MustCompile(`http://127\.0\.0\.1:\d+/pair#\S+`)
	serverURL   = regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/`)
)

// checkOnline logs in with cred and wants the terminal paired and online.
func checkOnline(t *testing.T, ctx context.Context, ws string, cred rendezvoustest.Credentials) {
	t.Helper()
	var w protocol.Message
	for range 100 { // the terminal logs in afresh after pairing
		conn, err := rendezvoustest.DialPaired(ctx, ws, cred)
		if err != nil {
			t.Fatalf("the paired parent cannot log in: %v", err)
		}
		w = conn.Welcome
		conn.Close()
		if w.PeerOnline != nil && *w.PeerOnline {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if w.DeviceID != cred.DeviceID || w.Paired == nil || !*w.Paired || w.PeerOnline == nil || !*w.PeerOnline {
		t.Errorf("parent welcome = %+v; want paired to device %s, which is online", w, cred.DeviceID)
	}
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

// pressWhenPairing waits for the panel's "pairing" lights and presses.
func pressWhenPairing(ctx context.Context, panel string) error {
	for {
		var s struct{ Pattern string }
		if err := getJSON(ctx, panel+"api/state", &s); err == nil && s.Pattern == "pairing" {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, panel+"api/button/press", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("press: %s", resp.Status)
	}
	return nil
}

// runDemo runs the demo until it is up, hands its output, signalling URL and
// panel URL to check, then stops it as Ctrl-C would.
func runDemo(t *testing.T, args []string, check func(ctx context.Context, out, ws, panel string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr logbuf.Buffer
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
	out := stdout.String()
	panel := regexp.MustCompile(`device panel\): (http://\S+)`).FindStringSubmatch(out)
	if panel == nil {
		t.Fatalf("no device panel URL in:\n%s", out)
	}
	if resp, err := http.Get(panel[1] + "api/state"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("device panel not serving: %v", err)
	}
	srv := serverURL.FindStringSubmatch(strings.SplitN(out, "parent's phone", 2)[1])
	if srv == nil {
		t.Fatalf("no server URL in:\n%s", out)
	}
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	check(cctx, out, "ws://"+srv[1]+"/ws", panel[1])
	ccancel()

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
}
