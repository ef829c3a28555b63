package devcert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

func mustCA(t testing.TB, name string) *CA {
	t.Helper()
	ca, err := NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := NewDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustIssue(t testing.TB, ca *CA, pub *ecdsa.PublicKey) []byte {
	t.Helper()
	der, err := ca.Issue(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func spki(t testing.TB, pub *ecdsa.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestIssueVerify: an issued certificate verifies, names the key's device
// ID, and has the documented shape.
func TestIssueVerify(t *testing.T) {
	ca := mustCA(t, "Test program")
	key := mustKey(t)
	der := mustIssue(t, ca, &key.PublicKey)
	id, pub, err := Verify(der, []*x509.Certificate{ca.Cert}, time.Now())
	if err != nil {
		t.Fatalf("Verify of a fresh certificate: %v", err)
	}
	if want := protocol.DeviceID(spki(t, &key.PublicKey)); id != want {
		t.Errorf("device ID = %s, want %s", id, want)
	}
	if !pub.Equal(&key.PublicKey) {
		t.Error("Verify returned another key")
	}
	if err := Match(id, pub, id, spki(t, &key.PublicKey)); err != nil {
		t.Errorf("Match of the certificate's own key and ID: %v", err)
	}
	cert, _ := x509.ParseCertificate(der)
	if cert.KeyUsage != x509.KeyUsageDigitalSignature || cert.IsCA {
		t.Errorf("key usage %v, IsCA %v: want digitalSignature only, not a CA", cert.KeyUsage, cert.IsCA)
	}
	if life := cert.NotAfter.Sub(cert.NotBefore); life < DeviceValidity {
		t.Errorf("validity %v, want at least %v", life, DeviceValidity)
	}
	if cert.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %x is not random-sized", cert.SerialNumber)
	}
	if len(der) > MaxCertBytes || len(der) < 300 {
		t.Errorf("certificate is %d bytes, want 300..%d", len(der), MaxCertBytes)
	}
	// A second certificate for the same key has another serial.
	der2 := mustIssue(t, ca, &key.PublicKey)
	cert2, _ := x509.ParseCertificate(der2)
	if cert.SerialNumber.Cmp(cert2.SerialNumber) == 0 {
		t.Error("two certificates share a serial")
	}
	// One of several program CAs is enough (key rollover).
	other := mustCA(t, "Other program")
	if _, _, err := Verify(der, []*x509.Certificate{other.Cert, ca.Cert}, time.Now()); err != nil {
		t.Errorf("Verify with the issuing CA second in the list: %v", err)
	}
}

// selfSigned makes a device-shaped certificate signed by its own key: valid
// in every field except who signed it.
func selfSigned(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	id, _ := DeviceID(&key.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: id},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// signedWith signs an arbitrary template with the CA's key (a CA that made
// a mistake, or an attacker who got a signature on odd fields).
func signedWith(t testing.TB, ca *CA, pub *ecdsa.PublicKey, edit func(*x509.Certificate)) []byte {
	t.Helper()
	id, _ := DeviceID(pub)
	tmpl, err := deviceTemplate(id, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestVerifyRejects: every certificate that is not a valid device
// certificate from the program CA is refused with its own sentinel.
func TestVerifyRejects(t *testing.T) {
	ca := mustCA(t, "Test program")
	roots := []*x509.Certificate{ca.Cert}
	key := mustKey(t)
	good := mustIssue(t, ca, &key.PublicKey)
	now := time.Now()
	rsaLike := mustCA(t, "Stranger")
	expired, err := ca.IssueFor(&key.PublicKey, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	future, err := ca.IssueFor(&key.PublicKey, now.Add(24*time.Hour), now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	other := mustKey(t)
	otherID, _ := DeviceID(&other.PublicKey)
	tests := []struct {
		name  string
		der   []byte
		roots []*x509.Certificate
		now   time.Time
		want  error
	}{
		{"empty", nil, roots, now, ErrMalformed},
		{"garbage", []byte("not a certificate at all"), roots, now, ErrMalformed},
		{"truncated", good[:len(good)/2], roots, now, ErrMalformed},
		{"one byte short", good[:len(good)-1], roots, now, ErrMalformed},
		{"oversized", append(bytes.Repeat([]byte{0x30}, MaxCertBytes), good...), roots, now, ErrMalformed},
		{"self-signed, right CN", selfSigned(t, key), roots, now, ErrUntrusted},
		{"from another program CA", mustIssue(t, rsaLike, &key.PublicKey), roots, now, ErrUntrusted},
		{"no roots configured", good, nil, now, ErrUntrusted},
		{"expired", expired, roots, now, ErrExpired},
		{"not yet valid", future, roots, now, ErrExpired},
		{"valid cert checked after its 20 years", good, roots, now.Add(DeviceValidity + 48*time.Hour), ErrExpired},
		{"the CA's own certificate", ca.Cert.Raw, roots, now, ErrMalformed},
		{"CN of another device", signedWith(t, ca, &key.PublicKey, func(c *x509.Certificate) { c.Subject.CommonName = otherID }), roots, now, ErrMalformed},
		{"no digitalSignature usage", signedWith(t, ca, &key.PublicKey, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment }), roots, now, ErrMalformed},
		{"server-auth only", signedWith(t, ca, &key.PublicKey, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }), roots, now, ErrUntrusted},
		{"signed CA certificate", signedWith(t, ca, &key.PublicKey, func(c *x509.Certificate) { c.IsCA = true; c.KeyUsage |= x509.KeyUsageCertSign }), roots, now, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, pub, err := Verify(tc.der, tc.roots, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify err = %v, want %v", err, tc.want)
			}
			if id != "" || pub != nil {
				t.Errorf("Verify returned %q, %v with its error", id, pub)
			}
		})
	}
}

// TestVerifyOtherCurve: a P-384 device certificate, correctly signed by the
// program CA, is refused: the login protocol is P-256 only.
func TestVerifyOtherCurve(t *testing.T) {
	ca := mustCA(t, "Test program")
	k384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issue(&k384.PublicKey); !errors.Is(err, ErrMalformed) {
		t.Errorf("Issue for P-384 err = %v, want ErrMalformed", err)
	}
	der := signedWith(t, ca, &k384.PublicKey, func(*x509.Certificate) {})
	if _, _, err := Verify(der, []*x509.Certificate{ca.Cert}, time.Now()); !errors.Is(err, ErrMalformed) {
		t.Errorf("Verify of a P-384 device certificate err = %v, want ErrMalformed", err)
	}
}

// TestMatchRejects: a valid certificate presented with another key or ID.
func TestMatchRejects(t *testing.T) {
	ca := mustCA(t, "Test program")
	key, other := mustKey(t), mustKey(t)
	id, pub, err := Verify(mustIssue(t, ca, &key.PublicKey), []*x509.Certificate{ca.Cert}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherID, _ := DeviceID(&other.PublicKey)
	tests := []struct {
		name     string
		deviceID string
		spki     []byte
	}{
		{"another key, the certificate's ID", id, spki(t, &other.PublicKey)},
		{"the certificate's key, another ID", otherID, spki(t, &key.PublicKey)},
		{"another device altogether", otherID, spki(t, &other.PublicKey)},
		{"key garbage", id, []byte("garbage")},
	}
	for _, tc := range tests {
		if err := Match(id, pub, tc.deviceID, tc.spki); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: Match err = %v, want ErrMismatch", tc.name, err)
		}
	}
}

// TestSaveLoadCA: LoadCA reads back a CA whose
// certificates verify against the saved certificate; a mismatched pair is
// refused.
func TestSaveLoadCA(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, DevelopmentCAName)
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	save(t, ca, certPath, keyPath)
	loaded, err := LoadCA(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Cert.Subject.CommonName != DevelopmentCAName {
		t.Errorf("loaded CA is named %q", loaded.Cert.Subject.CommonName)
	}
	key := mustKey(t)
	root, err := LoadCACert(certPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Verify(mustIssue(t, loaded, &key.PublicKey), []*x509.Certificate{root}, time.Now()); err != nil {
		t.Errorf("certificate from the reloaded CA: %v", err)
	}

	other := mustCA(t, "Other")
	otherCert, otherKey := filepath.Join(dir, "o.pem"), filepath.Join(dir, "o.key")
	save(t, other, otherCert, otherKey)
	if _, err := LoadCA(certPath, otherKey); !errors.Is(err, ErrBadCA) {
		t.Errorf("LoadCA with another CA's key err = %v, want ErrBadCA", err)
	}
	if _, err := LoadCA(keyPath, keyPath); !errors.Is(err, ErrBadCA) {
		t.Errorf("LoadCA of a key as certificate err = %v, want ErrBadCA", err)
	}
	// A device certificate is not a CA.
	devPEM := filepath.Join(dir, "dev.pem")
	os.WriteFile(devPEM, pemCert(mustIssue(t, ca, &key.PublicKey)), 0o644)
	if _, err := LoadCACert(devPEM); !errors.Is(err, ErrBadCA) {
		t.Errorf("LoadCACert of a device certificate err = %v, want ErrBadCA", err)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// BenchmarkVerify is the certificate half of one terminal login on the
// server (a village of terminals reconnecting after an outage pays it once
// each).
func BenchmarkVerify(b *testing.B) {
	ca := mustCA(b, "Bench program")
	key := mustKey(b)
	der := mustIssue(b, ca, &key.PublicKey)
	roots := []*x509.Certificate{ca.Cert}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Verify(der, roots, now); err != nil {
			b.Fatal(err)
		}
	}
}

// save writes ca's certificate and key as the programme's files.
func save(t *testing.T, ca *CA, certPath, keyPath string) {
	t.Helper()
	key, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
}
