package terminalstore

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tuanju/tuanju/internal/boltfile/boltfiletest"
)

// paired makes a provisioned, paired unit with a call log big enough that
// its calls bucket has pages of its own, and closes it.
func paired(t *testing.T, path string) (key []byte, cert []byte) {
	t.Helper()
	s := open(t, path)
	defer s.Close()
	k, c := provision(t, s)
	if err := s.SetParent(Parent{ParentID: "p1", PairedAt: time.Unix(100, 0).UTC(), PublicKey: "cGFyZW50"}); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if err := s.AppendCall(CallRecord{CallID: fmt.Sprintf("call-%03d-with-a-long-enough-id", i), Outcome: "answered", EndedAt: time.Unix(int64(1000+i), 0)}); err != nil {
			t.Fatal(err)
		}
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return der, c
}

var repairNow = time.Date(2026, 5, 1, 8, 30, 0, 0, time.UTC)

// TestRepairDamagedStateFile: for every kind of damage the fault-injection
// run found (issue 11), OpenOrRepair does not panic, moves the damaged file
// aside intact, starts a fresh one, keeps the identity, is unpaired with
// the server to be told, and leaves a note; a sound file (the control) is
// opened as it is.
func TestRepairDamagedStateFile(t *testing.T) {
	kinds := append([]boltfiletest.Kind{{Name: "undamaged (control)", Damage: func(testing.TB, string) {}}}, boltfiletest.Kinds()...)
	for _, k := range kinds {
		t.Run(k.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "terminal.db")
			keyDER, cert := paired(t, path)
			k.Damage(t, path)
			damaged, _ := os.ReadFile(path)

			s, r, err := OpenOrRepair(path, IdentityPath(path), repairNow)
			if err != nil {
				t.Fatalf("OpenOrRepair: %v", err)
			}
			defer s.Close()
			key, err := s.Identity()
			if err != nil {
				t.Fatalf("identity after %s: %v", k.Name, err)
			}
			if der, _ := x509.MarshalPKCS8PrivateKey(key); !bytes.Equal(der, keyDER) {
				t.Error("the unit's key changed")
			}
			if c, err := s.Certificate(); err != nil || !bytes.Equal(c, cert) {
				t.Errorf("the unit's certificate changed (%v)", err)
			}
			note, _ := RepairNote(path)
			if k.Name == "undamaged (control)" {
				if r != nil || note != nil {
					t.Errorf("a sound file was repaired: %+v", r)
				}
				if _, err := s.Parent(); err != nil {
					t.Errorf("a sound file lost its pairing: %v", err)
				}
				return
			}
			if r == nil || r.Reason == "" || r.MovedTo == "" {
				t.Fatalf("Repair = %+v, want the reason and where the file went", r)
			}
			if kept, err := os.ReadFile(r.MovedTo); err != nil || !bytes.Equal(kept, damaged) {
				t.Errorf("the damaged file was not kept as it was at %s (%v)", r.MovedTo, err)
			}
			if _, err := s.Parent(); !errors.Is(err, ErrNotPaired) {
				t.Errorf("Parent() after repair err = %v, want ErrNotPaired", err)
			}
			if p, _ := s.UnpairPending(); !p {
				t.Error("the fresh file is not marked unpair-pending: the server would not be told")
			}
			if note == nil || note.Reason != r.Reason || note.MovedTo != r.MovedTo {
				t.Errorf("repair note = %+v, want %+v", note, r)
			}
			if err := s.Check(); err != nil {
				t.Errorf("the fresh file fails its check: %v", err)
			}
		})
	}
}

// TestOpenDamagedLeavesItAlone: Open (a technician's command) reports the
// damage and moves nothing.
func TestOpenDamagedLeavesItAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "terminal.db")
	paired(t, path)
	boltfiletest.Kinds()[0].Damage(t, path)
	if s, err := Open(path); !errors.Is(err, ErrDamaged) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a damaged file err = %v, want ErrDamaged", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("Open moved the damaged file: %v", err)
	}
}

