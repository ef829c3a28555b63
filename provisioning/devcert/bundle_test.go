package devcert

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"
)

// TestBundleRoundTrip: a bundle reads back as the same key and certificate,
// and the certificate still verifies.
func TestBundleRoundTrip(t *testing.T) {
	ca := mustCA(t, "Test program")
	key := mustKey(t)
	der := mustIssue(t, ca, &key.PublicKey)
	b, err := EncodeBundle(key, der)
	if err != nil {
		t.Fatal(err)
	}
	k2, der2, err := ParseBundle(b)
	if err != nil {
		t.Fatalf("ParseBundle: %v", err)
	}
	if !k2.Equal(key) || !bytes.Equal(der2, der) {
		t.Fatal("bundle did not round-trip")
	}
	if _, _, err := Verify(der2, []*x509.Certificate{ca.Cert}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestBundleRejects(t *testing.T) {
	ca := mustCA(t, "Test program")
	key, other := mustKey(t), mustKey(t)
	der := mustIssue(t, ca, &key.PublicKey)
	good, _ := EncodeBundle(key, der)
	mismatched, _ := EncodeBundle(other, der)
	keyOnly, _ := EncodeBundle(key, nil)
	keyOnly = keyOnly[:bytes.Index(keyOnly, []byte("-----BEGIN CERTIFICATE"))]
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not PEM", []byte("hello")},
		{"key only", keyOnly},
		{"certificate only", pemCert(der)},
		{"key of another device", mismatched},
		{"two certificates", append(append([]byte{}, good...), pemCert(der)...)},
		{"a CA certificate", append(append([]byte{}, keyOnly...), pemCert(ca.Cert.Raw)...)},
		{"stray block", append(append([]byte{}, good...), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}})...)},
		{"garbage key", append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), pemCert(der)...)},
	}
	for _, tc := range tests {
		if _, _, err := ParseBundle(tc.data); !errors.Is(err, ErrBadBundle) {
			t.Errorf("%s: ParseBundle err = %v, want ErrBadBundle", tc.name, err)
		}
	}
}
