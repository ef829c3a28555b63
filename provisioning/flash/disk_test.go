package flash_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tuanju/tuanju/provisioning/flash"
	"github.com/tuanju/tuanju/provisioning/flash/flashtest"
)

// fakeSysfs lays out, under a temporary directory, the sysfs a technician's
// machine would show for disks whose device numbers are those of real loop
// devices: Inspect stats the real device, then reads the fake tree.
type fakeSysfs struct {
	t    *testing.T
	root string
}

func (f fakeSysfs) file(path, content string) {
	f.t.Helper()
	p := filepath.Join(f.root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// link makes /sys/dev/block/MAJ:MIN point at dir (relative to the root).
func (f fakeSysfs) link(dev, dir string) {
	f.t.Helper()
	p := filepath.Join(f.root, "dev/block", dev)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(f.root, dir), p); err != nil {
		f.t.Fatal(err)
	}
}

func devOf(t *testing.T, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
}

// TestInspect: what a technician's machine shows of a USB card reader
// (vendor and model; removable although its removable flag is 0, as many
// readers report), of an SD card in a laptop's slot, and of an internal
// NVMe disk (not removable); a mounted partition of the reader's card
// (its mount point, with a space, unescaped from mountinfo) is a refusal,
// and a partition named as the device is refused for the whole disk.
func TestInspect(t *testing.T) {
	flashtest.RequireLoop(t)
	disk, _ := flashtest.LoopFile(t, 8*mib, false)
	part, _ := flashtest.LoopFile(t, 4*mib, false)
	mountedAt := flashtest.Mount(t, part, filepath.Join(t.TempDir(), "My Card"))
	sd, _ := flashtest.LoopFile(t, 2*mib, false)
	nvme, _ := flashtest.LoopFile(t, 3*mib, false)

	fs := fakeSysfs{t, t.TempDir()}
	usb := "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0"
	fs.file(usb+"/vendor", "Generic ")
	fs.file(usb+"/model", "STORAGE DEVICE  ")
	fs.file(usb+"/block/sdx/size", "61067264")
	fs.file(usb+"/block/sdx/removable", "0")
	fs.file(usb+"/block/sdx/sdx1/partition", "1")
	fs.file(usb+"/block/sdx/sdx1/dev", devOf(t, part))
	if err := os.Symlink("../../../6:0:0:0", filepath.Join(fs.root, usb, "block/sdx/device")); err != nil {
		t.Fatal(err)
	}
	fs.link(devOf(t, disk), usb+"/block/sdx")
	fs.link(devOf(t, part), usb+"/block/sdx/sdx1")

	mmc := "devices/platform/soc/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa"
	fs.file(mmc+"/type", "SD")
	fs.file(mmc+"/name", "SC32G")
	fs.file(mmc+"/block/mmcblk0/size", "62333952")
	fs.file(mmc+"/block/mmcblk0/removable", "0")
	if err := os.Symlink("../../../mmc0:aaaa", filepath.Join(fs.root, mmc, "block/mmcblk0/device")); err != nil {
		t.Fatal(err)
	}
	fs.link(devOf(t, sd), mmc+"/block/mmcblk0")

	nv := "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1"
	fs.file(nv+"/size", "1000215216")
	fs.file(nv+"/removable", "0")
	fs.file(nv+"/device/model", "Samsung SSD 970 EVO Plus 500GB")
	fs.link(devOf(t, nvme), nv)

	h := flash.DefaultHost
	h.Sysfs = fs.root
	for _, tc := range []struct {
		dev       string
		model     string
		bus       string
		size      int64
		removable bool
		parts     []string
		refusals  []error
		say       string
	}{
		{disk, "Generic STORAGE DEVICE", "usb", 61067264 * 512, true, []string{"sdx1"}, []error{flash.ErrInUse}, "/dev/sdx1 mounted on " + mountedAt},
		{sd, "SD/MMC SD SC32G", "sd", 62333952 * 512, true, nil, nil, ""},
		{nvme, "Samsung SSD 970 EVO Plus 500GB", "pci", 1000215216 * 512, false, nil, []error{flash.ErrNotRemovable}, "NOT removable"},
	} {
		d, err := h.Inspect(tc.dev)
		if err != nil {
			t.Fatalf("%s: %v", tc.dev, err)
		}
		if d.Model != tc.model || d.Bus != tc.bus || d.Size != tc.size || d.Removable != tc.removable || !slices.Equal(d.Partitions, tc.parts) || d.System {
			t.Errorf("%s: %+v", tc.dev, *d)
		}
		err = d.Check(flash.Allow{})
		for _, w := range tc.refusals {
			if !errors.Is(err, w) {
				t.Errorf("%s: check %v, want %v", d.Name, err, w)
			}
		}
		if len(tc.refusals) == 0 && err != nil {
			t.Errorf("%s: check %v", d.Name, err)
		}
		if !strings.Contains(err2s(err)+" "+d.String(), tc.say) {
			t.Errorf("%s: %q / %q does not say %q", d.Name, err, d.String(), tc.say)
		}
	}
	if _, err := h.Inspect(part); !errors.Is(err, flash.ErrPartition) || !strings.Contains(err.Error(), "give the whole disk, /dev/sdx") {
		t.Errorf("a partition: %v", err)
	}
}

func err2s(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
