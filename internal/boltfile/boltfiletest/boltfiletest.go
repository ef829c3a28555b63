// Package boltfiletest damages bbolt files the ways disks and power cuts
// do, for the tests of the daemons that must survive them.
package boltfiletest

import (
	"math/rand/v2"
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Kind is one way of damaging a file.
type Kind struct {
	Name   string
	Damage func(t testing.TB, path string)
}

// Kinds are the damages the fault-injection run found fatal (issue 11):
// truncation to 8 KiB and to half (a write cut off), an empty file (a
// filesystem that lost it), random bytes over a data page (a bad block)
// and over both header pages. "Half" is half of the part in use (bbolt's
// high-water mark): bbolt grows a file ahead of its use, and a file cut
// only in its unused tail has lost nothing and opens as it was.
func Kinds() []Kind {
	return []Kind{
		{"truncated to 8 KiB", func(t testing.TB, path string) { truncate(t, path, 8<<10) }},
		{"truncated to half", func(t testing.TB, path string) { truncate(t, path, usedSize(t, path)/2) }},
		{"zero bytes", func(t testing.TB, path string) { truncate(t, path, 0) }},
		{"data page overwritten", func(t testing.TB, path string) {
			pg, psz := DataPage(t, path)
			overwrite(t, path, pg*psz, psz)
		}},
		{"header pages overwritten", func(t testing.TB, path string) {
			_, psz := DataPage(t, path)
			overwrite(t, path, 0, 2*psz)
		}},
	}
}

func size(t testing.TB, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// usedSize is the size of the pages in use, from the header.
func usedSize(t testing.TB, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

func truncate(t testing.TB, path string, n int64) {
	t.Helper()
	if n >= size(t, path) {
		t.Fatalf("boltfiletest: %s is only %d bytes: cannot truncate it to %d", path, size(t, path), n)
	}
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}

// Overwrite writes n random bytes (the same ones in every run) at off.
func overwrite(t testing.TB, path string, off, n int64) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, uint64(off)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// DataPage returns the root page of the file's largest top-level bucket
// that has a page of its own (a small bucket lives inline in its parent's
// page), and the page size. The file must not be open.
func DataPage(t testing.TB, path string) (pgid, pageSize int64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var best int
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if n := b.Stats().KeyN; b.Root() != 0 && n > best {
				best, pgid = n, int64(b.Root())
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if pgid == 0 {
		t.Fatalf("boltfiletest: %s has no bucket with a page of its own: put more in it", path)
	}
	return pgid, int64(db.Info().PageSize)
}

// OverwritePage writes random bytes over one page of a file, also one that
// is open: bbolt maps it shared, so an open database reads the bad page at
// its next look (a bad block that appears while the daemon runs).
func OverwritePage(t testing.TB, path string, pgid, pageSize int64) {
	t.Helper()
	overwrite(t, path, pgid*pageSize, pageSize)
}
