package boltfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged: the file is not a sound bbolt file (empty, no valid header,
// truncated, bad pages). Errors that wrap it are *DamageError at open and
// check, and a recovered panic in DB's transactions.
var ErrDamaged = errors.New("damaged")

// maxProblems is how many of bbolt's check findings a DamageError keeps: a
// file with one overwritten page can yield thousands, and the first say
// enough.
const maxProblems = 20

// DamageError says what is wrong with a damaged file.
type DamageError struct {
	Path string
	// Problems are bbolt's findings (or the panic, or "empty file"), at
	// most maxProblems; More counts the ones left out.
	Problems []string
	More     int
}

func (e *DamageError) Error() string {
	shown := e.Problems
	if len(shown) > 3 {
		shown = shown[:3]
	}
	s := fmt.Sprintf("boltfile: %s is damaged: %s", e.Path, strings.Join(shown, "; "))
	if n := len(e.Problems) - len(shown) + e.More; n > 0 {
		s += fmt.Sprintf(" (and %d more problems)", n)
	}
	return s
}

func (e *DamageError) Unwrap() error { return ErrDamaged }

// Reason is the first problem, for a log line or a status.
func (e *DamageError) Reason() string {
	if len(e.Problems) == 0 {
		return "damaged"
	}
	return e.Problems[0]
}

// OpenReadOnly opens an existing file for reading only (a technician's
// check: `rendezvous check`), runs the same checks as Open, and never
// creates or changes a file.
func OpenReadOnly(path string) (*DB, error) {
	if _, err := os.Lstat(path); err != nil {
		return nil, fmt.Errorf("boltfile: open %s: %w", path, err)
	}
	return openExisting(path, true)
}

// openExisting opens a file that exists. bbolt would make a new database in
// an empty file, and panics (or faults on its memory map) on truncated ones
// and on bad pages: all of it is damage here, found before the file is
// used.
//
// The file is opened read-only first and checked; only a sound one is then
// opened for writing. bbolt's own check runs in a goroutine of its own,
// where a fault on the map (a page pointer past the end of the file) would
// kill the process past any recover, so the free list and every reachable
// page are read here first, in this goroutine, where a fault is a panic
// (debug.SetPanicOnFault) that recoverDamage turns into ErrDamaged. A panic
// inside bbolt's Open leaves that file mapped, and so its shared lock held,
// for the life of the process: harmless to a terminal that moves the file
// aside, and to a server that refuses to start.
func openExisting(path string, readOnly bool) (*DB, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("boltfile: open %s: %w", path, err)
	}
	if info.Size() == 0 {
		return nil, &DamageError{Path: path, Problems: []string{"empty file (0 bytes): a new one is only made where no file exists"}}
	}
	ro, err := openRaw(path, true)
	if err != nil {
		return nil, err
	}
	if err := check(ro, path); err != nil {
		ro.Close()
		return nil, err
	}
	if readOnly {
		return ro, nil
	}
	if err := ro.Close(); err != nil {
		return nil, fmt.Errorf("boltfile: open %s: %w", path, err)
	}
	return openRaw(path, false)
}

// openRaw is bolt.Open with the free list read at once, a panic recovered,
// and the errors sorted into damage and the rest.
func openRaw(path string, readOnly bool) (db *DB, err error) {
	defer recoverDamage(&err, path, "open")
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	raw, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: LockTimeout, ReadOnly: readOnly, PreLoadFreelist: true})
	switch {
	case err == nil:
		return &DB{DB: raw, path: path}, nil
	case notDamage(err):
		return nil, fmt.Errorf("boltfile: open %s: %w", path, err)
	default:
		return nil, &DamageError{Path: path, Problems: []string{"open: " + err.Error()}}
	}
}

// notDamage picks out the open errors that say nothing about the file's
// contents: another process holds it, or it may not be read.
func notDamage(err error) bool {
	return errors.Is(err, bolterrors.ErrTimeout) || errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist)
}

