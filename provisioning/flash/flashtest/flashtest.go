// Package flashtest makes what flashing tests need: a small GPT image in
// the terminal's layout, a signed bundle, and loop devices to flash, all
// cleaned up when the test ends.
package flashtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"golang.org/x/sys/unix"

	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/signing"
)

const mib = 1 << 20

// ImageOptions shape a test image. Zero values are the small defaults.
type ImageOptions struct {
	// RootSize is each root slot's size (default 1 MiB); the benchmark
	// makes them large.
	RootSize int64
	// ProvisioningSize is the provisioning partition's (default 1 MiB).
	ProvisioningSize int64
	// ProvisioningName replaces "provisioning" (an image without one).
	ProvisioningName string
}

// Image writes a GPT image in the terminal's layout at path: boot, rootA,
// rootB, provisioning, data, from 1 MiB on as genimage lays them out. The
// partitions hold pseudo-random bytes (the same for the same options) but
// provisioning, which is zero as in a real image. It returns the table.
func Image(t testing.TB, path string, o ImageOptions) *gpt.Table {
	t.Helper()
	if o.RootSize == 0 {
		o.RootSize = mib
	}
	if o.ProvisioningSize == 0 {
		o.ProvisioningSize = mib
	}
	if o.ProvisioningName == "" {
		o.ProvisioningName = "provisioning"
	}
	parts := []struct {
		name string
		typ  gpt.Type
		size int64
	}{
		{"boot", gpt.EFISystemPartition, mib},
		{"rootA", gpt.LinuxFilesystem, o.RootSize},
		{"rootB", gpt.LinuxFilesystem, o.RootSize},
		{o.ProvisioningName, gpt.LinuxFilesystem, o.ProvisioningSize},
		{"data", gpt.LinuxFilesystem, mib},
	}
	tbl := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, GUID: "5B0A3C5E-5C1B-4C2E-9C1A-0123456789AB"}
	start := int64(mib)
	for i, p := range parts {
		tbl.Partitions = append(tbl.Partitions, &gpt.Partition{
			Index: i + 1, Start: uint64(start / 512), End: uint64((start+p.size)/512 - 1), Size: uint64(p.size),
			Type: p.typ, Name: p.name, GUID: fmt.Sprintf("6E6F6465-0000-4000-8000-00000000000%d", i+1),
		})
		start += p.size
	}
	size := start + mib // room for the backup GPT
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, mib)
	for _, p := range tbl.Partitions {
		if p.Name == o.ProvisioningName {
			continue
		}
		for off := int64(p.Start) * 512; off < int64(p.End+1)*512; off += mib {
			rng.Read(buf)
			if _, err := f.WriteAt(buf[:min(mib, int64(p.End+1)*512-off)], off); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tbl.Write(f, size); err != nil {
		t.Fatalf("flashtest: GPT: %v", err)
	}
	return tbl
}

// Bundle returns a signed bundle for one unit and the programme key that
// signed it.
func Bundle(t testing.TB, key *signing.Key) []byte {
	t.Helper()
	b, err := bundle.Encode(bundle.Unit{
		Unit: "B1-00001", DeviceID: "dev-0123456789abcdef", Batch: "B1", Site: "第1小学", Region: "河北",
		IssuedAt: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), Identity: "-----BEGIN TEST-----\n-----END TEST-----\n",
		PairingSecret: "secret-for-tests", Settings: bundle.Settings{ServerURL: "ws://127.0.0.1:1/ws", PublicURL: "http://127.0.0.1:1", TimeZone: "Asia/Shanghai", Language: "zh-CN"},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Key returns a new programme signing key.
func Key(t testing.TB) *signing.Key {
	t.Helper()
	k, err := signing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// RequireLoop skips a test on a machine without loop devices or without
// the right to attach them; with TUANJU_REQUIRE_LOOP=1 (CI) it fails
// instead, so the flashing tests cannot silently stop running there.
func RequireLoop(t testing.TB) {
	t.Helper()
	why := ""
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		why = "no /dev/loop-control (loop devices): " + err.Error()
	} else if os.Geteuid() != 0 {
		why = "attaching loop devices needs root"
	} else if _, err := exec.LookPath("losetup"); err != nil {
		why = "no losetup (util-linux)"
	}
	if why == "" {
		return
	}
	if os.Getenv("TUANJU_REQUIRE_LOOP") == "1" {
		t.Fatalf("flashtest: %s, and TUANJU_REQUIRE_LOOP=1", why)
	}
	t.Skipf("flashtest: %s (TUANJU_REQUIRE_LOOP=1 makes this a failure)", why)
}

// run runs a command with a bound on its time.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Loop attaches a loop device to file (with partition scanning when
// partscan) and detaches it when the test ends.
func Loop(t testing.TB, file string, partscan bool) string {
	t.Helper()
	args := []string{"--find", "--show"}
	if partscan {
		args = append(args, "--partscan")
	}
	dev, err := run("losetup", append(args, file)...)
	if err != nil {
		t.Fatalf("flashtest: %v", err)
	}
	t.Cleanup(func() {
		if out, err := run("losetup", "--detach", dev); err != nil {
			t.Errorf("flashtest: detach %s: %v %s", dev, err, out)
		}
	})
	return dev
}

// LoopFile makes a zero-filled (sparse) file of size bytes in the test's
// directory and attaches a loop device to it: a blank card.
func LoopFile(t testing.TB, size int64, partscan bool) (dev, file string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), fmt.Sprintf("card-%d.img", size))
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return Loop(t, file, partscan), file
}

// Partition waits (a generous bound) for the kernel to show partition n of
// a loop device and returns its path.
func Partition(t testing.TB, dev string, n int) string {
	t.Helper()
	p := fmt.Sprintf("%sp%d", dev, n)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("flashtest: %s did not appear in 30 s", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// KernelReadsGPT reports whether this kernel shows a GPT disk's
// partitions: known from its config when /proc/config.gz exists, else
// from whether dev (a flashed loop device) shows partition 1. Some
// kernels (minimal VM kernels) have no partition support at all.
func KernelReadsGPT(t testing.TB, dev string) bool {
	t.Helper()
	part := fmt.Sprintf("/sys/class/block/%sp1", filepath.Base(dev))
	if cfg, err := run("sh", "-c", "zcat /proc/config.gz | grep -E '^(# )?CONFIG_EFI_PARTITION[ =]'"); err == nil && cfg != "" {
		return strings.HasSuffix(cfg, "=y")
	}
	_, err := os.Stat(part)
	return err == nil
}

// PartName is the GPT name the kernel shows for partition n of dev
// (PARTNAME in its uevent), as the unit's init finds it; "" if none.
func PartName(dev string, n int) string {
	b, err := os.ReadFile(fmt.Sprintf("/sys/class/block/%sp%d/uevent", filepath.Base(dev), n))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PARTNAME="); ok {
			return v
		}
	}
	return ""
}

// Mount makes an ext4 file system on dev, mounts it on dir (made if
// absent; "" is a new directory) and unmounts it when the test ends. It
// returns the directory.
func Mount(t testing.TB, dev, dir string) string {
	t.Helper()
	if _, err := run("mkfs.ext4", "-q", "-F", dev); err != nil {
		t.Fatalf("flashtest: %v", err)
	}
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dev, dir, "ext4", 0, ""); err != nil {
		t.Fatalf("flashtest: mount %s on %s: %v", dev, dir, err)
	}
	t.Cleanup(func() {
		// Busy only briefly, if at all: retry, then detach lazily.
		for range 50 {
			if err := unix.Unmount(dir, 0); err == nil || errors.Is(err, unix.EINVAL) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("flashtest: unmount %s: %v", dir, err)
		}
	})
	return dir
}
