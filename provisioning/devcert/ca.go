package devcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"time"
)

// DevelopmentCAName is the subject of the CA `make demo` creates. The name
// says what it is wherever the certificate is looked at, so a unit that was
// provisioned with it by mistake is recognised on sight.
const DevelopmentCAName = "DEVELOPMENT - not for field units"

// CA is a program certificate authority: a self-signed certificate and its
// private key. Only the provisioning side holds the key; the rendezvous
// server holds only the certificate.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA named name (the subject CN), valid for CAValidity.
func NewCA(name string) (*CA, error) {
	if name == "" {
		return nil, fmt.Errorf("devcert: new CA: empty name: %w", ErrBadCA)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devcert: new CA: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("devcert: new CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Tuanju program CA"}},
		NotBefore:             now.Add(-2 * backdate), // covers the backdated device certificates
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Device certificates are signed directly by the program CA; an
		// intermediate it signed by mistake must not be able to sign more.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("devcert: new CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devcert: new CA: %w", err)
	}
	return &CA{Cert: cert, key: key}, nil
}

// LoadCA reads a CA written by Save: the certificate and its key as PEM, and
// checks that they belong together.
func LoadCA(certPath, keyPath string) (*CA, error) {
	cert, err := LoadCACert(certPath)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("devcert: load CA key: %w", err)
	}
	ca, err := caWithKey(cert, b)
	if err != nil {
		return nil, fmt.Errorf("devcert: load CA %s, %s: %w", certPath, keyPath, err)
	}
	return ca, nil
}

// ParseCA is LoadCA from bytes: a PEM CA certificate and its PEM key (a
// programme keeps the key encrypted and hands it over decrypted, never
// written in the clear: provisioning/programme).
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCACert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("devcert: parse CA: %w", err)
	}
	ca, err := caWithKey(cert, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("devcert: parse CA: %w", err)
	}
	return ca, nil
}

func caWithKey(cert *x509.Certificate, keyPEM []byte) (*CA, error) {
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key: %w: %v", ErrBadCA, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("the key is not the certificate's: %w", ErrBadCA)
	}
	return &CA{Cert: cert, key: key}, nil
}

// LoadCACert reads a program CA certificate (PEM), as the rendezvous server
// does for each of its device_ca_files.
func LoadCACert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devcert: load CA certificate: %w", err)
	}
	cert, err := ParseCACert(b)
	if err != nil {
		return nil, fmt.Errorf("devcert: load CA certificate %s: %w", path, err)
	}
	return cert, nil
}

// ParseCACert parses one PEM CA certificate and checks it can sign devices.
func ParseCACert(pemBytes []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no PEM CERTIFICATE block: %w", ErrBadCA)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCA, err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%q is not a CA certificate: %w", cert.Subject.CommonName, ErrBadCA)
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("%q: key is not ECDSA: %w", cert.Subject.CommonName, ErrBadCA)
	}
	return cert, nil
}

// CertPEM is the CA certificate as PEM: what the rendezvous server is given.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM is the CA's private key as PKCS #8 PEM, for the programme's
// offline key file (write it 0600, atomically: internal/atomicfile).
func (ca *CA) KeyPEM() ([]byte, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("devcert: CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// Issue signs a device certificate for pub, valid from now for
// DeviceValidity, and returns its DER.
func (ca *CA) Issue(pub *ecdsa.PublicKey) ([]byte, error) {
	now := time.Now()
	return ca.IssueFor(pub, now.Add(-backdate), now.Add(DeviceValidity))
}

// IssueFor signs a device certificate for pub with an explicit validity
// (tests make expired ones with it).
func (ca *CA) IssueFor(pub *ecdsa.PublicKey, notBefore, notAfter time.Time) ([]byte, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("devcert: issue: key is not ECDSA P-256: %w", ErrMalformed)
	}
	id, err := DeviceID(pub)
	if err != nil {
		return nil, err
	}
	tmpl, err := deviceTemplate(id, notBefore, notAfter)
	if err != nil {
		return nil, fmt.Errorf("devcert: issue %s: %w", id, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("devcert: issue %s: %w", id, err)
	}
	return der, nil
}
