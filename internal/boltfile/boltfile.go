// Package boltfile opens the bbolt files that the server's registry and the
// terminal's state live in, the same way for both: mode 0600 because each
// holds secrets (token hashes, the device's key), a bounded wait for the
// file lock so a second process fails instead of hanging, and the buckets
// created in one transaction so later code may assume they exist.
package boltfile

import (
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// LockTimeout is how long Open waits for another process to release the
// file before it gives up with bbolt's errors.ErrTimeout.
const LockTimeout = 2 * time.Second

// Open opens path, creating it if needed, and creates the buckets that are
// missing. The mode is set to 0600 also when the file existed with a wider
// one.
func Open(path string, buckets ...[]byte) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: LockTimeout})
	if err != nil {
		return nil, fmt.Errorf("boltfile: open %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("boltfile: chmod %s: %w", path, err)
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