// legacy writes key and certificate into the state file, as units from
// before the identity file kept them, and removes the identity file.
func legacy(t *testing.T, path string) (keyDER, cert []byte) {
	t.Helper()
	s := open(t, path)
	key, cert := newIdentity(t)
	keyDER, _ = x509.MarshalPKCS8PrivateKey(key)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdentity)
		if err := b.Put(keyDeviceKey, keyDER); err != nil {
			return err
		}
		return b.Put(keyDeviceCert, cert)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		s.AppendCall(CallRecord{CallID: fmt.Sprintf("call-%03d-with-a-long-enough-id", i), Outcome: "missed"})
	}
	s.Close()
	os.Remove(IdentityPath(path))
	return keyDER, cert
}

// TestMigrateIdentity: a state file that holds the identity keeps working;
// the first Open moves it into the identity file (read-only) and out of the
// state file; a crash after the file was written and before the state file
// forgot it (both hold it) is finished by the next Open.
func TestMigrateIdentity(t *testing.T) {
	for _, crashed := range []bool{false, true} {
		t.Run(fmt.Sprintf("crashed mid-move=%v", crashed), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "terminal.db")
			keyDER, cert := legacy(t, path)
			if crashed {
				k, _ := x509.ParsePKCS8PrivateKey(keyDER)
				id := parseLegacy(keyDER, cert)
				if id == nil || k == nil {
					t.Fatal("legacy identity does not parse")
				}
				if err := writeIdentityFile(IdentityPath(path), id.key, id.cert); err != nil {
					t.Fatal(err)
				}
			}
			s := open(t, path)
			c, err := s.Certificate()
			if err != nil || !bytes.Equal(c, cert) {
				t.Fatalf("certificate after the move: %v", err)
			}
			var left [][]byte
			s.db.View(func(tx *bolt.Tx) error {
				k, c := legacyIdentity(tx)
				left = [][]byte{k, c}
				return nil
			})
			s.Close()
			if left[0] != nil || left[1] != nil {
				t.Error("the state file still holds the identity after the move")
			}
			info, err := os.Stat(IdentityPath(path))
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o400 {
				t.Errorf("identity file mode %o, want 0400", info.Mode().Perm())
			}
			s = open(t, path)
			defer s.Close()
			if c, err := s.Certificate(); err != nil || !bytes.Equal(c, cert) {
				t.Errorf("certificate after a second open: %v", err)
			}
		})
	}
}

// TestRepairRescuesLegacyIdentity: a unit from before the identity file
// whose state file is damaged keeps its identity when it can still be read.
func TestRepairRescuesLegacyIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "terminal.db")
	_, cert := legacy(t, path)
	pg, psz := boltfiletest.DataPage(t, path)
	boltfiletest.OverwritePage(t, path, pg, psz)
	s, r, err := OpenOrRepair(path, IdentityPath(path), repairNow)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r == nil || !r.IdentitySalvaged {
		t.Fatalf("Repair = %+v, want the identity salvaged", r)
	}
	if c, err := s.Certificate(); err != nil || !bytes.Equal(c, cert) {
		t.Errorf("certificate after repair: %v", err)
	}
}

// TestImportWritesIdentityFileOnly: a provisioned key is in the identity
// file and nowhere in the state file, which damage can reach.
func TestImportWritesIdentityFileOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "terminal.db")
	s := open(t, path)
	key, _ := provision(t, s)
	s.Close()
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	state, _ := os.ReadFile(path)
	if bytes.Contains(state, der[len(der)-32:]) {
		t.Error("the device key is in the state file")
	}
	if _, err := os.Stat(IdentityPath(path)); err != nil {
		t.Errorf("no identity file: %v", err)
	}
}

// TestFactoryResetClearsRepairNote: after a reset the unit is simply
// unpaired, no longer "needs repair".
func TestFactoryResetClearsRepairNote(t *testing.T) {
	path := filepath.Join(t.TempDir(), "terminal.db")
	paired(t, path)
	boltfiletest.Kinds()[2].Damage(t, path)
	s, r, err := OpenOrRepair(path, IdentityPath(path), repairNow)
	if err != nil || r == nil {
		t.Fatalf("repair: %v, %+v", err, r)
	}
	defer s.Close()
	if err := s.FactoryReset(); err != nil {
		t.Fatal(err)
	}
	if n, _ := RepairNote(path); n != nil {
		t.Errorf("repair note after a factory reset: %+v", n)
	}
}
