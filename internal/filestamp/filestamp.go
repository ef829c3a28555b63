// Package filestamp tells whether a file changed since it was read, by its
// modification time and size: the check the server's files that are picked
// up without a restart (the TLS certificate, the revoked-units list) make
// before reading them again, and after, to catch a read that raced a write.
package filestamp

import (
	"fmt"
	"os"
	"time"
)

// Stamp is a file's modification time and size; equal stamps mean the file
// is taken to be unchanged.
type Stamp struct {
	mod  time.Time
	size int64
}

// Of stamps the file at path.
func Of(path string) (Stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Stamp{}, fmt.Errorf("filestamp: %w", err)
	}
	return Stamp{fi.ModTime(), fi.Size()}, nil
}
