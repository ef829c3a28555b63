package flash

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxSize is the largest disk flashed without Allow.Large: 256 GiB, above
// every "256 GB" card and below most laptops' and desktops' own disks.
const MaxSize = 256 << 30

// Host is where the kernel tells about disks and mounts. The zero value is
// not useful: DefaultHost names the real files; tests point Root elsewhere
// (a directory mounted from a loop device plays the system's root).
type Host struct {
	Sysfs     string // /sys
	MountInfo string // /proc/self/mountinfo
	Swaps     string // /proc/swaps
	// Root is the running system's root directory: the disk it is on is
	// never flashed.
	Root string
}

// DefaultHost is this machine.
var DefaultHost = Host{Sysfs: "/sys", MountInfo: "/proc/self/mountinfo", Swaps: "/proc/swaps", Root: "/"}

// Disk is what the kernel says about a whole disk, read from sysfs and
// /proc when the technician names it.
type Disk struct {
	Path string // as given, e.g. /dev/sdb
	Name string // the kernel's, e.g. sdb
	Dev  string // major:minor
	// Size in bytes (sysfs size × 512); 0 is a reader without a card.
	Size int64
	// Model: vendor and model (USB, SCSI), the card's name (SD), or the
	// backing file (loop).
	Model string
	// Bus: usb, sd (an SD/MMC slot), loop, or what else the sysfs path
	// shows (pci, virtio, …).
	Bus string
	// Removable: the kernel's removable flag, or a disk on a USB bus or
	// an SD card in a slot (many USB readers report removable 0).
	Removable bool
	// Partitions are the kernel's names of the disk's partitions.
	Partitions []string
	// Uses are the disk's and its partitions' mount points, swap use and
	// holders (device-mapper, RAID): any is a refusal.
	Uses []string
	// System: the disk holds Host.Root.
	System bool
}

// Allow overrides the refusals that a careful technician may override.
type Allow struct {
	NonRemovable bool // e.g. --allow-non-removable
	Large        bool // e.g. --allow-large
}

// Inspect reads what the kernel says of the disk at path. It fails for a
// path that is not a block device or is a partition; the refusals a disk
// may earn are Check's.
func (h Host) Inspect(path string) (*Disk, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("flash: device %s: %w: %w", path, ErrNotBlockDevice, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, fmt.Errorf("flash: device %s: %w (give the card reader's disk, e.g. /dev/sdb; lsblk lists them)", path, ErrNotBlockDevice)
	}
	dev := devString(st.Rdev)
	sys, err := filepath.EvalSymlinks(filepath.Join(h.Sysfs, "dev/block", dev))
	if err != nil {
		return nil, fmt.Errorf("flash: device %s: sysfs: %w", path, err)
	}
	d := &Disk{Path: path, Name: filepath.Base(sys), Dev: dev}
	if exists(filepath.Join(sys, "partition")) {
		return nil, fmt.Errorf("flash: device %s: %s is %w of /dev/%s: give the whole disk, /dev/%s", path, d.Name, ErrPartition, filepath.Base(filepath.Dir(sys)), filepath.Base(filepath.Dir(sys)))
	}
	sectors, err := readInt(filepath.Join(sys, "size"))
	if err != nil {
		return nil, fmt.Errorf("flash: device %s: %w", path, err)
	}
	d.Size = sectors * 512 // sysfs counts 512-byte sectors whatever the disk's own
	d.Model, d.Bus = describe(sys)
	removable, _ := readInt(filepath.Join(sys, "removable"))
	d.Removable = removable == 1 || d.Bus == "usb" || d.Bus == "sd"

	devs := map[string]string{dev: d.Name} // major:minor → kernel name
	d.Uses = append(d.Uses, holders(sys, d.Name)...)
	entries, _ := os.ReadDir(sys)
	for _, e := range entries {
		p := filepath.Join(sys, e.Name())
		if !exists(filepath.Join(p, "partition")) {
			continue
		}
		d.Partitions = append(d.Partitions, e.Name())
		if pd, err := readString(filepath.Join(p, "dev")); err == nil {
			devs[pd] = e.Name()
		}
		d.Uses = append(d.Uses, holders(p, e.Name())...)
	}
	mounts, err := readMounts(h.MountInfo)
	if err != nil {
		return nil, fmt.Errorf("flash: device %s: %w", path, err)
	}
	for _, m := range mounts {
		if name, ok := devs[m.dev]; ok {
			d.Uses = append(d.Uses, fmt.Sprintf("/dev/%s mounted on %s", name, m.point))
		} else if name, ok := devs[sourceDev(m.source)]; ok {
			d.Uses = append(d.Uses, fmt.Sprintf("/dev/%s mounted on %s", name, m.point))
		}
	}
	for _, s := range readSwaps(h.Swaps) {
		if name, ok := devs[sourceDev(s)]; ok {
			d.Uses = append(d.Uses, fmt.Sprintf("/dev/%s is swap", name))
		}
	}
	system, err := h.systemDisks(mounts)
	if err != nil {
		return nil, fmt.Errorf("flash: device %s: %w", path, err)
	}
	d.System = slices.Contains(system, d.Name)
	return d, nil
}

