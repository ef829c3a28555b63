package imageboot_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/flash"
)

// BenchmarkBootToReady boots a flashed, paired unit of the image-sim image
// (qemu-system-aarch64 virt, Cortex-A53, TCG on this machine) with its
// parent logged in, and measures, per boot: the guest's uptime when the
// idle light came on (s-kernel-to-ready: from the kernel's start, read
// from the simulated board's SIMLED line, so the host's load while qemu
// starts is not in it), when the simulated board was set up
// (s-kernel-to-board: rcS has mounted /data and started the network; the
// rest is terminald's start and its login), and the host's wall time from
// starting qemu (s-wall-to-ready). Each boot ends with a power cut.
func BenchmarkBootToReady(b *testing.B) {
	h := newHarness(b)
	u := h.newUnit(b, "bench")
	v := h.boot(b, u)
	v.await(b, bootWait, logConnected)
	h.pair(b, v, u, -1, false)
	h.awaitReady(b, v, u)
	v.cut(b)
	var kernel, board, wall float64
	n := 0
	for b.Loop() {
		start := time.Now()
		v = h.boot(b, u)
		conn := v.await(b, bootWait, logConnected)
		if p := jsonField(conn.text, "parent_id"); p != u.cred.ParentID {
			b.Fatalf("the unit holds parent %q, want %s", p, u.cred.ParentID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), stepWait)
		for {
			m, err := u.parent.WaitFor(ctx, protocol.TypePresence)
			if err != nil {
				b.Fatalf("the parent never saw the unit online: %v", err)
			}
			if m.PeerOnline != nil && *m.PeerOnline {
				break
			}
		}
		cancel()
		s := v.steady(b, stepWait, "100", readyHold)
		kernel += s.uptime
		board += v.first.uptime
		wall += s.at.Sub(start).Seconds()
		n++
		v.cut(b)
	}
	b.ReportMetric(kernel/float64(n), "s-kernel-to-ready")
	b.ReportMetric(board/float64(n), "s-kernel-to-board")
	b.ReportMetric(wall/float64(n), "s-wall-to-ready")
}

const mb = 1 << 20

// BenchmarkImageSizes reports the image-sim disk's sizes (it measures
// nothing in time; b.N loops do nothing): the whole image as written to a
// card, each GPT partition, the squashfs root inside its slot, the kernel
// and the initramfs on the boot partition.
func BenchmarkImageSizes(b *testing.B) {
	dir := os.Getenv("TUANJU_IMAGE_SIM")
	if dir == "" {
		b.Skip("needs the image: TUANJU_IMAGE_SIM (bench/run builds it)")
	}
	img, err := flash.OpenImage(filepath.Join(dir, "disk.img"))
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	for b.Loop() {
	}
	b.ReportMetric(float64(img.End())/mb, "MB-image")
	for _, p := range img.Table.Partitions {
		if p.Name != "" {
			b.ReportMetric(float64(p.Size)/mb, "MB-"+p.Name)
		}
	}
	for _, f := range []struct{ file, unit string }{
		{"rootfs.squashfs", "MB-rootfs-squashfs"}, {"Image", "MB-kernel"}, {"initrd.gz", "MB-initrd"},
	} {
		st, err := os.Stat(filepath.Join(dir, f.file))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Size())/mb, f.unit)
	}
}

// BenchmarkBinarySize reports the size of each static, stripped binary
// `make build` / `make build-arm64` make, per architecture, from
// TUANJU_SIZE_BINS/<arch>/ (bench/run builds them there).
func BenchmarkBinarySize(b *testing.B) {
	dir := os.Getenv("TUANJU_SIZE_BINS")
	if dir == "" {
		b.Skip("needs the binaries: TUANJU_SIZE_BINS (bench/run builds them)")
	}
	for _, arch := range []string{"amd64", "arm64"} {
		b.Run(arch, func(b *testing.B) {
			es, err := os.ReadDir(filepath.Join(dir, arch))
			if err != nil {
				b.Skip(err)
			}
			for b.Loop() {
			}
			for _, e := range es {
				if e.Type().IsRegular() && !strings.Contains(e.Name(), ".") {
					fi, err := e.Info()
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(fi.Size())/mb, "MB-"+e.Name())
				}
			}
		})
	}
}
