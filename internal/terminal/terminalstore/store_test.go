package terminalstore

import (
	"bytes"
	"errors"
	"fmt"
	bolt "go.etcd.io/bbolt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	key, cert := provision(t, s)
	sec, err := s.PairingSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetParent(Parent{ParentID: "p", PairedAt: time.Unix(100, 0).UTC(), PublicKey: "cGFyZW50"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendCall(CallRecord{CallID: "c1", Outcome: "missed"}); err != nil {
		t.Fatal(err)
	}
	_, dtls, err := s.DTLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if dtls.NotAfter.Before(time.Now().AddDate(20, 0, 0)) {
		t.Errorf("DTLS certificate expires %v: a unit in the field would lose its calls", dtls.NotAfter)
	}
	s.Close()

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("state file mode %o, want 0600 (it holds the device key)", perm)
	}

	s = open(t, path)
	defer s.Close()
	key2, err := s.Identity()
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(key2) {
		t.Error("identity key changed across restart")
	}
	if cert2, err := s.Certificate(); err != nil || !bytes.Equal(cert, cert2) {
		t.Errorf("certificate after restart: %v (equal %v)", err, bytes.Equal(cert, cert2))
	}
	sec2, _ := s.PairingSecret()
	if sec != sec2 {
		t.Error("pairing secret changed across restart")
	}
	dkey, cert2, err := s.DTLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if !cert2.Equal(dtls) || !dkey.PublicKey.Equal(cert2.PublicKey) {
		t.Error("DTLS certificate changed across restart: the parent's pinned fingerprint would break")
	}
	p, err := s.Parent()
	if err != nil || p.ParentID != "p" || !p.PairedAt.Equal(time.Unix(100, 0)) || p.PublicKey != "cGFyZW50" {
		t.Errorf("parent after restart = %+v, %v", p, err)
	}
	calls, err := s.Calls(10)
	if err != nil || len(calls) != 1 || calls[0].CallID != "c1" {
		t.Errorf("calls after restart = %+v, %v", calls, err)
	}
}

func TestOneParentOnly(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	if _, err := s.Parent(); !errors.Is(err, ErrNotPaired) {
		t.Fatalf("fresh store Parent() err = %v, want ErrNotPaired", err)
	}
	if err := s.SetParent(Parent{ParentID: "first"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetParent(Parent{ParentID: "second"}); !errors.Is(err, ErrAlreadyPaired) {
		t.Fatalf("second SetParent err = %v, want ErrAlreadyPaired", err)
	}
	if p, _ := s.Parent(); p.ParentID != "first" {
		t.Errorf("parent = %q after a refused second pairing, want first", p.ParentID)
	}
}

func TestFactoryReset(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	key, _ := provision(t, s)
	sec, _ := s.PairingSecret()
	s.SetParent(Parent{ParentID: "p"})
	s.AppendCall(CallRecord{CallID: "c"})
	if p, _ := s.UnpairPending(); p {
		t.Fatal("unpair pending before any reset")
	}
	if err := s.FactoryReset(); err != nil {
		t.Fatal(err)
	}
	if p, err := s.UnpairPending(); err != nil || !p {
		t.Errorf("after reset UnpairPending() = %v, %v; want true", p, err)
	}
	if _, err := s.Parent(); !errors.Is(err, ErrNotPaired) {
		t.Errorf("after reset Parent() err = %v, want ErrNotPaired", err)
	}
	if calls, _ := s.Calls(10); len(calls) != 0 {
		t.Errorf("after reset %d calls remain", len(calls))
	}
	if sec2, _ := s.PairingSecret(); sec2 != sec {
		t.Error("pairing secret changed on reset: the unit's printed label would stop working")
	}
	if key2, _ := s.Identity(); !key.Equal(key2) {
		t.Error("identity changed on reset; it belongs to the unit")
	}
	// A new pairing does not settle what the server is owed; the ack does.
	if err := s.SetParent(Parent{ParentID: "q"}); err != nil {
		t.Fatalf("pairing again after reset: %v", err)
	}
	if p, _ := s.UnpairPending(); !p {
		t.Error("a new pairing cleared the pending unpair")
	}
	if err := s.ClearUnpairPending(); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.UnpairPending(); p {
		t.Error("UnpairPending() still true after ClearUnpairPending")
	}
}

// TestStateFileIsPrivate: the state file holds the device's private key, so
// it is 0600 even where the umask or an older file would leave it readable.
func TestStateFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	for _, pre := range []os.FileMode{0, 0o644} {
		if pre != 0 {
			// An existing file with a loose mode is tightened on open.
			if err := os.Chmod(path, pre); err != nil {
				t.Fatal(err)
			}
		}
		s := open(t, path)
		if _, err := s.PairingSecret(); err != nil { // a secret written
			t.Fatal(err)
		}
		s.Close()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("state file mode %v (was %v before open), want 0600", fi.Mode().Perm(), pre)
		}
	}
}

func TestCallLogIsBoundedNewestFirst(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	for i := range MaxCalls + 20 {
		if err := s.AppendCall(CallRecord{CallID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Calls(MaxCalls * 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != MaxCalls {
		t.Errorf("kept %d calls, want %d", len(all), MaxCalls)
	}
	if all[0].CallID != fmt.Sprint(MaxCalls+19) || all[len(all)-1].CallID != "20" {
		t.Errorf("newest %q oldest %q, want %d and 20", all[0].CallID, all[len(all)-1].CallID, MaxCalls+19)
	}
}

func TestCorruptValueIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketIdentity).Put(keyDeviceKey, []byte("garbage")) })
	_, err := s.Identity()
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Identity() on garbage err = %v, want ErrCorrupt", err)
	}
	s.Close()
}

