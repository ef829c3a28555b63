// Package buildroot_test checks the Buildroot external tree in buildroot/
// against the Buildroot release the project pins, offline: every defconfig
// loads, show-info lists what the terminal needs, the kernel fragments
// carry the options terminald uses, Buildroot's own linter passes our
// files, and every board's genimage.cfg has the common partition layout.
//
// The release is the vendored tarball ../shared/vendor/buildroot-<v>.tar.xz
// beside the repository (TUANJU_BUILDROOT_TARBALL names another); without it
// the Buildroot tests skip and say so. Everything else they need is a Debian
// package (.ci/run installs them): make, python3-magic, python3-flake8,
// shellcheck, and the host tools Buildroot's dependency check asks for
// (rsync, bc, unzip, wget, cpio, file, perl).
package buildroot_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Version is the Buildroot release the tree is written for (2026.02 LTS).
const Version = "2026.02.3"

// boards are the tree's defconfigs (configs/tuanju_<board>_defconfig) and
// the board-specific kernel option each must add: its watchdog driver; and
// for a board whose Wi-Fi the tree supports, its driver's options and
// firmware package (the Orange Pi Zero 2W's UWE5622 has no mainline
// driver; the QEMU board has no Wi-Fi).
var boards = []struct {
	name     string
	watchdog string
	wifi     []string
	packages []string
}{
	{"rpi_zero_2w", "CONFIG_BCM2835_WDT", []string{"CONFIG_CFG80211=m", "CONFIG_BRCMFMAC=m", "CONFIG_BRCMFMAC_SDIO=y"}, []string{"brcmfmac_sdio-firmware-rpi"}},
	{"orangepi_zero2w", "CONFIG_SUNXI_WATCHDOG", nil, nil},
	{"qemu_aarch64_virt", "CONFIG_I6300ESB_WDT", nil, nil},
}

// kernelOptions are what terminald needs of every board's kernel: the GPIO
// character device (button, LEDs), V4L2 and UVC (camera), ALSA (sound), the
// watchdog core, squashfs (the root slots) and ext4 (/data); and for mobile
// data, USB modems' serial ports (option, CDC ACM) and PPP on them.
var kernelOptions = []string{
	"CONFIG_GPIO_CDEV", "CONFIG_VIDEO_DEV", "CONFIG_USB_VIDEO_CLASS",
	"CONFIG_SND", "CONFIG_SND_USB_AUDIO", "CONFIG_WATCHDOG", "CONFIG_SQUASHFS",
	"CONFIG_EXT4_FS", "CONFIG_EFI_PARTITION",
	"CONFIG_USB_SERIAL", "CONFIG_USB_SERIAL_OPTION", "CONFIG_USB_ACM", "CONFIG_PPP", "CONFIG_PPP_ASYNC",
}

// packages are what show-info must list for every board.
var packages = []string{"terminald", "linux", "busybox", "e2fsprogs", "ca-certificates", "tzdata", "host-genimage", "host-squashfs", "wpa_supplicant", "pppd"}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// tarball is the vendored release, checked against SHA256SUMS beside it.
func tarball(t *testing.T) string {
	t.Helper()
	path := os.Getenv("TUANJU_BUILDROOT_TARBALL")
	if path == "" {
		path = filepath.Join(repoRoot(t), "..", "shared", "vendor", "buildroot-"+Version+".tar.xz")
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("TUANJU_REQUIRE_BUILDROOT") != "" {
			t.Fatalf("Buildroot %s not found at %s (%v): CI (TUANJU_REQUIRE_BUILDROOT) must run the Buildroot checks", Version, path, err)
		}
		t.Skipf("Buildroot %s not vendored (%v): set TUANJU_BUILDROOT_TARBALL to buildroot-%s.tar.xz to run the Buildroot checks", Version, err, Version)
	}
	sums, err := os.ReadFile(filepath.Join(filepath.Dir(path), "SHA256SUMS"))
	if err != nil {
		return path // a tarball named by hand need not come with sums
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(h.Sum(nil)) + "  " + filepath.Base(path)
	if !strings.Contains(string(sums), want) {
		t.Fatalf("%s does not match its SHA256SUMS (sha256 %s)", path, want)
	}
	return path
}

// unpack extracts the release once per test binary run.
var unpacked string

func buildroot(t *testing.T) string {
	t.Helper()
	tb := tarball(t)
	if unpacked != "" {
		return unpacked
	}
	dir, err := os.MkdirTemp("", "tuanju-buildroot-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xJf", tb, "-C", dir).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("unpack %s: %v\n%s", tb, err, out)
	}
	unpacked = filepath.Join(dir, "buildroot-"+Version)
	return unpacked
}