// Check returns the refusals d earns, joined; nil when it may be flashed.
// A system disk and a disk in use are refused whatever allow says.
func (d *Disk) Check(allow Allow) error {
	var errs []error
	if d.System {
		errs = append(errs, fmt.Errorf("flash: %s is %w (it holds /)", d.Path, ErrSystemDisk))
	}
	if len(d.Uses) > 0 {
		errs = append(errs, fmt.Errorf("flash: %s is %w: %s (unmount it first)", d.Path, ErrInUse, strings.Join(d.Uses, "; ")))
	}
	if d.Size == 0 {
		errs = append(errs, fmt.Errorf("flash: %s: %w (is a card in the reader?)", d.Path, ErrNoMedium))
	}
	if !d.Removable && !allow.NonRemovable {
		errs = append(errs, fmt.Errorf("flash: %s (%s, %s) is %w: a card in a USB reader is; --allow-non-removable if you are sure", d.Path, d.Model, d.Bus, ErrNotRemovable))
	}
	if d.Size > MaxSize && !allow.Large {
		errs = append(errs, fmt.Errorf("flash: %s is %s, %w (%s): --allow-large if you are sure", d.Path, HumanSize(d.Size), ErrTooLarge, HumanSize(MaxSize)))
	}
	return errors.Join(errs...)
}

// String is the one line a technician checks before saying yes.
func (d *Disk) String() string {
	rm := "removable"
	if !d.Removable {
		rm = "NOT removable"
	}
	return fmt.Sprintf("%s: %s, %s (%d bytes), %s, %s", d.Path, d.Model, HumanSize(d.Size), d.Size, d.Bus, rm)
}

// HumanSize is n in GB (decimal, as cards are sold) and GiB.
func HumanSize(n int64) string {
	return fmt.Sprintf("%.1f GB / %.1f GiB", float64(n)/1e9, float64(n)/(1<<30))
}

// describe finds a disk's model and bus from its sysfs directory.
func describe(sys string) (model, bus string) {
	rd := func(name string) string { s, _ := readString(filepath.Join(sys, name)); return s }
	real, _ := filepath.EvalSymlinks(filepath.Join(sys, "device"))
	switch {
	case exists(filepath.Join(sys, "loop")):
		bus = "loop"
		model = "loop device"
		if f := rd("loop/backing_file"); f != "" {
			model += " of " + f
		}
		return model, bus
	case strings.Contains(real, "/usb"):
		bus = "usb"
	case strings.HasPrefix(filepath.Base(sys), "mmcblk"):
		bus = "mmc"
		if rd("device/type") == "SD" {
			bus = "sd"
		}
		return strings.TrimSpace("SD/MMC " + rd("device/type") + " " + rd("device/name")), bus
	case strings.Contains(real, "/virtio"):
		bus = "virtio"
	case strings.Contains(real, "/pci"):
		bus = "pci"
	default:
		bus = "other"
	}
	model = strings.Join(strings.Fields(rd("device/vendor")+" "+rd("device/model")), " ")
	if model == "" {
		model = "unknown model"
	}
	return model, bus
}

