// Package flash writes a terminal's OS image and its unit's signed bundle
// to an SD card, then reads both back from the card and checks their
// hashes: the technician's `provision flash`.
//
// The image's GPT names a partition "provisioning" (the image's layout);
// the bundle goes to its first byte, where the unit's first boot reads it
// with bundle.ReadFrom. The image is the same for every unit; the bundle
// is the only per-unit byte, and it is checked against the programme's key
// before anything is written.
//
// What may be flashed is decided from sysfs and /proc (disk.go): never the
// disk the system runs from or a disk in use; a non-removable or very
// large disk only when the caller allows it. The device itself is behind
// Device (device.go), so tests can inject faults.
package flash

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tuanju/tuanju/provisioning/bundle"
)

// Stage names what Progress reports.
type Stage string

const (
	StageWrite  Stage = "write"
	StageVerify Stage = "verify"
)

// Job is one unit's flashing.
type Job struct {
	Image *Image
	// Bundle is the unit's signed bundle, as provision batch wrote it.
	Bundle []byte
	// Keys are the programme's public signing keys (programme-key.pem).
	Keys []ed25519.PublicKey
	// Progress, when set, is called after each chunk written or read back.
	Progress func(stage Stage, done, total int64)
}

// Result is a flashing that verified.
type Result struct {
	// Unit is the bundle's body.
	Unit bundle.Unit
	// Region is how many bytes from the start of the device were written:
	// the image, with the bundle in its provisioning partition, in whole
	// blocks.
	Region int64
	// RegionSHA256 is the region's hash, as written and as read back.
	RegionSHA256 [sha256.Size]byte
	// BundleSHA256 is the bundle's hash, as written and as read back from
	// the partition's start.
	BundleSHA256          [sha256.Size]byte
	WriteTime, VerifyTime time.Duration
	// Warning is a failure after the verification, e.g. the kernel not
	// re-reading the partition table: the card is good.
	Warning error
}

// Check checks a job before anything is written: the bundle decodes and
// verifies against the programme's keys and fits the provisioning
// partition, and a device of devSize bytes holds the image.
func (j *Job) Check(devSize int64) (bundle.Unit, error) {
	if len(j.Keys) == 0 {
		return bundle.Unit{}, errors.New("flash: no programme key to check the bundle with")
	}
	u, err := bundle.Decode(j.Bundle, j.Keys)
	if err != nil {
		return bundle.Unit{}, fmt.Errorf("flash: bundle: %w", err)
	}
	p := j.Image.Provisioning
	if int64(len(j.Bundle)) > p.Size {
		return u, fmt.Errorf("flash: bundle of %d bytes, partition %q of %d: %w", len(j.Bundle), p.Name, p.Size, ErrBundleTooLarge)
	}
	if end := j.Image.End(); devSize < end {
		return u, fmt.Errorf("flash: device of %d bytes (%s), image needs %d (%s): %w", devSize, HumanSize(devSize), end, HumanSize(end), ErrTooSmall)
	}
	return u, nil
}

