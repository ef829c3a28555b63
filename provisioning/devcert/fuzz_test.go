package devcert

import (
	"crypto/x509"
	"testing"
	"time"
)

// FuzzVerify: Verify never panics on any bytes, and whatever it accepts
// really is a device certificate signed by the program CA, for the key and
// ID it returns.
func FuzzVerify(f *testing.F) {
	ca := mustCA(f, "Fuzz program")
	stranger := mustCA(f, "Stranger")
	key := mustKey(f)
	good := mustIssue(f, ca, &key.PublicKey)
	f.Add(good)
	f.Add(mustIssue(f, stranger, &key.PublicKey))
	f.Add(selfSigned(f, key))
	f.Add(ca.Cert.Raw)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Add([]byte{})
	roots := []*x509.Certificate{ca.Cert}
	now := time.Now()
	f.Fuzz(func(t *testing.T, der []byte) {
		id, pub, err := Verify(der, roots, now)
		if err != nil {
			if id != "" || pub != nil {
				t.Fatal("Verify returned a result with its error")
			}
			return
		}
		cert, perr := x509.ParseCertificate(der)
		if perr != nil {
			t.Fatalf("Verify accepted bytes that do not parse: %v", perr)
		}
		if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
			t.Fatalf("Verify accepted a certificate the CA did not sign: %v", err)
		}
		if !pub.Equal(cert.PublicKey) || cert.Subject.CommonName != id {
			t.Fatal("Verify returned a key or ID the certificate does not carry")
		}
		if want, _ := DeviceID(pub); want != id {
			t.Fatalf("Verify accepted CN %s for a key whose ID is %s", id, want)
		}
	})
}