// holders lists what stacks on a disk or partition (dm, md).
func holders(sys, name string) []string {
	entries, _ := os.ReadDir(filepath.Join(sys, "holders"))
	var out []string
	for _, e := range entries {
		out = append(out, fmt.Sprintf("/dev/%s is held by %s", name, e.Name()))
	}
	return out
}

// systemDisks are the whole disks under Root: the disk of Root's
// filesystem (for btrfs and the like, whose device number is anonymous,
// the device its mount names), through device-mapper and RAID to the
// disks beneath.
func (h Host) systemDisks(mounts []mount) ([]string, error) {
	var st unix.Stat_t
	if err := unix.Stat(h.Root, &st); err != nil {
		return nil, fmt.Errorf("stat root %s: %w", h.Root, err)
	}
	devs := []string{devString(st.Dev)}
	if unix.Major(st.Dev) == 0 {
		// An anonymous device: take the source of the mount Root is on.
		root, _ := filepath.EvalSymlinks(h.Root)
		var best *mount
		for i, m := range mounts {
			under := root == m.point || strings.HasPrefix(root, strings.TrimSuffix(m.point, "/")+"/")
			if m.dev == devs[0] && under && (best == nil || len(m.point) >= len(best.point)) {
				best = &mounts[i]
			}
		}
		if best != nil {
			if d := sourceDev(best.source); d != "" {
				devs = append(devs, d)
			}
		}
	}
	var disks []string
	seen := map[string]bool{}
	var walk func(sys string)
	walk = func(sys string) {
		if seen[sys] {
			return
		}
		seen[sys] = true
		if exists(filepath.Join(sys, "partition")) {
			sys = filepath.Dir(sys)
		}
		slaves, _ := os.ReadDir(filepath.Join(sys, "slaves"))
		if len(slaves) == 0 {
			disks = append(disks, filepath.Base(sys))
		}
		for _, s := range slaves {
			if p, err := filepath.EvalSymlinks(filepath.Join(sys, "slaves", s.Name())); err == nil {
				walk(p)
			}
		}
	}
	for _, d := range devs {
		if sys, err := filepath.EvalSymlinks(filepath.Join(h.Sysfs, "dev/block", d)); err == nil {
			walk(sys)
		}
	}
	return disks, nil
}

type mount struct{ dev, point, source string }

// readMounts parses mountinfo (proc(5)): field 3 is major:minor, field 5
// the mount point, and after the " - " separator the type and source.
func readMounts(path string) ([]mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mounts: %w", err)
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, rest := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(rest) < 2 {
			continue
		}
		out = append(out, mount{dev: fields[2], point: unescape(fields[4]), source: unescape(rest[1])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mounts: %s: %w", path, err)
	}
	return out, nil
}

// readSwaps lists the swap files and devices of /proc/swaps.
func readSwaps(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); i > 0 && len(f) > 0 {
			out = append(out, unescape(f[0]))
		}
	}
	return out
}

// sourceDev is the major:minor of a mount's or swap's source when it is a
// block device; "" otherwise.
func sourceDev(source string) string {
	if !strings.HasPrefix(source, "/") {
		return ""
	}
	var st unix.Stat_t
	if unix.Stat(source, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return ""
	}
	return devString(st.Rdev)
}

// unescape undoes the octal escapes (\040 for a space) of /proc files.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func devString(rdev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

func readInt(path string) (int64, error) {
	s, err := readString(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}
