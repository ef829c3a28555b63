package rendezvous

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tuanju/tuanju/internal/boltfile"
)

// RegistryFile is the registry's name in the data directory.
const RegistryFile = "rendezvous.db"

// recoveryHint is what a refused start tells the operator (docs, "Operations").
const recoveryHint = "keep the file as it is, run `rendezvous check` for the report, then restore the last backup with `rendezvous restore FILE` (see README, Operations)"

// RegistryReport is what CheckRegistry found.
type RegistryReport struct {
	Path                                 string
	Devices, Parents, Pairings, CallLogs int
	// Problems are the registry's own inconsistencies (a pairing whose
	// parent is missing, a record that does not decode). bbolt's own
	// findings make CheckRegistry return an error instead.
	Problems []string
}

// OK reports whether nothing was found wrong.
func (r RegistryReport) OK() bool { return len(r.Problems) == 0 }

// WriteTo prints the report for the operator.
func (r RegistryReport) WriteTo(w io.Writer) (int64, error) {
	n, err := fmt.Fprintf(w, "%s: bbolt consistency check passed\n%d devices, %d parents, %d pairings, %d call logs\n",
		r.Path, r.Devices, r.Parents, r.Pairings, r.CallLogs)
	for _, p := range r.Problems {
		if err != nil {
			break
		}
		var m int
		m, err = fmt.Fprintf(w, "problem: %s\n", p)
		n += m
	}
	return int64(n), err
}

// CheckRegistry opens the registry at path read-only (the server must not
// hold it: it checks the file itself at every start), runs bbolt's
// consistency check (a damaged file is an error wrapping ErrDamaged, with
// its findings) and then the registry's own: every record decodes, every
// pairing names a registered device and a parent that names it back, every
// call log belongs to a parent.
func CheckRegistry(path string) (RegistryReport, error) {
	r := RegistryReport{Path: path}
	db, err := boltfile.OpenReadOnly(path)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return r, fmt.Errorf("rendezvous: check %s: the running server holds it (it checks the file at every start): %w", path, err)
	}
	if err != nil {
		return r, fmt.Errorf("rendezvous: check: %w", err)
	}
	defer db.Close()
	bad := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	err = db.View(func(tx *bolt.Tx) error {
		buckets := map[string]*bolt.Bucket{}
		for _, name := range [][]byte{bucketDevices, bucketParents, bucketPairings} {
			if buckets[string(name)] = tx.Bucket(name); buckets[string(name)] == nil {
				bad("bucket %q missing: not a registry, or an empty one", name)
			}
		}
		if !r.OK() {
			return nil
		}
		devices, parents, pairings := buckets["devices"], buckets["parents"], buckets["pairings"]
		devices.ForEach(func(k, v []byte) error {
			r.Devices++
			var d Device
			if err := json.Unmarshal(v, &d); err != nil || len(d.PublicKey) == 0 {
				bad("device %s: record does not decode or has no key (%v)", k, err)
			}
			return nil
		})
		parents.ForEach(func(k, v []byte) error {
			r.Parents++
			var p Parent
			if err := json.Unmarshal(v, &p); err != nil {
				bad("parent %s: record does not decode: %v", k, err)
				return nil
			}
			if got := pairings.Get([]byte(p.DeviceID)); string(got) != string(k) {
				bad("parent %s names device %s, whose pairing is %q", k, p.DeviceID, got)
			}
			return nil
		})
		pairings.ForEach(func(k, v []byte) error {
			r.Pairings++
			if devices.Get(k) == nil {
				bad("pairing of %s: device not registered", k)
			}
			if parents.Get(v) == nil {
				bad("pairing of %s: parent %s missing (the parent would be refused)", k, v)
			}
			return nil
		})
		// The call logs: call_log, or calls in a registry no server of
		// this version has opened yet (it moves them at its start).
		for _, name := range [][]byte{bucketCallLog, bucketCalls} {
			calls := tx.Bucket(name)
			if calls == nil {
				continue
			}
			calls.ForEach(func(k, v []byte) error {
				r.CallLogs++
				if v != nil || calls.Bucket(k) == nil {
					bad("call log %s: not a bucket", k)
				} else if parents.Get(k) == nil {
					bad("call log %s: no such parent", k)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("rendezvous: check: %w", err)
	}
	return r, nil
}

// BackupRegistry writes a consistent copy of the registry at path to out
// (bbolt's tx.WriteTo in one read transaction; synced, renamed into place).
// The server holds the registry while it runs, so this is for a stopped
// server; it checks the registry first and refuses to back up a damaged
// one (it would replace a good backup with it).
func BackupRegistry(path, out string) error {
	db, err := boltfile.OpenReadOnly(path)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("rendezvous: backup %s: the running server holds it: stop it for the backup (seconds; terminals reconnect by themselves): %w", path, err)
	}
	if err != nil {
		return fmt.Errorf("rendezvous: backup: %w", err)
	}
	defer db.Close()
	if err := boltfile.Backup(db, out); err != nil {
		return fmt.Errorf("rendezvous: %w", err)
	}
	return nil
}

// RestoreRegistry puts the backup from in place of the registry at path
// once it passes CheckRegistry with no problem. The file it replaces (if
// any) is kept beside it as path.replaced-<time>. The server must be
// stopped: a registry it holds is refused.
func RestoreRegistry(path, from string, now time.Time) (replaced string, err error) {
	rep, err := CheckRegistry(from)
	if err != nil {
		return "", fmt.Errorf("rendezvous: restore from %s: %w", from, err)
	}
	if !rep.OK() {
		return "", fmt.Errorf("rendezvous: restore from %s: the backup has problems: %q", from, rep.Problems)
	}
	if _, err := os.Stat(path); err == nil {
		if db, err := boltfile.OpenReadOnly(path); errors.Is(err, bolterrors.ErrTimeout) {
			return "", fmt.Errorf("rendezvous: restore: %s is held by a running server: stop it first: %w", path, err)
		} else if err == nil {
			db.Close()
		}
		replaced = path + ".replaced-" + now.UTC().Format("20060102T150405Z")
		if err := os.Rename(path, replaced); err != nil {
			return "", fmt.Errorf("rendezvous: restore: %w", err)
		}
	}
	b, err := os.ReadFile(from)
	if err == nil {
		err = renameio.WriteFile(path, b, 0o600)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(path)); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return replaced, fmt.Errorf("rendezvous: restore: %w", err)
	}
	return replaced, nil
}