func TestMain(m *testing.M) {
	code := m.Run()
	if unpacked != "" {
		os.RemoveAll(filepath.Dir(unpacked))
	}
	os.Exit(code)
}

func brMake(t *testing.T, br string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-s"}, args...)...)
	cmd.Dir = br
	// Buildroot refuses to run with the first two set from outside. A make
	// this test runs under (make test, itself a sub-make of another) hands
	// its flags down in the others, -w among them: Buildroot's make would
	// then print "make[3]: Entering directory" into show-info's JSON.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool {
		for _, v := range []string{"CDPATH=", "PERL_MM_OPT=", "MAKEFLAGS=", "MFLAGS=", "MAKELEVEL=", "MAKEOVERRIDES="} {
			if strings.HasPrefix(e, v) {
				return true
			}
		}
		return false
	})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("make %s: %v\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// TestDefconfigs loads each board's defconfig with the external tree and
// checks what the configuration would build.
func TestDefconfigs(t *testing.T) {
	br := buildroot(t)
	external := filepath.Join(repoRoot(t), "buildroot")
	for _, b := range boards {
		t.Run(b.name, func(t *testing.T) {
			out := t.TempDir()
			brMake(t, br, "BR2_EXTERNAL="+external, "O="+out, "tuanju_"+b.name+"_defconfig")
			dotConfig, err := os.ReadFile(filepath.Join(out, ".config"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				"BR2_PACKAGE_TERMINALD=y", "BR2_TARGET_ROOTFS_SQUASHFS=y", "BR2_INIT_BUSYBOX=y",
				`BR2_ROOTFS_OVERLAY="$(BR2_EXTERNAL_TUANJU_PATH)/board/common/rootfs-overlay"`,
				"# BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW is not set",
				"BR2_PACKAGE_WPA_SUPPLICANT=y", "BR2_PACKAGE_WPA_SUPPLICANT_CLI=y", "BR2_PACKAGE_WPA_SUPPLICANT_NL80211=y",
				"BR2_PACKAGE_PPPD=y",
			} {
				if !bytes.Contains(dotConfig, []byte("\n"+want+"\n")) {
					t.Errorf(".config lacks %s", want)
				}
			}

			var info map[string]json.RawMessage
			if err := json.Unmarshal(brMake(t, br, "O="+out, "show-info"), &info); err != nil {
				t.Fatalf("show-info: %v", err)
			}
			for _, p := range append(slices.Clone(packages), b.packages...) {
				if _, ok := info[p]; !ok {
					t.Errorf("show-info does not list %s", p)
				}
			}
			var td struct {
				PackageDir string `json:"package_dir"`
			}
			if err := json.Unmarshal(info["terminald"], &td); err != nil || td.PackageDir != filepath.Join(external, "package", "terminald") {
				t.Errorf("terminald comes from %q (%v), want the external tree's package", td.PackageDir, err)
			}

			// The kernel options: in the fragments Buildroot merges into
			// the board's kernel configuration.
			vars := string(brMake(t, br, "O="+out, "printvars", "VARS=LINUX_KCONFIG_FRAGMENT_FILES"))
			files := strings.Fields(strings.TrimPrefix(strings.TrimSpace(vars), "LINUX_KCONFIG_FRAGMENT_FILES="))
			set := map[string]string{}
			for _, f := range files {
				for k, v := range readFragment(t, f) {
					set[k] = v
				}
			}
			for _, opt := range append(slices.Clone(kernelOptions), b.watchdog) {
				if set[opt] != "y" {
					t.Errorf("kernel option %s=%q, want y (fragments %v)", opt, set[opt], files)
				}
			}
			for _, kv := range b.wifi {
				if opt, want, _ := strings.Cut(kv, "="); set[opt] != want {
					t.Errorf("Wi-Fi kernel option %s=%q, want %s (fragments %v)", opt, set[opt], want, files)
				}
			}
		})
	}
}

// readFragment is a kernel config fragment's CONFIG_X=v lines.
func readFragment(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			m[k] = v
		}
	}
	return m
}

