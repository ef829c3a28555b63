package devcert

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// An identity bundle is what flashing writes to one unit: its private key
// (PEM "PRIVATE KEY", PKCS#8) and its device certificate (PEM
// "CERTIFICATE"). `terminald identity import FILE` reads it.

// EncodeBundle returns the PEM bundle of a device key and its certificate.
func EncodeBundle(key *ecdsa.PrivateKey, certDER []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("devcert: encode bundle: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})...), nil
}

// ParseBundle reads a PEM bundle: exactly one key and one certificate, the
// certificate's key being the key's public half and its CN the key's device
// ID. It does not check who signed the certificate: the unit cannot know its
// server's program CAs; the server checks that at every login.
func ParseBundle(data []byte) (*ecdsa.PrivateKey, []byte, error) {
	var key *ecdsa.PrivateKey
	var certDER []byte
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "PRIVATE KEY", "EC PRIVATE KEY":
			if key != nil {
				return nil, nil, fmt.Errorf("devcert: bundle: two private keys: %w", ErrBadBundle)
			}
			k, err := parseKeyDER(blk.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("devcert: bundle: %w", err)
			}
			key = k
		case "CERTIFICATE":
			if certDER != nil {
				return nil, nil, fmt.Errorf("devcert: bundle: two certificates: %w", ErrBadBundle)
			}
			certDER = blk.Bytes
		default:
			return nil, nil, fmt.Errorf("devcert: bundle: unexpected PEM block %q: %w", blk.Type, ErrBadBundle)
		}
	}
	if key == nil || certDER == nil {
		return nil, nil, fmt.Errorf("devcert: bundle: needs one PRIVATE KEY and one CERTIFICATE: %w", ErrBadBundle)
	}
	if err := CheckPair(key, certDER); err != nil {
		return nil, nil, err
	}
	return key, certDER, nil
}

// CheckPair checks that certDER certifies key: same public key, CN the
// key's device ID, a device (not CA) certificate for P-256.
func CheckPair(key *ecdsa.PrivateKey, certDER []byte) error {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return fmt.Errorf("devcert: certificate: %w: %v", ErrBadBundle, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return fmt.Errorf("devcert: the certificate is not for this key: %w", ErrBadBundle)
	}
	id, err := DeviceID(&key.PublicKey)
	if err != nil {
		return err
	}
	if cert.Subject.CommonName != id || cert.IsCA {
		return fmt.Errorf("devcert: the certificate's CN %q is not the key's device ID %s: %w", truncate(cert.Subject.CommonName), id, ErrBadBundle)
	}
	return nil
}

func parseKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || (blk.Type != "PRIVATE KEY" && blk.Type != "EC PRIVATE KEY") {
		return nil, fmt.Errorf("no PEM PRIVATE KEY block: %w", ErrBadCA)
	}
	return parseKeyDER(blk.Bytes)
}

// parseKeyDER accepts PKCS#8 (what we write) and SEC 1 (what `openssl
// ecparam -genkey` writes) P-256 keys.
func parseKeyDER(der []byte) (*ecdsa.PrivateKey, error) {
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return p256(k)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("private key: %w: %v", ErrBadBundle, err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is not ECDSA: %w", ErrBadBundle)
	}
	return p256(ec)
}

func p256(k *ecdsa.PrivateKey) (*ecdsa.PrivateKey, error) {
	if k.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("private key is not P-256: %w", ErrBadBundle)
	}
	return k, nil
}
