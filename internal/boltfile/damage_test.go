package boltfile_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tuanju/tuanju/internal/boltfile"
	"github.com/tuanju/tuanju/internal/boltfile/boltfiletest"
)

// fill makes a file with enough in it that its bucket has pages of its own.
func fill(t *testing.T, path string) {
	t.Helper()
	db, err := boltfile.Open(path, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 10 {
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("data"))
			for j := range 40 {
				if err := b.Put(fmt.Appendf(nil, "key-%03d-%03d", i, j), make([]byte, 200)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenDamaged: every kind of damage is ErrDamaged at Open, with a
// reason, and the file is left as it was (no panic, no silent new file);
// an undamaged file of the same making opens (the control).
func TestOpenDamaged(t *testing.T) {
	kinds := append([]boltfiletest.Kind{{Name: "undamaged (control)", Damage: func(testing.TB, string) {}}}, boltfiletest.Kinds()...)
	for _, k := range kinds {
		t.Run(k.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			fill(t, path)
			k.Damage(t, path)
			before, _ := os.ReadFile(path)
			db, err := boltfile.Open(path, []byte("data"))
			if k.Name == "undamaged (control)" {
				if err != nil {
					t.Fatalf("Open of a sound file: %v", err)
				}
				db.Close()
				return
			}
			if err == nil {
				db.Close()
				t.Fatal("Open of a damaged file succeeded")
			}
			var de *boltfile.DamageError
			if !errors.Is(err, boltfile.ErrDamaged) || !errors.As(err, &de) || de.Reason() == "" {
				t.Fatalf("Open err = %v, want a *DamageError with a reason", err)
			}
			after, _ := os.ReadFile(path)
			if string(before) != string(after) {
				t.Error("Open changed the damaged file: it is the technician's evidence")
			}
			if db, err := boltfile.OpenReadOnly(path); !errors.Is(err, boltfile.ErrDamaged) {
				if db != nil {
					db.Close()
				}
				t.Errorf("OpenReadOnly err = %v, want ErrDamaged", err)
			}
		})
	}
}

// TestOpenNewIsAtomic: where no file exists one is made, with its buckets,
// and no temporary file is left beside it.
func TestOpenNewIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	db, err := boltfile.Open(path, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Open, want only the file", len(entries))
	}
}

// TestReadMeetsBadPage: a page that goes bad while the file is open makes
// the next read an error wrapping ErrDamaged, not a panic, and the file
// still answers afterwards.
func TestReadMeetsBadPage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	fill(t, path)
	pg, psz := boltfiletest.DataPage(t, path)
	db, err := boltfile.Open(path, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	readAll := func() error {
		return db.View(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("data")).ForEach(func(k, v []byte) error { return nil })
		})
	}
	if err := readAll(); err != nil {
		t.Fatalf("read before the damage: %v", err)
	}
	boltfiletest.OverwritePage(t, path, pg, psz)
	for range 2 {
		if err := readAll(); !errors.Is(err, boltfile.ErrDamaged) {
			t.Fatalf("read of a bad page err = %v, want ErrDamaged", err)
		}
	}
	if err := db.View(func(tx *bolt.Tx) error { return nil }); err != nil {
		t.Errorf("the file no longer answers after a recovered panic: %v", err)
	}
}

// TestMoveAside keeps the damaged file under a dated name, never over an
// earlier one.
func TestMoveAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var moved []string
	for range 2 {
		if err := os.WriteFile(path, []byte("bad"), 0o600); err != nil {
			t.Fatal(err)
		}
		to, err := boltfile.MoveAside(path, now)
		if err != nil {
			t.Fatal(err)
		}
		moved = append(moved, to)
	}
	if moved[0] != path+".damaged-20260301T120000Z" || moved[1] != moved[0]+"-2" {
		t.Errorf("moved to %q, want %s.damaged-20260301T120000Z and -2", moved, path)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the damaged file is still at %s", path)
	}
}

// TestBackup writes a copy that opens and holds what the original holds,
// while the original stays open.
func TestBackup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	fill(t, path)
	db, err := boltfile.Open(path, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bak := filepath.Join(dir, "backup.db")
	if err := boltfile.Backup(db, bak); err != nil {
		t.Fatal(err)
	}
	cp, err := boltfile.OpenReadOnly(bak)
	if err != nil {
		t.Fatalf("the backup does not open: %v", err)
	}
	defer cp.Close()
	var n int
	cp.View(func(tx *bolt.Tx) error { n = tx.Bucket([]byte("data")).Stats().KeyN; return nil })
	if n != 400 {
		t.Errorf("backup holds %d keys, want 400", n)
	}
}

// TestEveryPageOverwritten overwrites each page of a file in turn with
// random bytes: Open never panics or faults, and reports every page that
// was in use as damage (a free page is fair to miss: nothing reads it).
func TestEveryPageOverwritten(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.db")
	fill(t, orig)
	clean, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	_, psz := boltfiletest.DataPage(t, orig)
	pages := int64(len(clean)) / psz
	var inUse, found int
	for pg := range pages {
		path := filepath.Join(dir, fmt.Sprintf("page-%d.db", pg))
		if err := os.WriteFile(path, clean, 0o600); err != nil {
			t.Fatal(err)
		}
		used := pageInUse(t, path, pg)
		boltfiletest.OverwritePage(t, path, pg, psz)
		db, err := boltfile.Open(path, []byte("data"))
		switch {
		case err == nil:
			db.Close()
			if used {
				t.Errorf("page %d (in use) overwritten: Open found nothing", pg)
			}
		case errors.Is(err, boltfile.ErrDamaged):
			found++
		default:
			t.Errorf("page %d overwritten: Open err = %v, want ErrDamaged", pg, err)
		}
		if used {
			inUse++
		}
	}
	t.Logf("%d pages, %d in use; damage reported for %d", pages, inUse, found)
}

// pageInUse reports whether page pg is a header, the free list or a branch
// or leaf page that is not free (bbolt's tx.Page).
func pageInUse(t *testing.T, path string, pg int64) bool {
	t.Helper()
	if pg < 2 {
		return true
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	used := false
	db.View(func(tx *bolt.Tx) error {
		info, _ := tx.Page(int(pg))
		used = info != nil && (info.Type == "branch" || info.Type == "leaf" || info.Type == "meta" || info.Type == "freelist")
		return nil
	})
	return used
}
