package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// runLabel is `terminald label [-config F] [-state F] [-public-url U]`: it
// prints the unit's pairing link and its QR code, which is what the unit's
// printed label carries. The link holds the label's pairing secret, so
// nothing else ever prints or logs it (docs/security.md): this command is
// the technician's explicit request, for a lost or unreadable label.
func runLabel(_ context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfigFor(configUse{name: "terminald label", usage: `usage: terminald label [-config F] [-state F] [-public-url U]

Prints this unit's pairing link and QR code: what its printed label carries,
for a technician replacing a lost or unreadable label. The link holds the
unit's pairing secret; terminald never prints or logs it otherwise. Stop
terminald first: the state file is the running daemon's.

`}, args, stderr)
	if err != nil {
		return err
	}
	if cfg.PublicURL == "" {
		return errors.New("terminald label: public_url is empty: the link starts with the server's public address")
	}
	store, err := openState("terminald label", cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	link, err := pairingLink(store, cfg.PublicURL)
	if err != nil {
		return fmt.Errorf("terminald label: %w", err)
	}
	fmt.Fprintf(stdout, "pairing link (keep it private, like the label):\n%s\n", link)
	printQR(stdout, link)
	fmt.Fprintln(stdout, device.ResetHowTo)
	return nil
}

// pairingLink is the link the unit's label carries.
func pairingLink(store *terminalstore.Store, publicURL string) (string, error) {
	key, err := store.Identity()
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", fmt.Errorf("public key: %w", err)
	}
	secret, err := store.PairingSecret()
	if err != nil {
		return "", err
	}
	return pairing.URL(publicURL, protocol.DeviceID(der), secret), nil
}

// openState opens a unit's existing state file for a technician's command
// (cmd names it in errors): never a new one, a clear word when the running
// terminald holds it, and a damaged one left for terminald to repair.
func openState(cmd string, cfg config) (*terminalstore.Store, error) {
	if _, err := os.Stat(cfg.StateFile); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	store, err := terminalstore.OpenFiles(cfg.StateFile, cfg.identityFile())
	switch {
	case errors.Is(err, terminalstore.ErrDamaged):
		return nil, fmt.Errorf("%s: %w (terminald moves a damaged state file aside and starts a fresh one when it starts)", cmd, err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w (is terminald running? stop it first)", cmd, err)
	}
	return store, nil
}
