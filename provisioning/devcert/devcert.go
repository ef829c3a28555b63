// Package devcert issues and verifies Tuanju device certificates.
//
// Every terminal has its own ECDSA P-256 key, made at flash time by the
// provisioning side and never baked into the shared image. A program CA (one
// per subsidy program, or per key rollover) signs an X.509 certificate that
// binds the terminal's device ID (protocol.DeviceID of the key) to that key.
// The rendezvous server trusts a terminal only when its hello carries such a
// certificate and is signed by the certified key: an ID alone, or a key the
// program never certified, is worth nothing.
//
// The format is plain X.509 (crypto/x509) so that standard tools (openssl x509
// -text) can read what is on a unit, and so that the parent's browser could
// verify the same certificate with WebCrypto if it ever needs to.
package devcert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// Lifetimes and limits.
const (
	// DeviceValidity is how long a device certificate is valid. A unit in a
	// village has no way to renew its certificate (nobody will re-flash it,
	// and there is no renewal protocol), and a certificate that expires in
	// the field silently turns a working terminal into a dead one. So the
	// certificate outlives any plausible field life (these boards last 5–10
	// years); a stolen or retired unit is shut out by a server-side deny
	// list on its device ID, not by waiting for expiry.
	DeviceValidity = 20 * 365 * 24 * time.Hour
	// CAValidity outlives every device certificate the CA will ever sign.
	CAValidity = 30 * 365 * 24 * time.Hour
	// backdate absorbs clock skew between the provisioning laptop and the
	// server, so a unit flashed a minute ago is not "not yet valid".
	backdate = time.Hour
	// MaxCertBytes bounds what Verify parses. A P-256 device certificate is
	// about 450 bytes; 1,500 leaves room for longer names and extensions.
	// protocol.MaxCertificateChars is its base64url size.
	MaxCertBytes = 1500
)

// randomSerial is a 128-bit random serial number, as CAs use so that serials
// are unpredictable and never collide across provisioning laptops.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil // never zero
}

// DeviceID is the device ID of a public key: protocol.DeviceID over its SPKI.
func DeviceID(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("devcert: marshal public key: %w", err)
	}
	return protocol.DeviceID(der), nil
}

// NewDeviceKey makes a device's signing key. Provisioning calls it at flash
// time, one key per unit.
func NewDeviceKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devcert: generate device key: %w", err)
	}
	return k, nil
}

// Verify checks a device certificate against the program CAs at time now and
// returns the device ID it certifies (its CN) and its key. The checks, in
// order: size and DER shape; an ECDSA P-256 key, not a CA, usable for
// digital signatures, a CN that is the device ID of its own key; signed by
// one of roots; valid at now. Errors wrap ErrMalformed, ErrUntrusted or
// ErrExpired. The caller still compares the result with what the client
// claims (ErrMismatch is for that, see Match) and checks a fresh signature:
// a certificate is public, so holding one proves nothing.
func Verify(certDER []byte, roots []*x509.Certificate, now time.Time) (string, *ecdsa.PublicKey, error) {
	if len(certDER) == 0 || len(certDER) > MaxCertBytes {
		return "", nil, fmt.Errorf("devcert: verify: %d bytes (want 1..%d): %w", len(certDER), MaxCertBytes, ErrMalformed)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return "", nil, fmt.Errorf("devcert: verify: %w: %v", ErrMalformed, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return "", nil, fmt.Errorf("devcert: verify: key is not ECDSA P-256: %w", ErrMalformed)
	}
	if cert.IsCA {
		return "", nil, fmt.Errorf("devcert: verify: a CA certificate is not a device certificate: %w", ErrMalformed)
	}
	if cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return "", nil, fmt.Errorf("devcert: verify: no digitalSignature key usage: %w", ErrMalformed)
	}
	id, err := DeviceID(pub)
	if err != nil {
		return "", nil, fmt.Errorf("devcert: verify: %w: %v", ErrMalformed, err)
	}
	if cert.Subject.CommonName != id {
		return "", nil, fmt.Errorf("devcert: verify: CN %q is not the device ID of the certified key: %w", truncate(cert.Subject.CommonName), ErrMalformed)
	}
	if len(roots) == 0 {
		return "", nil, fmt.Errorf("devcert: verify %s: no program CA configured: %w", id, ErrUntrusted)
	}
	// Who signed it first, time second: a certificate from a stranger says
	// "untrusted" whether or not it has also expired.
	pool := x509.NewCertPool()
	signed := false
	for _, r := range roots {
		pool.AddCert(r)
		if bytes.Equal(cert.RawIssuer, r.RawSubject) && cert.CheckSignatureFrom(r) == nil {
			signed = true
		}
	}
	if !signed {
		return "", nil, fmt.Errorf("devcert: verify %s: issuer %q: %w", id, truncate(cert.Issuer.String()), ErrUntrusted)
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return "", nil, fmt.Errorf("devcert: verify %s: valid %s to %s, now is %s: %w", id,
			cert.NotBefore.UTC().Format(time.DateOnly), cert.NotAfter.UTC().Format(time.DateOnly), now.UTC().Format(time.RFC3339), ErrExpired)
	}
	// The full check, as TLS would do it: chain, the CA's own validity (a
	// retired program's CA stops vouching for its units when it expires),
	// extended key usage.
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return "", nil, fmt.Errorf("devcert: verify %s: program CA outside its validity: %w", id, ErrExpired)
		}
		return "", nil, fmt.Errorf("devcert: verify %s: %w: %v", id, ErrUntrusted, err)
	}
	return id, pub, nil
}

// Match checks that a verified certificate's device ID and key are the ones a
// client presented (its claimed device ID and SPKI DER).
func Match(certID string, certKey *ecdsa.PublicKey, deviceID string, spkiDER []byte) error {
	pub, err := x509.ParsePKIXPublicKey(spkiDER)
	if err != nil {
		return fmt.Errorf("devcert: match: presented key: %w: %v", ErrMismatch, err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || !ec.Equal(certKey) {
		return fmt.Errorf("devcert: match: certificate is for another key: %w", ErrMismatch)
	}
	if certID != deviceID {
		return fmt.Errorf("devcert: match: certificate is for device %s, not %s: %w", certID, truncate(deviceID), ErrMismatch)
	}
	return nil
}

// Info is what a technician sees of a certificate (terminald identity show).
type Info struct {
	DeviceID  string
	Subject   string
	Issuer    string
	Serial    string
	NotBefore time.Time
	NotAfter  time.Time
}

// Describe parses a certificate for display without judging it.
func Describe(certDER []byte) (Info, error) {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return Info{}, fmt.Errorf("devcert: describe: %w: %v", ErrMalformed, err)
	}
	return Info{
		DeviceID: cert.Subject.CommonName, Subject: cert.Subject.String(), Issuer: cert.Issuer.String(),
		Serial: fmt.Sprintf("%x", cert.SerialNumber), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
	}, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// deviceTemplate is the certificate Issue signs.
func deviceTemplate(id string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: id},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}, nil
}
