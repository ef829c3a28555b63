// Package certreload serves a TLS certificate from PEM files and picks up a
// renewed one (certbot, acme.sh, a programme's own CA) without a restart: a
// rendezvous server that must be restarted for every renewal drops every
// family's call and every terminal's connection each time.
package certreload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous/filestamp"
)

// CheckEvery is how often the files are looked at again, at most: a
// handshake stats them no more often than this.
const CheckEvery = 10 * time.Second

// Reloader holds the certificate loaded from a certificate file (the chain,
// leaf first) and a key file.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     [2]filestamp.Stamp // of what cert was loaded from
	checkedAt time.Time
}

// New loads the pair now, so that a missing, unreadable or mismatched pair
// stops the server at start with a clear error instead of failing every
// handshake.
func New(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	cert, stamp, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert, r.stamp, r.checkedAt = cert, stamp, r.now()
	return r, nil
}

// GetCertificate is for tls.Config.GetCertificate. When a file has changed
// since the last load it loads the pair again; a pair that does not load
// (e.g. caught half-written, or a key that does not match) is logged and the
// certificate in use stays, to be tried again at the next check.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checkedAt) < CheckEvery {
		return r.cert, nil
	}
	r.checkedAt = now
	stamp, err := r.stamps()
	if err != nil || stamp == r.stamp {
		if err != nil {
			r.log.Error("TLS certificate files: keeping the certificate in use", "err", err)
		}
		return r.cert, nil
	}
	cert, stamp, err := r.load()
	if err != nil {
		r.log.Error("TLS certificate changed but does not load: keeping the one in use", "err", err)
		return r.cert, nil
	}
	r.cert, r.stamp = cert, stamp
	r.log.Info("TLS certificate reloaded", "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	return r.cert, nil
}

// Leaf is the certificate in use.
func (r *Reloader) Leaf() *x509.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert.Leaf
}

func (r *Reloader) stamps() ([2]filestamp.Stamp, error) {
	var out [2]filestamp.Stamp
	for i, f := range []string{r.certFile, r.keyFile} {
		st, err := filestamp.Of(f)
		if err != nil {
			return out, fmt.Errorf("certreload: %w", err)
		}
		out[i] = st
	}
	return out, nil
}

// load reads both files, stamping them before and after, so that a pair
// replaced while it was being read is not taken for the new one.
func (r *Reloader) load() (*tls.Certificate, [2]filestamp.Stamp, error) {
	before, err := r.stamps()
	if err != nil {
		return nil, before, err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, before, fmt.Errorf("certreload: %s and %s: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil {
		return nil, before, errors.New("certreload: no leaf certificate")
	}
	if r.now().After(cert.Leaf.NotAfter) {
		r.log.Warn("TLS certificate has expired", "file", r.certFile, "not_after", cert.Leaf.NotAfter)
	}
	after, err := r.stamps()
	if err != nil {
		return nil, before, err
	}
	if after != before {
		return nil, before, fmt.Errorf("certreload: %s changed while it was read", r.certFile)
	}
	return &cert, after, nil
}
