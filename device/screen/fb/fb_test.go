package fb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tuanju/tuanju/device"
)

// What the real device does is tested against the kernel's vfb in
// tests/vm/vmfb_test.go; here, the ways Open fails without one.
func TestOpenFailures(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "not-a-framebuffer")
	if err := os.WriteFile(regular, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		is   error
		says string
	}{
		{"no such device", filepath.Join(dir, "fb7"), device.ErrAbsent, "fb: open " + filepath.Join(dir, "fb7")},
		{"regular file", regular, syscall.ENOTTY, "FBIOGET_VSCREENINFO"},
		{"another device", "/dev/null", syscall.ENOTTY, "fb: open /dev/null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb, err := OpenWith(tt.path, Options{Console: filepath.Join(dir, "no-tty")})
			if err == nil {
				fb.Close()
				t.Fatalf("Open(%s) succeeded", tt.path)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("Open(%s) = %v, want it to wrap %v", tt.path, err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("Open(%s) = %q, want it to name the path and say %q", tt.path, err, tt.says)
			}
		})
	}
}
