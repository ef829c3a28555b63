package rendezvous_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// rawCA is a program CA built with crypto/x509 directly, so a test can have
// it sign what devcert.CA never would (a CN that is not the key's ID): the
// server must refuse such a certificate even from a CA it trusts.
type rawCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newRawCA(t *testing.T) rawCA {
	t.Helper()
	key := try(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).must(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "raw program CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der := try(x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)).must(t)
	return rawCA{cert: try(x509.ParseCertificate(der)).must(t), key: key}
}

func (ca rawCA) file(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "raw-ca.pem")
	check(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644))
	return path
}

// sign issues a device-shaped certificate for pub with the given CN; parent
// nil makes it self-signed by signer.
func sign(t *testing.T, pub *ecdsa.PublicKey, cn string, parent *x509.Certificate, signer *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
	}
	if parent == nil {
		parent = tmpl
	}
	return try(x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)).must(t)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestDeviceCertificateAttacks: every way of logging in as a terminal
// without a certificate the program CA issued for that very key fails. Each
// attempt gets auth_failed and close 4001, the welcomes are counted (zero),
// and the server stores nothing for a device it never saw, nor changes the
// pinned key of one it knows.
func TestDeviceCertificateAttacks(t *testing.T) {
	raw := newRawCA(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.DeviceCAFiles = append(c.DeviceCAFiles, raw.file(t))
	})
	ctx := testCtx(t)

	// The victim is a real unit, registered by its first login.
	victim, victimID := rt.NewKey()
	victimCert := srv.IssueDevice(t, victim)
	try(rt.DialTerminalCert(ctx, srv.WSURL, victim, victimCert)).must(t).Close()
	pinned := try(srv.Registry().Device(victimID)).must(t).PublicKey

	attacker, attackerID := rt.NewKey()
	stranger := try(devcert.NewCA("another program")).must(t)
	expired := try(rt.TestCA().IssueFor(&attacker.PublicKey, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))).must(t)
	good := srv.IssueDevice(t, attacker)

	tests := []struct {
		name string
		// hello edits the attacker's correctly signed hello (for the nonce).
		hello func(nonce string) protocol.Message
		// newID is a device ID that must not be stored afterwards.
		newID string
	}{
		{"known device ID with the attacker's key and certificate", func(nonce string) protocol.Message {
			m := try(protocol.SignLogin(attacker, good, nonce, "x")).must(t)
			m.DeviceID = victimID
			return m
		}, ""},
		{"known device's public certificate, attacker's key", func(nonce string) protocol.Message {
			return try(protocol.SignLogin(attacker, victimCert, nonce, "x")).must(t)
		}, attackerID},
		{"known device's certificate, ID and key, attacker's signature", func(nonce string) protocol.Message {
			m := try(protocol.SignLogin(attacker, victimCert, nonce, "x")).must(t)
			v := try(protocol.SignLogin(victim, victimCert, nonce, "x")).must(t)
			m.DeviceID, m.PublicKey = v.DeviceID, v.PublicKey
			return m
		}, ""},
		{"no certificate", func(nonce string) protocol.Message {
			return try(protocol.SignLogin(attacker, nil, nonce, "x")).must(t)
		}, attackerID},
		{"self-signed certificate with the right CN", func(nonce string) protocol.Message {
			return try(protocol.SignLogin(attacker, sign(t, &attacker.PublicKey, attackerID, nil, attacker), nonce, "x")).must(t)
		}, attackerID},
		{"certificate from another program's CA", func(nonce string) protocol.Message {
			return try(protocol.SignLogin(attacker, try(stranger.Issue(&attacker.PublicKey)).must(t), nonce, "x")).must(t)
		}, attackerID},
		{"expired certificate", func(nonce string) protocol.Message {
			return try(protocol.SignLogin(attacker, expired, nonce, "x")).must(t)
		}, attackerID},
		{"trusted CA, victim's CN on the attacker's key", func(nonce string) protocol.Message {
			m := try(protocol.SignLogin(attacker, sign(t, &attacker.PublicKey, victimID, raw.cert, raw.key), nonce, "x")).must(t)
			m.DeviceID = victimID
			return m
		}, ""},
		{"trusted CA, right CN, another key", func(nonce string) protocol.Message {
			return try(protocol.SignLogin(attacker, sign(t, &victim.PublicKey, attackerID, raw.cert, raw.key), nonce, "x")).must(t)
		}, attackerID},
		{"garbage DER", func(nonce string) protocol.Message {
			m := try(protocol.SignLogin(attacker, nil, nonce, "x")).must(t)
			m.Certificate = b64([]byte("this is not a certificate"))
			return m
		}, attackerID},
		{"truncated DER", func(nonce string) protocol.Message {
			return try(protocol.SignLogin(attacker, good[:len(good)-20], nonce, "x")).must(t)
		}, attackerID},
		{"certificate not base64url", func(nonce string) protocol.Message {
			m := try(protocol.SignLogin(attacker, good, nonce, "x")).must(t)
			m.Certificate = strings.ReplaceAll(m.Certificate, "A", "+") + "+"
			return m
		}, attackerID},
		{"certificate over 2048 characters", func(nonce string) protocol.Message {
			m := try(protocol.SignLogin(attacker, nil, nonce, "x")).must(t)
			m.Certificate = strings.Repeat("MII", 700)
			return m
		}, attackerID},
	}
	welcomed := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := try(rt.Dial(ctx, srv.WSURL)).must(t)
			defer c.Conn.CloseNow()
			// json.Marshal, not protocol.Encode: the client must not be
			// able to stop a bad hello before the server sees it.
			check(t, c.SendRaw(ctx, try(json.Marshal(tc.hello(c.Challenge.Nonce))).must(t)))
			m, err := c.Recv(ctx)
			check(t, err)
			if m.Type == protocol.TypeWelcome {
				welcomed++
				t.Fatalf("server welcomed the attacker: %+v", m)
			}
			if m.Type != protocol.TypeError || m.Code != protocol.ErrCodeAuthFailed {
				t.Fatalf("got %s %s, want auth_failed", m.Type, m.Code)
			}
			t.Logf("auth_failed: %s", m.Text)
			if code := try(c.WaitClosed(ctx)).must(t); code != rendezvous.CloseAuthFailed {
				t.Fatalf("close status = %v, want %v", code, rendezvous.CloseAuthFailed)
			}
			if tc.newID != "" {
				if _, err := srv.Registry().Device(tc.newID); !errors.Is(err, rendezvous.ErrNotFound) {
					t.Fatalf("store has device %s after a refused login (err %v)", tc.newID, err)
				}
			}
			if d := try(srv.Registry().Device(victimID)).must(t); string(d.PublicKey) != string(pinned) {
				t.Fatal("the victim's pinned key changed")
			}
		})
	}
	if welcomed != 0 {
		t.Fatalf("%d of %d attacks logged in", welcomed, len(tests))
	}
	t.Logf("%d attacks, 0 logged in", len(tests))
	// The refusals changed nothing for the real unit.
	try(rt.DialTerminalCert(ctx, srv.WSURL, victim, victimCert)).must(t).Close()
}

// TestServerNeedsProgramCA: no CA configured, or one that cannot be read,
// and the server does not start.
func TestServerNeedsProgramCA(t *testing.T) {
	dir := t.TempDir()
	notCA := filepath.Join(dir, "device.pem")
	key, _ := rt.NewKey()
	check(t, os.WriteFile(notCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rt.IssueDevice(t, key)}), 0o644))
	tests := []struct {
		name  string
		files []string
		want  string
	}{
		{"none", nil, "device_ca_files is empty"},
		{"missing file", []string{filepath.Join(dir, "nope.pem")}, "nope.pem"},
		{"a device certificate, not a CA", []string{notCA}, "not a CA"},
	}
	for _, tc := range tests {
		cfg := rt.TestConfig(t)
		cfg.DeviceCAFiles = tc.files
		srv, err := natsreg.NewRendezvous(cfg, nil)
		if err == nil {
			srv.Close()
			t.Errorf("%s: server started", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}
