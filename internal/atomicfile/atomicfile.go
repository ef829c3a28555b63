// Package atomicfile replaces small files that matter (keys, secrets)
// atomically: a power cut leaves the old file or the new one, never a torn
// mix, and the new file has exactly the given mode whatever the umask or the
// old file's mode was, so a key file can never end up readable by others.
package atomicfile

import (
	"fmt"
	"os"

	"github.com/google/renameio/v2"
)

// WriteFile writes data to a temporary file beside path, fsyncs it, sets
// mode and renames it over path.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	f, err := renameio.NewPendingFile(path, renameio.WithStaticPermissions(mode))
	if err != nil {
		return fmt.Errorf("atomicfile: %s: %w", path, err)
	}
	defer f.Cleanup() // no-op after the replace
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: %s: %w", path, err)
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("atomicfile: %s: %w", path, err)
	}
	return nil
}
