package boltfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tuanju/tuanju/internal/boltfile"
)

func TestOpen(t *testing.T) {
	tests := []struct {
		name     string
		existing os.FileMode // 0: no file before Open
	}{
		{"new file", 0},
		{"existing file with a wider mode", 0o644},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			if tc.existing != 0 {
				db, err := bolt.Open(path, tc.existing, nil)
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
				if err := os.Chmod(path, tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			db, err := boltfile.Open(path, []byte("a"), []byte("b"))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer db.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("mode %v, want 0600", got)
			}
			err = db.View(func(tx *bolt.Tx) error {
				for _, b := range []string{"a", "b"} {
					if tx.Bucket([]byte(b)) == nil {
						t.Errorf("bucket %q missing", b)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A second opener waits LockTimeout and then fails, naming bbolt's timeout,
// rather than hanging behind a running process.
func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := boltfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = boltfile.Open(path)
	if !errors.Is(err, bolterrors.ErrTimeout) {
		t.Fatalf("second Open: %v, want ErrTimeout", err)
	}
}