// TestSeenCallsSurviveRestart: a call ID marked seen is still seen after
// the file is closed and opened again (a reboot), and the cap drops only the
// oldest IDs.
func TestSeenCallsSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	if fresh, err := s.MarkCallSeen("call-1"); err != nil || !fresh {
		t.Fatalf("first MarkCallSeen = %v, %v; want fresh", fresh, err)
	}
	if fresh, _ := s.MarkCallSeen("call-1"); fresh {
		t.Error("second MarkCallSeen of the same ID says fresh")
	}
	s.Close()
	s = open(t, path)
	defer s.Close()
	if fresh, err := s.MarkCallSeen("call-1"); err != nil || fresh {
		t.Errorf("MarkCallSeen after restart = %v, %v; want seen", fresh, err)
	}
	for i := range MaxSeenCalls {
		if _, err := s.MarkCallSeen(fmt.Sprintf("fill-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if fresh, _ := s.MarkCallSeen(fmt.Sprintf("fill-%d", MaxSeenCalls-1)); fresh {
		t.Error("the newest ID was dropped by the cap")
	}
	if fresh, _ := s.MarkCallSeen("call-1"); !fresh {
		t.Error("the oldest ID was kept past the cap")
	}
	var n int
	s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketReplay).Bucket(bucketSeenCalls).Stats().KeyN
		return nil
	})
	if n > MaxSeenCalls {
		t.Errorf("%d seen IDs kept, cap %d", n, MaxSeenCalls)
	}
}

// TestClockFloorOnlyRises: the floor persists and never goes down.
func TestClockFloorOnlyRises(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	if f, err := s.ClockFloor(); err != nil || !f.IsZero() {
		t.Fatalf("new file's floor = %v, %v; want zero", f, err)
	}
	t1 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, at := range []time.Time{t1, t1.Add(-time.Hour), t1.Add(-24 * time.Hour)} {
		if err := s.RaiseClockFloor(at); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open(t, path)
	defer s.Close()
	if f, _ := s.ClockFloor(); !f.Equal(t1) {
		t.Errorf("floor after restart = %v, want %v (earlier times must not lower it)", f, t1)
	}
	if err := s.FactoryReset(); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.ClockFloor(); !f.Equal(t1) {
		t.Errorf("floor after factory reset = %v, want %v", f, t1)
	}
}
