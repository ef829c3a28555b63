package media

import (
	"os"
	"path/filepath"
	"slices"
)

// sysClassVideo is where the kernel lists video nodes (a variable so tests
// can point it at a tree of their own).
var sysClassVideo = "/sys/class/video4linux"

// siblingNodes returns the other video nodes of the device node belongs to,
// as /dev paths, sorted: those whose sysfs "device" link resolves to the
// same place. uvcvideo registers every node of one camera — each streaming
// interface and its metadata nodes — on the camera's control interface, and
// some H.264 cameras offer H.264 only on a second streaming interface, not
// on the node the driver lists first.
func siblingNodes(node string) []string {
	dev := func(name string) string {
		d, err := filepath.EvalSymlinks(filepath.Join(sysClassVideo, name, "device"))
		if err != nil {
			return ""
		}
		return d
	}
	self := filepath.Base(node)
	mine := dev(self)
	if mine == "" {
		return nil
	}
	entries, err := os.ReadDir(sysClassVideo)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if n := e.Name(); n != self && dev(n) == mine {
			out = append(out, filepath.Join("/dev", n))
		}
	}
	slices.Sort(out)
	return out
}
