// Package filestamp tells whether a file changed since it was read, by its
// modification time and size: the check the server's files that are picked
// up without a restart (the TLS certificate, the revoked-units list) make
// before reading them again, and after, to catch a read that raced a write.
package filestamp

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// Stamp is a file's modification time, size and inode; equal stamps mean
// the file is taken to be unchanged. The inode makes a replacement by rename
// (how these files should be written) a change even when it has the old
// file's size and a time within the filesystem's granularity.
type Stamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

// Of stamps the file at path.
func Of(path string) (Stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Stamp{}, fmt.Errorf("filestamp: %w", err)
	}
	st := Stamp{mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st, nil
}
