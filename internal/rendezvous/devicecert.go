package rendezvous

import (
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"unicode/utf8"

	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// loadDeviceCAs reads the program CA certificates. Any unreadable file is an
// error: a server that silently dropped a program's CA would lock that
// program's terminals out with nothing in the log but refused logins.
func loadDeviceCAs(files []string, log *slog.Logger) ([]*x509.Certificate, error) {
	var cas []*x509.Certificate
	for _, f := range files {
		c, err := devcert.LoadCACert(f)
		if err != nil {
			return nil, fmt.Errorf("rendezvous: device_ca_files: %w", err)
		}
		if c.Subject.CommonName == devcert.DevelopmentCAName {
			log.Warn("trusting a DEVELOPMENT program CA: for demos and tests only", "file", f)
		}
		log.Info("program CA", "file", f, "subject", c.Subject.String(), "not_after", c.NotAfter.UTC().Format("2006-01-02"))
		cas = append(cas, c)
	}
	return cas, nil
}

// checkDeviceCert runs the certificate half of a terminal login (the
// signature over the nonce is VerifyLogin's, after this): the hello carries a
// certificate that chains to one of the program CAs and is valid now, whose
// key is the hello's public_key and whose CN is its device_id.
func (s *Server) checkDeviceCert(m protocol.Message) error {
	der, err := protocol.LoginCertificate(m)
	if err != nil {
		return err
	}
	id, pub, err := devcert.Verify(der, s.deviceCAs, s.now())
	if err != nil {
		return err
	}
	spki, err := base64.RawURLEncoding.DecodeString(m.PublicKey)
	if err != nil {
		return fmt.Errorf("protocol: public key is not base64url: %w", protocol.ErrInvalid)
	}
	return devcert.Match(id, pub, m.DeviceID, spki)
}

// refusal is an error's text cut to fit an error message's 512 bytes
// (x509's own errors can be long).
func refusal(err error) string {
	s := err.Error()
	for len(s) > 300 {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}
