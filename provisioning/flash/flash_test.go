package flash_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/flash"
	"github.com/tuanju/tuanju/provisioning/flash/flashtest"
	"github.com/tuanju/tuanju/provisioning/signing"
)

const mib = 1 << 20

// fixture is an image, a bundle and the programme key that signed it.
type fixture struct {
	img    *flash.Image
	table  *gpt.Table
	bundle []byte
	keys   []ed25519.PublicKey
	key    *signing.Key
}

func newFixture(t *testing.T, o flashtest.ImageOptions) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "terminal.img")
	table := flashtest.Image(t, path, o)
	img, err := flash.OpenImage(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	key := flashtest.Key(t)
	return &fixture{img: img, table: table, bundle: flashtest.Bundle(t, key), keys: []ed25519.PublicKey{key.Public()}, key: key}
}

func (fx *fixture) job() flash.Job {
	return flash.Job{Image: fx.img, Bundle: fx.bundle, Keys: fx.keys}
}

// expected is what the card should hold: the image with the bundle at the
// provisioning partition's start.
func (fx *fixture) expected(t *testing.T) []byte {
	t.Helper()
	want, err := os.ReadFile(fx.img.Path)
	if err != nil {
		t.Fatal(err)
	}
	copy(want[fx.img.Provisioning.Offset:], fx.bundle)
	return want
}

