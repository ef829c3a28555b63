package flash_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/provisioning/flash"
	"github.com/tuanju/tuanju/provisioning/flash/flashtest"
)

// BenchmarkFlash flashes a 256 MiB image (random bytes, so nothing is
// cheap to store) with its bundle to a loop device and verifies it, and in
// the same iteration does what a technician would do by hand with the same
// I/O discipline: dd with oflag=direct conv=fsync, then dd iflag=direct
// piped to sha256sum. Reported: seconds per GB for each and their ratio
// (x-dd: 1.0 is as fast as dd + sha256sum; the flasher also hashes while
// writing and checks the bundle). ns/op is the flasher's alone.
func BenchmarkFlash(b *testing.B) {
	flashtest.RequireLoop(b)
	for _, tool := range []string{"dd", "sha256sum", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("no %s for the reference", tool)
		}
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "terminal.img")
	flashtest.Image(b, path, flashtest.ImageOptions{RootSize: 126 << 20})
	img, err := flash.OpenImage(path)
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	key := flashtest.Key(b)
	job := flash.Job{Image: img, Bundle: flashtest.Bundle(b, key), Keys: []ed25519.PublicKey{key.Public()}}
	dev, _ := flashtest.LoopFile(b, img.Size+(1<<20), false)
	ref := fmt.Sprintf("dd if=%s of=%s bs=4M oflag=direct conv=fsync status=none && dd if=%s bs=4M count=%d iflag=direct,count_bytes status=none | sha256sum",
		path, dev, dev, img.Size)
	var ours, dd time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		d, _, err := flash.Open(flash.DefaultHost, dev, flash.Allow{NonRemovable: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := flash.Flash(context.Background(), d, job); err != nil {
			b.Fatal(err)
		}
		d.Close()
		ours += time.Since(start)

		b.StopTimer()
		start = time.Now()
		out, err := exec.Command("sh", "-c", ref).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-") {
			b.Fatalf("reference: %v: %s", err, out)
		}
		dd += time.Since(start)
		b.StartTimer()
	}
	gb := float64(img.Size) / 1e9 * float64(b.N)
	b.ReportMetric(ours.Seconds()/gb, "s/GB")
	b.ReportMetric(dd.Seconds()/gb, "s/GB-dd+sha256sum")
	b.ReportMetric(ours.Seconds()/dd.Seconds(), "x-dd")
}
