package rendezvous_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/boltfile/boltfiletest"
	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// registry makes a registry of 40 paired families with a call log each,
// closed, and returns one of its devices.
func registry(t *testing.T, path string) string {
	t.Helper()
	st := try(rendezvous.OpenStore(path)).must(t)
	defer st.Close()
	now := time.Unix(1_800_000_000, 0).UTC()
	var dev string
	for i := range 40 {
		dev = protocol.NewID()
		parent := protocol.NewID()
		try(st.RegisterDevice(dev, []byte(fmt.Sprintf("key-%d", i)), "", now)).must(t)
		check(t, st.CreatePairing(dev, parent, make([]byte, 32), "", now))
		for j := range 3 {
			check(t, st.PutCall(parent, protocol.CallRecord{CallID: protocol.NewID(), Direction: protocol.DirFromTerminal,
				StartedAt: now.Add(time.Duration(j) * time.Minute), Outcome: protocol.OutcomeMissed}))
		}
	}
	return dev
}

// TestOpenStoreRefusesDamage: the server's registry, damaged each way the
// fault-injection run found (issue 11), is refused at open with the way
// out named, without a panic; CheckRegistry reports it; a sound one (the
// control) opens and checks clean. Before the fix a zero-byte file opened
// as an empty registry and the others panicked.
func TestOpenStoreRefusesDamage(t *testing.T) {
	kinds := append([]boltfiletest.Kind{{Name: "undamaged (control)", Damage: func(testing.TB, string) {}}}, boltfiletest.Kinds()...)
	for _, k := range kinds {
		t.Run(k.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), rendezvous.RegistryFile)
			registry(t, path)
			k.Damage(t, path)
			st, err := rendezvous.OpenStore(path)
			if k.Name == "undamaged (control)" {
				if err != nil {
					t.Fatalf("OpenStore of a sound registry: %v", err)
				}
				st.Close()
				if rep, cerr := rendezvous.CheckRegistry(path); cerr != nil || !rep.OK() || rep.Pairings != 40 {
					t.Errorf("CheckRegistry of a sound registry = %+v, %v", rep, cerr)
				}
				return
			}
			_, cerr := rendezvous.CheckRegistry(path)
			if err == nil {
				st.Close()
				t.Fatal("OpenStore of a damaged registry succeeded")
			}
			if !errors.Is(err, rendezvous.ErrDamaged) || !strings.Contains(err.Error(), "rendezvous check") || !strings.Contains(err.Error(), "rendezvous restore") {
				t.Errorf("OpenStore err = %v, want ErrDamaged naming check and restore", err)
			}
			if !errors.Is(cerr, rendezvous.ErrDamaged) {
				t.Errorf("CheckRegistry err = %v, want ErrDamaged", cerr)
			}
		})
	}
}

// TestStoreBadPageIsAnError: a page that goes bad under a running server
// makes the requests that read it fail, not panic (before the fix every
// login panicked), and the others go on.
func TestStoreBadPageIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), rendezvous.RegistryFile)
	registry(t, path)
	pg, psz := boltfiletest.DataPage(t, path)
	st := try(rendezvous.OpenStore(path)).must(t)
	defer st.Close()
	boltfiletest.OverwritePage(t, path, pg, psz)
	now := time.Unix(1_800_000_100, 0).UTC()
	var failed int
	for i := range 5 {
		if _, err := st.RegisterDevice(protocol.NewID(), []byte(fmt.Sprintf("new-%d", i)), "", now); err != nil {
			if !errors.Is(err, rendezvous.ErrDamaged) {
				t.Errorf("login on a bad page err = %v, want ErrDamaged", err)
			}
			failed++
		}
		if _, err := st.Device(protocol.NewID()); err != nil && !errors.Is(err, rendezvous.ErrNotFound) && !errors.Is(err, rendezvous.ErrDamaged) {
			t.Errorf("device lookup on a bad page err = %v", err)
		}
	}
	t.Logf("%d of 5 logins failed with ErrDamaged, none panicked", failed)
}

// TestBackupRestore: a backup of a sound registry checks clean and
// restores over a damaged one, which is kept; a damaged registry is never
// backed up, and a damaged backup never restored.
func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, rendezvous.RegistryFile)
	dev := registry(t, path)
	bak := filepath.Join(dir, "backup.db")
	check(t, rendezvous.BackupRegistry(path, bak))
	boltfiletest.Kinds()[1].Damage(t, path) // truncated to half
	if err := rendezvous.BackupRegistry(path, filepath.Join(dir, "bad-backup.db")); !errors.Is(err, rendezvous.ErrDamaged) {
		t.Errorf("backup of a damaged registry err = %v, want ErrDamaged", err)
	}
	if _, err := rendezvous.RestoreRegistry(path, path, time.Now()); err == nil {
		t.Error("a damaged file was restored")
	}
	replaced, err := rendezvous.RestoreRegistry(path, bak, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if replaced != path+".replaced-20260501T000000Z" {
		t.Errorf("replaced registry kept as %q", replaced)
	}
	st := try(rendezvous.OpenStore(path)).must(t)
	defer st.Close()
	if _, err := st.ParentOf(dev); err != nil {
		t.Errorf("restored registry lost a pairing: %v", err)
	}
}

// TestAutomaticBackups: the running server backs its registry up at start
// and then every backup.every, keeps the newest backup.keep, and each is a
// registry `rendezvous restore` takes: a server started on one lets the
// family made before it in.
func TestAutomaticBackups(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.Backup = rendezvous.BackupConfig{Every: 100 * time.Millisecond, Keep: 2, Dir: dir}
	})
	srv.RequireStore(t) // backups are of the bbolt file; JetStream's replicas and backups are the cluster's
	f := newFamily(t, ctx, srv)
	start := srv.Metrics().BackupsWritten
	eventually(t, ctx, "backups made after the pairing", func() bool { return srv.Metrics().BackupsWritten >= start+3 })
	check(t, srv.Close())
	m := srv.Metrics()
	if m.BackupFailures != 0 || m.LastBackup == 0 {
		t.Fatalf("metrics %+v: want no failures and a last backup time", m)
	}
	backups, err := filepath.Glob(filepath.Join(dir, "rendezvous-*.db"))
	check(t, err)
	if len(backups) != 2 {
		t.Fatalf("%d backups kept after %d written, want keep = 2: %v", len(backups), m.BackupsWritten, backups)
	}
	rep, err := rendezvous.CheckRegistry(backups[1])
	if err != nil || !rep.OK() || rep.Pairings != 1 {
		t.Fatalf("newest backup: %+v, %v; want a clean registry with the one pairing", rep, err)
	}
	data := t.TempDir()
	if _, err := rendezvous.RestoreRegistry(filepath.Join(data, rendezvous.RegistryFile), backups[1], time.Now()); err != nil {
		t.Fatal(err)
	}
	again := rt.NewServer(t, func(c *rendezvous.Config) { c.DataDir = data })
	p, _, err := rt.DialParent(ctx, again.WSURL, f.creds.ParentID, f.creds.Token)
	if err != nil {
		t.Fatalf("the parent's login on the restored registry: %v", err)
	}
	p.Close()
}