// check looks at the whole file: its size against the size its header
// gives, every reachable page (walk), then bbolt's consistency check.
func check(db *DB, path string) error {
	de := &DamageError{Path: path}
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("boltfile: check %s: %w", path, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Size() > info.Size() {
			return fmt.Errorf("truncated: the header gives %d bytes, the file has %d", tx.Size(), info.Size())
		}
		return walk(tx)
	})
	if err != nil {
		var inner *DamageError
		if errors.As(err, &inner) {
			return inner
		}
		de.Problems = append(de.Problems, err.Error())
		return de
	}
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			if len(de.Problems) < maxProblems {
				de.Problems = append(de.Problems, e.Error())
			} else {
				de.More++
			}
		}
		return nil
	})
	if err != nil {
		de.Problems = append(de.Problems, err.Error())
	}
	if len(de.Problems) > 0 {
		return de
	}
	return nil
}

// walk reads every bucket and key, so that every reachable branch and leaf
// page is read once in the caller's goroutine.
func walk(tx *bolt.Tx) error {
	return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walkBucket(b) })
}

func walkBucket(b *bolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if c := b.Bucket(k); c != nil {
				return walkBucket(c)
			}
		}
		return nil
	})
}

// Check runs bbolt's consistency check on an open file: nil, or a
// *DamageError.
func Check(db *DB) error { return check(db, db.path) }

// DB is an open bbolt file whose transactions turn a panic into an error
// wrapping ErrDamaged. bbolt panics on bad pages (a failed assertion, an
// index out of range) rather than return an error, and one bad page must
// cost the request that met it, not the server with every family on it.
// bbolt rolls the transaction back on the way out, so the file stays as
// it was.
type DB struct {
	*bolt.DB
	path string
}

// View is bolt.DB.View with a panic recovered.
func (db *DB) View(fn func(*bolt.Tx) error) (err error) {
	defer recoverDamage(&err, db.path, "read")
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return db.DB.View(fn)
}

// Update is bolt.DB.Update with a panic recovered.
func (db *DB) Update(fn func(*bolt.Tx) error) (err error) {
	defer recoverDamage(&err, db.path, "write")
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return db.DB.Update(fn)
}

// Batch is bolt.DB.Batch with a panic recovered (bbolt already recovers
// one in fn, and then runs fn again alone, outside its recover).
func (db *DB) Batch(fn func(*bolt.Tx) error) (err error) {
	defer recoverDamage(&err, db.path, "write")
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return db.DB.Batch(fn)
}

// recoverDamage turns a panic into an error wrapping ErrDamaged. The
// callers also set debug.SetPanicOnFault for their goroutine while bbolt
// runs, so a fault on the memory map (a page past the end of a truncated
// file) is a panic caught here rather than a crash past any recover.
func recoverDamage(err *error, path, op string) {
	if r := recover(); r != nil {
		*err = &DamageError{Path: path, Problems: []string{fmt.Sprintf("%s: bbolt panicked: %v", op, r)}}
	}
}

// MoveAside renames a damaged file out of the way, keeping it for the
// technician: path.damaged-20060102T150405Z (UTC; -2, -3 … when that
// exists), the directory synced. It returns the new name.
func MoveAside(path string, now time.Time) (string, error) {
	base := path + ".damaged-" + now.UTC().Format("20060102T150405Z")
	to := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		to = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("boltfile: move %s aside: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("boltfile: move %s aside: %w", path, err)
	}
	return to, nil
}

// Salvage runs fn over a damaged file, read-only, unchecked, with a panic
// recovered: to rescue what can still be read (the terminal's identity, on
// a unit from before the identity file) before the file is moved aside.
func Salvage(path string, fn func(*bolt.Tx) error) error {
	if info, err := os.Stat(path); err != nil || info.Size() == 0 {
		return &DamageError{Path: path, Problems: []string{"nothing to salvage"}}
	}
	db, err := openRaw(path, true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}
