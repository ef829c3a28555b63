package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/tuanju/tuanju/internal/atomicfile"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// demoCA loads the demo's development program CA from the data directory,
// making it on the first run, and returns the certificate's path (what the
// rendezvous server trusts). Its name says DEVELOPMENT so that a unit
// provisioned with it by mistake is recognised on sight; a real program's
// CA comes with bulk provisioning (docs/provisioning-keys.md).
func demoCA(data string) (*devcert.CA, string, error) {
	certPath, keyPath := filepath.Join(data, "program-ca.pem"), filepath.Join(data, "program-ca.key")
	ca, err := devcert.LoadCA(certPath, keyPath)
	if err == nil {
		return ca, certPath, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("demo program CA (remove %s to start afresh): %w", data, err)
	}
	if ca, err = devcert.NewCA(devcert.DevelopmentCAName); err != nil {
		return nil, "", err
	}
	key, err := ca.KeyPEM()
	if err != nil {
		return nil, "", err
	}
	// The key first: a crash never leaves a certificate without its key.
	if err := atomicfile.WriteFile(keyPath, key, 0o600); err != nil {
		return nil, "", err
	}
	if err := atomicfile.WriteFile(certPath, ca.CertPEM(), 0o644); err != nil {
		return nil, "", err
	}
	return ca, certPath, nil
}

// provisionTerminal does for the simulated terminal what the flashing
// station does for a real unit: a key and a certificate from the program CA,
// written as an identity bundle (made once and kept, so the terminal keeps
// its device ID and pairing across runs) and imported with `terminald
// identity import`.
func provisionTerminal(ctx context.Context, o options, ca *devcert.CA, logs io.Writer) error {
	bundle := filepath.Join(o.data, "terminal-identity.pem")
	if _, err := os.Stat(bundle); errors.Is(err, fs.ErrNotExist) {
		key, err := devcert.NewDeviceKey()
		if err != nil {
			return err
		}
		cert, err := ca.Issue(&key.PublicKey)
		if err != nil {
			return err
		}
		b, err := devcert.EncodeBundle(key, cert)
		if err != nil {
			return err
		}
		if err := os.WriteFile(bundle, b, 0o600); err != nil {
			return fmt.Errorf("write identity bundle: %w", err)
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(o.bin, "terminald"), "identity", "import",
		"-state", filepath.Join(o.data, "terminal.db"), bundle)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("terminald identity import (see the demo log; remove %s to start afresh): %w", o.data, err)
	}
	return nil
}
