package media

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSiblingNodes builds a sysfs-like tree: a UVC camera whose three nodes
// hang off one USB interface, a second camera, and a node with no device
// link (v4l2loopback's).
func TestSiblingNodes(t *testing.T) {
	root := t.TempDir()
	devs := filepath.Join(root, "devices")
	class := filepath.Join(root, "class")
	link := func(node, dev string) {
		t.Helper()
		d := filepath.Join(class, node)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if dev == "" {
			return
		}
		target := filepath.Join(devs, dev)
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(d, "device")); err != nil {
			t.Fatal(err)
		}
	}
	link("video0", "usb1/1-1/1-1:1.0")
	link("video1", "usb1/1-1/1-1:1.0")
	link("video2", "usb1/1-1/1-1:1.0")
	link("video3", "usb1/1-2/1-2:1.0")
	link("video10", "")
	old := sysClassVideo
	sysClassVideo = class
	defer func() { sysClassVideo = old }()

	tests := []struct {
		node string
		want []string
	}{
		{"/dev/video0", []string{"/dev/video1", "/dev/video2"}},
		{"/dev/video2", []string{"/dev/video0", "/dev/video1"}},
		{"/dev/video3", nil},
		{"/dev/video10", nil},
		{"/dev/video99", nil},
	}
	for _, tt := range tests {
		if got := siblingNodes(tt.node); !slices.Equal(got, tt.want) {
			t.Errorf("siblingNodes(%s) = %v, want %v", tt.node, got, tt.want)
		}
	}
}
