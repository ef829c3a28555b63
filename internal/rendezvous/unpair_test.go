package rendezvous_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestUnpairWithParentOnline: a reset terminal's unpair ends the call in
// progress, tells every socket of the old parent and closes it with 4003,
// kills the token, deletes the pairing's call log, lets a new parent pair,
// and leaves both events in the audit log.
func TestUnpairWithParentOnline(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	tab2, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	defer tab2.Close()
	callID := startCall(t, ctx, f)

	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeUnpair}))
	for _, p := range []*rt.Client{f.parent, tab2} {
		// The call ends first (the tab that answered, and the other tab
		// already got answered_elsewhere), then the unpair.
		if p == f.parent {
			if h := try(p.Expect(ctx, protocol.TypeHangup)).must(t); h.CallID != callID || h.Reason != protocol.ReasonPeerLeft {
				t.Errorf("parent got %+v, want hangup peer_left for %s", h, callID)
			}
		}
		m := try(p.WaitFor(ctx, protocol.TypeUnpaired)).must(t)
		if m.DeviceID != f.terminal.Welcome.DeviceID {
			t.Errorf("unpaired names device %q, want %q", m.DeviceID, f.terminal.Welcome.DeviceID)
		}
		if code := try(p.WaitClosed(ctx)).must(t); code != rendezvous.CloseUnpaired {
			t.Errorf("old parent's socket closed with %d, want %d", code, rendezvous.CloseUnpaired)
		}
	}
	// The terminal ended its own call; it gets only the ack.
	try(f.terminal.Expect(ctx, protocol.TypeUnpaired)).must(t)

	// The token is dead.
	if _, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token); err == nil || !strings.Contains(err.Error(), protocol.ErrCodeAuthFailed) {
		t.Fatalf("old parent's login after the reset: err = %v, want auth_failed", err)
	}
	if _, err := srv.Registry().ParentOf(f.terminal.Welcome.DeviceID); err == nil {
		t.Fatal("pairing still stored after unpair")
	}
	// The unit is marked as having lost a parent: the programme's number
	// for the family it was shipped to no longer stands for the next
	// (hub.phone).
	if d, err := srv.Registry().Device(f.terminal.Welcome.DeviceID); err != nil || !d.Unpaired {
		t.Fatalf("device after unpair = %+v, %v; want it marked unpaired", d, err)
	}
	if log, err := srv.Registry().CallLog(f.creds.ParentID, false); err != nil || len(log) != 0 {
		t.Fatalf("old pairing's call log after unpair = %+v, %v; want empty", log, err)
	}
	// The terminal, still on the same socket, rings nobody now.
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	try(f.terminal.ExpectError(ctx, protocol.ErrCodeNotPaired)).must(t)

	// A new parent can pair (the terminal's window is its own business).
	newSecret := pairing.NewSecret()
	creds := try(rt.Pair(ctx, srv.WSURL, f.terminal, newSecret)).must(t)
	if creds.ParentID == f.creds.ParentID {
		t.Fatal("new pairing reused the old parent ID")
	}
	p, log, err := rt.DialParent(ctx, srv.WSURL, creds.ParentID, creds.Token)
	check(t, err)
	defer p.Close()
	if len(log) != 0 {
		t.Errorf("new parent sees the old family's calls: %+v", log)
	}

	audit, err := rendezvous.ReadAudit(srv.AuditPath())
	check(t, err)
	dev := f.terminal.Welcome.DeviceID
	want := []rendezvous.AuditEntry{
		{Event: rendezvous.AuditPaired, DeviceID: dev, ParentID: f.creds.ParentID},
		{Event: rendezvous.AuditFactoryReset, DeviceID: dev, ParentID: f.creds.ParentID},
		{Event: rendezvous.AuditPaired, DeviceID: dev, ParentID: creds.ParentID},
	}
	if len(audit) != len(want) {
		t.Fatalf("audit log = %+v, want %d entries", audit, len(want))
	}
	for i, w := range want {
		got := audit[i]
		if got.Event != w.Event || got.DeviceID != w.DeviceID || got.ParentID != w.ParentID || got.Time.IsZero() {
			t.Errorf("audit[%d] = %+v, want %+v with a time", i, got, w)
		}
	}
}

// TestUnpairUnpairedIsAcknowledged: an unpair the server has nothing for (a
// repeat after a lost ack, or a never-paired unit) is acknowledged and
// audited without a parent.
func TestUnpairUnpairedIsAcknowledged(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	key, dev := rt.NewKey()
	term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
	defer term.Close()
	check(t, term.Send(ctx, protocol.Message{Type: protocol.TypeUnpair}))
	if m := try(term.Expect(ctx, protocol.TypeUnpaired)).must(t); m.DeviceID != dev {
		t.Errorf("ack names %q, want %q", m.DeviceID, dev)
	}
	audit, err := rendezvous.ReadAudit(srv.AuditPath())
	check(t, err)
	if len(audit) != 1 || audit[0].Event != rendezvous.AuditFactoryReset || audit[0].ParentID != "" {
		t.Errorf("audit = %+v, want one factory_reset without a parent", audit)
	}
}

// TestOnlyTerminalsUnpair: a parent or a pairing page cannot unpair.
func TestOnlyTerminalsUnpair(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeUnpair}))
	try(f.parent.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t)
	page := try(rt.DialPairing(ctx, srv.WSURL)).must(t)
	defer page.Close()
	check(t, page.Send(ctx, protocol.Message{Type: protocol.TypeUnpair}))
	try(page.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t)
	if _, err := srv.Registry().ParentOf(f.terminal.Welcome.DeviceID); err != nil {
		t.Fatalf("pairing gone after a refused unpair: %v", err)
	}
}

// TestServerSecretsArePrivate: the registry (token hashes, call logs), the
// TURN secret and the audit log are 0600 in a 0700 directory.
func TestServerSecretsArePrivate(t *testing.T) {
	ctx := testCtx(t)
	dir := filepath.Join(t.TempDir(), "data")
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.DataDir = dir; c.TURN.Secret = "" })
	newFamily(t, ctx, srv) // writes the audit log
	onBolt := srv.Store() != nil
	check(t, srv.Close())
	files := []string{"turn-secret", rendezvous.AuditFile}
	if onBolt {
		files = append(files, rendezvous.RegistryFile)
	} else if fi, err := os.Stat(filepath.Join(dir, "nats")); err != nil || fi.Mode().Perm() != 0o700 {
		// JetStream makes its files 0640 in 0750 directories: the
		// embedded server's own directory keeps everyone else out.
		t.Errorf("the embedded NATS server's directory: %v, %v; want mode 0700", fi.Mode().Perm(), err)
	}
	for _, name := range files {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v, %v; want mode 0700", fi.Mode().Perm(), err)
	}
}

// TestUnpairUnknownReason: an unpair with a reason the protocol does not
// name is refused as bad_message and deletes nothing.
func TestUnpairUnknownReason(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeUnpair, Reason: "because"}))
	try(f.terminal.ExpectError(ctx, protocol.ErrCodeBadMessage)).must(t)
	if p, err := srv.Registry().ParentOf(f.terminal.Welcome.DeviceID); err != nil || p != f.creds.ParentID {
		t.Fatalf("pairing after a refused unpair: %q, %v; want %s kept", p, err, f.creds.ParentID)
	}
	entries, err := rendezvous.ReadAudit(srv.AuditPath())
	check(t, err)
	for _, e := range entries {
		if e.Event != rendezvous.AuditPaired {
			t.Fatalf("audit log after a refused unpair has %+v", e)
		}
	}
}