// TestCheckPackage runs Buildroot's linter on every file of the tree.
func TestCheckPackage(t *testing.T) {
	br := buildroot(t)
	for _, tool := range []string{"shellcheck"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install Debian's shellcheck, python3-magic and python3-flake8 (check-package needs them)", tool)
		}
	}
	external := filepath.Join(repoRoot(t), "buildroot")
	var files []string
	err := filepath.WalkDir(external, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if rel, _ := filepath.Rel(external, p); rel != "README.md" && !strings.HasPrefix(rel, "sim/") {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", append([]string{filepath.Join(br, "utils", "check-package"), "-b"}, files...)...)
	cmd.Dir = external
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("check-package: %v\n%s\n(it needs Debian's python3-magic, python3-flake8 and shellcheck)", err, out)
	}
	if !bytes.Contains(out, []byte("\n0 warnings generated\n")) {
		t.Errorf("check-package on %d files:\n%s", len(files), out)
	}
	t.Logf("check-package: %d files, %s", len(files), bytes.TrimSpace(out))
}

// partition is one partition of a genimage.cfg's disk.
type partition struct{ name, image, size string }

var (
	partRE = regexp.MustCompile(`(?s)\tpartition ([A-Za-z0-9_-]+) \{(.*?)\n\t\}`)
	keyRE  = regexp.MustCompile(`(?m)^\t\t([a-z-]+) = "?([^"\n]*)"?$`)
)

// layout is the disk image's partitions in order (in the partition table;
// a raw bootloader written outside it is left out), with the sizes of the
// file system images they hold.
func layout(t *testing.T, path string) []partition {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var parts []partition
	for _, m := range partRE.FindAllStringSubmatch(string(b), -1) {
		keys := map[string]string{}
		for _, k := range keyRE.FindAllStringSubmatch(m[2], -1) {
			keys[k[1]] = k[2]
		}
		if keys["in-partition-table"] == "false" {
			continue
		}
		parts = append(parts, partition{name: m[1], image: keys["image"], size: keys["size"]})
	}
	return parts
}

// TestPartitionLayout: every board's disk has the common layout (names,
// order, images, sizes); only the table's placement may differ.
func TestPartitionLayout(t *testing.T) {
	board := filepath.Join(repoRoot(t), "buildroot", "board")
	want := layout(t, filepath.Join(board, "common", "genimage.cfg"))
	names := []string{}
	for _, p := range want {
		names = append(names, p.name)
	}
	if got := strings.Join(names, " "); got != "boot rootA rootB provisioning data" {
		t.Fatalf("common layout %q, want boot rootA rootB provisioning data (os-layout)", got)
	}
	if want[3].size != "4M" || want[3].image != "" {
		t.Errorf("provisioning %+v: want raw, 4M", want[3])
	}
	for _, b := range []string{"rpi-zero-2w", "orangepi-zero2w"} {
		got := layout(t, filepath.Join(board, b, "genimage.cfg"))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s layout\n%v\nwant the common\n%v", b, got, want)
		}
	}
}
