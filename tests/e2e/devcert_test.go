package e2e

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// TestRefusedCertificateShowsNeedsRepair: a unit provisioned by a program CA
// this server does not trust never gets in (the server stores nothing for
// it), and shows needs-repair rather than a terminal that looks merely
// offline: a grown-up has to act.
func TestRefusedCertificateShowsNeedsRepair(t *testing.T) {
	state := filepath.Join(t.TempDir(), "terminal.db")
	stranger, err := devcert.NewCA("another program")
	if err != nil {
		t.Fatal(err)
	}
	key, err := devcert.NewDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := stranger.Issue(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := terminalstore.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ImportIdentity(key, cert); err != nil {
		t.Fatal(err)
	}
	s.Close()

	srv := newRig(t, nil)
	r := startTerminal(t, srv.ctx, srv.srv, terminalOpts{statePath: state, refused: true})
	r.waitPattern(device.Fault, "a unit whose certificate the server refuses shows needs-repair")
	if st := r.term.Status(); st.Online || !strings.Contains(st.Fault, "device certificate refused") {
		t.Fatalf("status %+v; want offline with the refused certificate named as the fault", st)
	}
	if _, err := srv.srv.Registry().Device(r.term.DeviceID()); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("server stored the refused unit %s (err %v)", r.term.DeviceID(), err)
	}
}