func open(t *testing.T, dev string) *flash.BlockDevice {
	t.Helper()
	d, _, err := flash.Open(flash.DefaultHost, dev, flash.Allow{NonRemovable: true})
	if err != nil {
		t.Fatalf("open %s: %v", dev, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestFlash flashes a loop device and checks the card as the unit will
// see it: the kernel's partitions and their GPT names, the table equal to
// the image's, every byte of the image, and the bundle read with
// bundle.ReadFrom from the provisioning partition and verified.
func TestFlash(t *testing.T) {
	flashtest.RequireLoop(t)
	fx := newFixture(t, flashtest.ImageOptions{})
	dev, _ := flashtest.LoopFile(t, 16*mib, true)
	bd := open(t, dev)
	var stages []flash.Stage
	var last [2]int64
	job := fx.job()
	job.Progress = func(s flash.Stage, done, total int64) {
		if len(stages) == 0 || stages[len(stages)-1] != s {
			stages = append(stages, s)
		}
		i := 0
		if s == flash.StageVerify {
			i = 1
		}
		if done < last[i] || done > total {
			t.Errorf("progress %s went %d → %d of %d", s, last[i], done, total)
		}
		last[i] = done
	}
	res, err := flash.Flash(context.Background(), bd, job)
	if err != nil {
		t.Fatal(err)
	}
	if res.Warning != nil {
		t.Errorf("warning: %v", res.Warning)
	}
	want := fx.expected(t)
	if res.Region != int64(len(want)) || res.RegionSHA256 != sha256.Sum256(want) || res.BundleSHA256 != sha256.Sum256(fx.bundle) {
		t.Errorf("result: region %d sha256 %x, bundle %x; want %d %x, %x", res.Region, res.RegionSHA256, res.BundleSHA256, len(want), sha256.Sum256(want), sha256.Sum256(fx.bundle))
	}
	if res.Unit.Unit != "B1-00001" {
		t.Errorf("unit %q", res.Unit.Unit)
	}
	if len(stages) != 2 || stages[0] != flash.StageWrite || stages[1] != flash.StageVerify || last != [2]int64{res.Region, res.Region} {
		t.Errorf("progress: stages %v, ended at %v of %d", stages, last, res.Region)
	}
	bd.Close()

	// Every byte, read back by another path (a plain open of the device).
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(f, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the card differs from the image with the bundle")
	}
	// The bundle at the partition's first byte, as the unit reads it.
	b, err := bundle.ReadFrom(io.NewSectionReader(f, fx.img.Provisioning.Offset, fx.img.Provisioning.Size))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := bundle.Decode(b, fx.keys); err != nil || u.Unit != "B1-00001" || u.Settings.ServerURL != "ws://127.0.0.1:1/ws" {
		t.Fatalf("bundle on the card: %+v, %v", u, err)
	}
	// The partition table read from the device is the image's.
	tbl, err := gpt.Read(f, 512, 512)
	if err != nil {
		t.Fatalf("GPT on the card: %v", err)
	}
	if len(tbl.Partitions) != len(fx.table.Partitions) {
		t.Fatalf("card has %d partitions, image %d", len(tbl.Partitions), len(fx.table.Partitions))
	}
	for i, p := range tbl.Partitions {
		w := fx.table.Partitions[i]
		if p.Name != w.Name || p.Start != w.Start || p.End != w.End || p.Type != w.Type || p.GUID != w.GUID {
			t.Errorf("partition %d on the card %+v, in the image %+v", i+1, *p, *w)
		}
	}
	// The kernel read the new table (BLKRRPART) and names the partitions
	// as the unit's init looks them up, where it reads GPTs at all.
	if !flashtest.KernelReadsGPT(t, dev) {
		t.Logf("this kernel reads no GPT (CONFIG_EFI_PARTITION): partition names checked in the table read back only")
		return
	}
	for i, name := range []string{"boot", "rootA", "rootB", "provisioning", "data"} {
		flashtest.Partition(t, dev, i+1)
		if got := flashtest.PartName(dev, i+1); got != name {
			t.Errorf("%sp%d: PARTNAME %q, want %q", dev, i+1, got, name)
		}
	}
	// The bundle, as the unit reads it from its partition.
	pf, err := os.Open(flashtest.Partition(t, dev, 4))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	b, err = bundle.ReadFrom(pf)
	if err != nil {
		t.Fatal(err)
	}
	u, err := bundle.Decode(b, fx.keys)
	if err != nil || u.Unit != "B1-00001" || u.Settings.ServerURL != "ws://127.0.0.1:1/ws" {
		t.Fatalf("bundle on the card: %+v, %v", u, err)
	}
}

// flipper flips one byte as it is written: a card that stores something
// else than it was sent.
type flipper struct {
	flash.Device
	at int64
}

func (f *flipper) WriteAt(p []byte, off int64) (int, error) {
	if f.at >= off && f.at < off+int64(len(p)) {
		q := bytes.Clone(p)
		q[f.at-off] ^= 0x5A
		p = q
	}
	return f.Device.WriteAt(p, off)
}

// rotter changes a byte of the loop device's backing file after the
// writes are synced and before they are read back: the medium itself
// changed, under any cache the loop device has. With the device opened
// without O_DIRECT the read-back comes from the page cache and misses it
// (tried: both "medium changed" cases then fail).
type rotter struct {
	flash.Device
	file string
	at   int64
}

func (r *rotter) Sync() error {
	if err := r.Device.Sync(); err != nil {
		return err
	}
	f, err := os.OpenFile(r.file, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, r.at); err != nil {
		return err
	}
	b[0] ^= 0xFF
	_, err = f.WriteAt(b, r.at)
	return err
}

// TestCorruptionDetected: a byte that reaches the card wrong, or changes on
// the medium between the write and the read-back, fails the flashing with
// ErrVerify naming the first bad byte and its partition.
func TestCorruptionDetected(t *testing.T) {
	flashtest.RequireLoop(t)
	fx := newFixture(t, flashtest.ImageOptions{})
	rootB := fx.table.Partitions[2]
	inRootB := int64(rootB.Start)*512 + 12345
	inBundle := fx.img.Provisioning.Offset + int64(len(fx.bundle)) - 10 // in its signature
	inGPT := int64(512 + 100)                                           // the primary GPT header
	for _, tc := range []struct {
		name  string
		wrap  func(d flash.Device, file string) flash.Device
		at    int64
		where string
	}{
		{"flipped in rootB", func(d flash.Device, _ string) flash.Device { return &flipper{d, inRootB} }, inRootB, `partition 3 "rootB", 12345 bytes in`},
		{"flipped in the bundle", func(d flash.Device, _ string) flash.Device { return &flipper{d, inBundle} }, inBundle, `"provisioning"`},
		{"medium changed in the GPT", func(d flash.Device, f string) flash.Device { return &rotter{d, f, inGPT} }, inGPT, ""},
		{"medium changed in rootB", func(d flash.Device, f string) flash.Device { return &rotter{d, f, inRootB} }, inRootB, `"rootB"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, file := flashtest.LoopFile(t, 16*mib, false)
			_, err := flash.Flash(context.Background(), tc.wrap(open(t, dev), file), fx.job())
			if !errors.Is(err, flash.ErrVerify) {
				t.Fatalf("flash: %v, want ErrVerify", err)
			}
			if want := "first difference is at byte " + strconv.FormatInt(tc.at, 10); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.where) {
				t.Errorf("error %q lacks %q or %q", err, want, tc.where)
			}
		})
	}
}

// zero reports whether the first n bytes of a file are all zero: nothing
// was written.
func zero(t *testing.T, file string, n int64) bool {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte{0}) == len(b)
}

// TestJobRefusals: a bundle that does not verify against the programme's
// key, one too large for the partition, a device smaller than the image:
// each refused before a byte is written.
func TestJobRefusals(t *testing.T) {
	flashtest.RequireLoop(t)
	fx := newFixture(t, flashtest.ImageOptions{})
	other := flashtest.Key(t)
	tampered := bytes.Clone(fx.bundle)
	tampered[20] ^= 1
	tiny := newFixture(t, flashtest.ImageOptions{ProvisioningSize: 512})
	u, err := bundle.DecodeStored(tiny.bundle)
	if err != nil {
		t.Fatal(err)
	}
	u.Identity = strings.Repeat("x", 600) // a bundle of over 512 bytes
	big, err := bundle.Encode(u, tiny.key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fx   *fixture
		edit func(j *flash.Job)
		size int64
		want error
	}{
		{"tampered bundle", fx, func(j *flash.Job) { j.Bundle = tampered }, 16 * mib, bundle.ErrTampered},
		{"foreign bundle", fx, func(j *flash.Job) { j.Bundle = flashtest.Bundle(t, other) }, 16 * mib, bundle.ErrForeign},
		{"not a bundle", fx, func(j *flash.Job) { j.Bundle = []byte("hello, this is not a bundle at all") }, 16 * mib, bundle.ErrMalformed},
		{"truncated bundle", fx, func(j *flash.Job) { j.Bundle = j.Bundle[:len(j.Bundle)-1] }, 16 * mib, bundle.ErrTruncated},
		{"no programme key", fx, func(j *flash.Job) { j.Keys = nil }, 16 * mib, nil},
		{"bundle larger than the partition", tiny, func(j *flash.Job) { j.Bundle = big }, 16 * mib, flash.ErrBundleTooLarge},
		{"device smaller than the image", fx, func(*flash.Job) {}, 4 * mib, flash.ErrTooSmall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, file := flashtest.LoopFile(t, tc.size, false)
			j := tc.fx.job()
			tc.edit(&j)
			_, err := flash.Flash(context.Background(), open(t, dev), j)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("flash: %v, want %v", err, tc.want)
			}
			if !zero(t, file, tc.size) {
				t.Errorf("refused (%v) but the card was written", err)
			}
		})
	}
}

// TestImageRefusals: an image without a partition named provisioning, and
// a file that is no GPT image.
func TestImageRefusals(t *testing.T) {
	dir := t.TempDir()
	noProv := filepath.Join(dir, "noprov.img")
	flashtest.Image(t, noProv, flashtest.ImageOptions{ProvisioningName: "identity"})
	if _, err := flash.OpenImage(noProv); !errors.Is(err, flash.ErrNoProvisioning) || !strings.Contains(err.Error(), `"identity"`) {
		t.Errorf("no provisioning partition: %v", err)
	}
	junk := filepath.Join(dir, "junk.img")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a disk "), 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := flash.OpenImage(junk); !errors.Is(err, flash.ErrNotImage) {
		t.Errorf("junk: %v", err)
	}
	if _, err := flash.OpenImage(filepath.Join(dir, "absent.img")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent: %v", err)
	}
	if _, err := flash.OpenImage(dir); !errors.Is(err, flash.ErrNotImage) {
		t.Errorf("a directory: %v", err)
	}
}

// TestDeviceRefusals: every disk the flasher refuses, as the kernel shows
// it: not a block device, a non-removable disk (loop devices are) unless
// allowed, a disk larger than MaxSize unless allowed, a mounted disk (seen
// in mountinfo, and by O_EXCL when mountinfo is silent), and the disk the
// system runs from. Partitions are TestInspect's.
func TestDeviceRefusals(t *testing.T) {
	flashtest.RequireLoop(t)
	fx := newFixture(t, flashtest.ImageOptions{})
	ok := flash.Allow{NonRemovable: true}
	plain, _ := flashtest.LoopFile(t, 16*mib, false)
	huge, hugeFile := flashtest.LoopFile(t, flash.MaxSize+(1<<30), false)

	// A card with a file system, mounted. (A mounted partition of a card
	// is TestInspect's: this machine's kernel may read no partitions.)
	mounted, _ := flashtest.LoopFile(t, 16*mib, false)
	dir := flashtest.Mount(t, mounted, "")

	silent := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(silent, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	quiet := flash.DefaultHost
	quiet.MountInfo = silent
	asRoot := flash.DefaultHost
	asRoot.Root = dir // as if the system ran from the mounted card

	for _, tc := range []struct {
		name  string
		host  flash.Host
		dev   string
		allow flash.Allow
		want  []error
		say   string
	}{
		{"regular file", flash.DefaultHost, fx.img.Path, ok, []error{flash.ErrNotBlockDevice}, "not a block device"},
		{"character device", flash.DefaultHost, "/dev/null", ok, []error{flash.ErrNotBlockDevice}, ""},
		{"absent", flash.DefaultHost, "/dev/absent-card", ok, []error{flash.ErrNotBlockDevice}, ""},
		{"not removable", flash.DefaultHost, plain, flash.Allow{}, []error{flash.ErrNotRemovable}, "--allow-non-removable"},
		{"too large", flash.DefaultHost, huge, ok, []error{flash.ErrTooLarge}, "--allow-large"},
		{"too large and not removable", flash.DefaultHost, huge, flash.Allow{}, []error{flash.ErrTooLarge, flash.ErrNotRemovable}, ""},
		{"mounted", flash.DefaultHost, mounted, ok, []error{flash.ErrInUse}, "mounted on " + dir},
		{"mounted, mountinfo silent: O_EXCL", quiet, mounted, ok, []error{flash.ErrInUse}, "the kernel holds it"},
		{"system disk", asRoot, mounted, flash.Allow{NonRemovable: true, Large: true}, []error{flash.ErrSystemDisk, flash.ErrInUse}, "holds /"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _, err := flash.Open(tc.host, tc.dev, tc.allow)
			if err == nil {
				d.Close()
				t.Fatalf("%s opened", tc.dev)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q is not %v", err, w)
				}
			}
			if !strings.Contains(err.Error(), tc.say) {
				t.Errorf("error %q does not say %q", err, tc.say)
			}
		})
	}
	// What may be allowed is allowed: the huge disk flashes with both
	// flags (only the image's few MiB are written to its sparse file).
	d, _, err := flash.Open(flash.DefaultHost, huge, flash.Allow{NonRemovable: true, Large: true})
	if err != nil {
		t.Fatalf("huge disk allowed: %v", err)
	}
	defer d.Close()
	if _, err := flash.Flash(context.Background(), d, fx.job()); err != nil {
		t.Fatalf("huge disk: %v", err)
	}
	if zero(t, hugeFile, 4096) {
		t.Errorf("huge disk not written")
	}
}

// TestThisSystemDisk: the disk this machine runs from is refused, whatever
// is allowed (only inspected: nothing opens it for writing).
func TestThisSystemDisk(t *testing.T) {
	disk := rootDisk(t)
	d, err := flash.DefaultHost.Inspect(disk)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Check(flash.Allow{NonRemovable: true, Large: true})
	if !d.System || !errors.Is(err, flash.ErrSystemDisk) {
		t.Fatalf("%s: system %v, check %v", disk, d.System, err)
	}
}

// rootDisk finds the whole disk under / with util-linux's own view
// (findmnt, lsblk), independent of the code under test.
func rootDisk(t *testing.T) string {
	t.Helper()
	src, err := flashtestRun("findmnt", "-n", "-o", "SOURCE", "--target", "/")
	if err != nil || !strings.HasPrefix(src, "/dev/") {
		t.Skipf("the root file system is not on a block device here (%q, %v)", src, err)
	}
	src, _, _ = strings.Cut(src, "[") // btrfs subvolumes: /dev/sda2[/@]
	pk, err := flashtestRun("lsblk", "-n", "-d", "-o", "PKNAME", src)
	if err != nil {
		t.Fatal(err)
	}
	if pk = strings.TrimSpace(pk); pk != "" {
		return "/dev/" + strings.Fields(pk)[0]
	}
	return src
}

func flashtestRun(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	return strings.TrimSpace(string(out)), err
}
