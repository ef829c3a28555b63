// Package boltfile opens the bbolt files that the server's registry and the
// terminal's state live in, the same way for both: mode 0600 because each
// holds secrets (token hashes, the device's key), a bounded wait for the
// file lock so a second process fails instead of hanging, and the buckets
// created in one transaction so later code may assume they exist.
//
// It also keeps a damaged file from taking a daemon down (damage.go): a
// file that is empty, header-less, truncated or holds bad pages is reported
// as ErrDamaged at open, after bbolt's own consistency check, instead of
// being silently replaced by an empty one or panicking; and a read that
// meets a bad page later is an error for that one request (DB), not a
// crash.
package boltfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"
	bolt "go.etcd.io/bbolt"
)

// LockTimeout is how long Open waits for another process to release the
// file before it gives up with bbolt's errors.ErrTimeout.
const LockTimeout = 2 * time.Second

// Open opens path and creates the buckets that are missing. The mode is set
// to 0600 also when the file existed with a wider one.
//
// A new file is made only where no file exists, and atomically (made
// beside path with its buckets, synced, renamed), so any file found at path
// was once complete: an existing file that is empty, has no valid header,
// holds none of the buckets, fails bbolt's consistency check (tx.Check) or
// makes bbolt panic is reported with an error wrapping ErrDamaged, and left
// as it is. What to do with it is the caller's: the terminal moves it aside
// (MoveAside), the server refuses to start.
func Open(path string, buckets ...[]byte) (*DB, error) {
	switch _, err := os.Lstat(path); {
	case errors.Is(err, fs.ErrNotExist):
		if err := create(path, buckets); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("boltfile: open %s: %w", path, err)
	}
	db, err := openExisting(path, false)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("boltfile: chmod %s: %w", path, err)
	}
	// Only a file missing a bucket is written to: a write transaction
	// commits pages even when it changes nothing, and on a full disk that
	// commit fails, which must not keep a daemon from starting.
	missing := false
	if err := db.View(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			missing = missing || tx.Bucket(b) == nil
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("boltfile: read %s: %w", path, err)
	}
	if !missing {
		return db, nil
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltfile: create buckets in %s: %w", path, err)
	}
	return db, nil
}

// create makes a new bbolt file at path with buckets: beside it first,
// then renamed into place and the directory synced, so a crash leaves no
// file or a complete one, never an empty one that would later look damaged.
func create(path string, buckets [][]byte) error {
	tmp := fmt.Sprintf("%s.new-%d", path, os.Getpid())
	os.Remove(tmp) // a leftover of a crash here
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: LockTimeout})
	if err != nil {
		return fmt.Errorf("boltfile: create %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("boltfile: create %s: %w", path, err)
	}
	return nil
}

// Backup writes a consistent copy of db to path (bbolt's tx.WriteTo in one
// read transaction, beside path, synced, renamed into place), mode 0600.
// Writers go on meanwhile; the copy is the state of one moment.
func Backup(db *DB, path string) error {
	f, err := renameio.NewPendingFile(path, renameio.WithStaticPermissions(0o600))
	if err != nil {
		return fmt.Errorf("boltfile: backup to %s: %w", path, err)
	}
	defer f.Cleanup()
	err = db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	})
	if err != nil {
		return fmt.Errorf("boltfile: backup to %s: %w", path, err)
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("boltfile: backup to %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("boltfile: backup to %s: %w", path, err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