// Flash checks the job, writes the image with the bundle in its
// provisioning partition, syncs, then reads the region back through a
// fresh open of the device and checks its hash, and reads the bundle back
// as the unit will (bundle.ReadFrom) and checks its hash and signature.
// The bundle is laid over the image's bytes as they stream past, so the
// card is written once, front to back.
func Flash(ctx context.Context, dev Device, job Job) (*Result, error) {
	u, err := job.Check(dev.Size())
	if err != nil {
		return nil, err
	}
	bs := int64(dev.BlockSize())
	p := job.Image.Provisioning
	region := max(job.Image.Size, p.Offset+int64(len(job.Bundle)))
	region = (region + bs - 1) / bs * bs
	if region > dev.Size() {
		return nil, fmt.Errorf("flash: device of %d bytes, the image in %d-byte blocks needs %d: %w", dev.Size(), bs, region, ErrTooSmall)
	}
	res := &Result{Unit: u, Region: region, BundleSHA256: sha256.Sum256(job.Bundle)}
	progress := job.Progress
	if progress == nil {
		progress = func(Stage, int64, int64) {}
	}
	buf := alignedBuffer(chunk)

	start := time.Now()
	h := sha256.New()
	for off := int64(0); off < region; off += chunk {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("flash: write stopped at byte %d (the card is incomplete): %w", off, err)
		}
		b := buf[:min(chunk, region-off)]
		if err := job.fill(b, off); err != nil {
			return nil, err
		}
		h.Write(b)
		if _, err := dev.WriteAt(b, off); err != nil {
			return nil, err
		}
		progress(StageWrite, off+int64(len(b)), region)
	}
	if err := dev.Sync(); err != nil {
		return nil, err
	}
	h.Sum(res.RegionSHA256[:0])
	res.WriteTime = time.Since(start)

	start = time.Now()
	r, err := dev.ReadBack()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	h.Reset()
	for off := int64(0); off < region; off += chunk {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("flash: verify stopped at byte %d: %w", off, err)
		}
		b := buf[:min(chunk, region-off)]
		if _, err := r.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("flash: verify: %w", err)
		}
		h.Write(b)
		progress(StageVerify, off+int64(len(b)), region)
	}
	if got := h.Sum(nil); !bytes.Equal(got, res.RegionSHA256[:]) {
		return nil, fmt.Errorf("flash: verify: the first %d bytes read back with sha256 %x, written %x; %s: %w; the card may be failing or fake: use another",
			region, got, res.RegionSHA256, job.firstDifference(r, region, buf), ErrVerify)
	}
	back, err := bundle.ReadFrom(io.NewSectionReader(r, p.Offset, p.Size))
	if err != nil {
		return nil, fmt.Errorf("flash: verify: bundle at byte %d: %w: %w", p.Offset, ErrVerify, err)
	}
	if got := sha256.Sum256(back); got != res.BundleSHA256 {
		return nil, fmt.Errorf("flash: verify: the bundle read back has sha256 %x, written %x: %w", got, res.BundleSHA256, ErrVerify)
	}
	if _, err := bundle.Decode(back, job.Keys); err != nil {
		return nil, fmt.Errorf("flash: verify: bundle read back: %w: %w", ErrVerify, err)
	}
	res.VerifyTime = time.Since(start)
	if rr, ok := dev.(interface{ RereadPartitions() error }); ok {
		res.Warning = rr.RereadPartitions()
	}
	return res, nil
}

// fill puts into b what the device should hold from off: the image's
// bytes (zero past its end) with the bundle laid over the start of the
// provisioning partition.
func (j *Job) fill(b []byte, off int64) error {
	n := 0
	if off < j.Image.Size {
		want := int(min(int64(len(b)), j.Image.Size-off))
		var err error
		n, err = j.Image.f.ReadAt(b[:want], off)
		if n < want {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("flash: image %s: read at %d: %w", j.Image.Path, off, err)
		}
	}
	clear(b[n:])
	bo := j.Image.Provisioning.Offset
	if lo, hi := max(off, bo), min(off+int64(len(b)), bo+int64(len(j.Bundle))); lo < hi {
		copy(b[lo-off:hi-off], j.Bundle[lo-bo:hi-bo])
	}
	return nil
}

// firstDifference finds where the device first differs from what was
// written, for the message: a fake card's capacity ends there.
func (j *Job) firstDifference(r io.ReaderAt, region int64, buf []byte) string {
	want := make([]byte, chunk)
	for off := int64(0); off < region; off += chunk {
		got := buf[:min(chunk, region-off)]
		w := want[:len(got)]
		if _, err := r.ReadAt(got, off); err != nil {
			return fmt.Sprintf("reading it again failed at byte %d: %v", off, err)
		}
		if err := j.fill(w, off); err != nil {
			return err.Error()
		}
		for i := range got {
			if got[i] != w[i] {
				at := off + int64(i)
				return fmt.Sprintf("the first difference is at byte %d%s", at, j.where(at))
			}
		}
	}
	return "no difference on a second read (the card returns different data on each read)"
}

// where names the partition holding byte at, for messages.
func (j *Job) where(at int64) string {
	for _, p := range j.Image.Table.Partitions {
		if s, e := int64(p.Start)*SectorSize, int64(p.End+1)*SectorSize; at >= s && at < e {
			return fmt.Sprintf(" (partition %d %q, %d bytes in)", p.Index, p.Name, at-s)
		}
	}
	return ""
}
