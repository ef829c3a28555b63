package flash

import (
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// PartitionName is the GPT name of the partition the unit's bundle goes
// to (docs: the image's layout; the unit's init finds it by this name).
const PartitionName = "provisioning"

// SectorSize is the GPT's logical sector size: what genimage writes and
// what SD cards and USB readers report.
const SectorSize = 512

// Image is a terminal OS image opened for flashing: its GPT read and its
// provisioning partition found.
type Image struct {
	Path string
	Size int64
	// Table is the image's GPT (go-diskfs), for comparing with what a
	// device holds after flashing.
	Table *gpt.Table
	// Provisioning is where the bundle goes: byte offset and size.
	Provisioning Partition
	f            *os.File
}

// Partition is one GPT partition, in bytes.
type Partition struct {
	Index        int
	Name         string
	Offset, Size int64
}

// OpenImage opens a disk image and finds its partition named
// PartitionName. The primary GPT must be valid: an image whose primary
// table is damaged is refused rather than repaired from the backup.
func OpenImage(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flash: image: %w", err)
	}
	img, err := readImage(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return img, nil
}

func readImage(f *os.File, path string) (*Image, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("flash: image: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("flash: image %s: not a regular file: %w", path, ErrNotImage)
	}
	size := st.Size()
	if size < 34*SectorSize {
		return nil, fmt.Errorf("flash: image %s: %d bytes, too small for a GPT: %w", path, size, ErrNotImage)
	}
	t, err := gpt.Read(f, SectorSize, SectorSize)
	if err != nil {
		return nil, fmt.Errorf("flash: image %s: %w: %v", path, ErrNotImage, err)
	}
	if t.RecoveredFromBackup {
		return nil, fmt.Errorf("flash: image %s: the primary GPT is damaged (only the backup reads): %w", path, ErrNotImage)
	}
	img := &Image{Path: path, Size: size, Table: t, f: f}
	found := 0
	for _, p := range t.Partitions {
		if p.Name != PartitionName {
			continue
		}
		found++
		if p.End < p.Start {
			return nil, fmt.Errorf("flash: image %s: partition %q ends before it starts: %w", path, PartitionName, ErrNoProvisioning)
		}
		img.Provisioning = Partition{Index: p.Index, Name: p.Name, Offset: int64(p.Start) * SectorSize, Size: int64(p.End-p.Start+1) * SectorSize}
	}
	switch {
	case found == 0:
		return nil, fmt.Errorf("flash: image %s: no GPT partition named %q (partitions: %s): %w", path, PartitionName, names(t), ErrNoProvisioning)
	case found > 1:
		return nil, fmt.Errorf("flash: image %s: %d GPT partitions named %q: %w", path, found, PartitionName, ErrNoProvisioning)
	case img.Provisioning.Offset <= 0 || img.Provisioning.Size <= 0:
		return nil, fmt.Errorf("flash: image %s: partition %q has no extent: %w", path, PartitionName, ErrNoProvisioning)
	}
	return img, nil
}

func names(t *gpt.Table) string {
	s := ""
	for i, p := range t.Partitions {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d %q", p.Index, p.Name)
	}
	if s == "" {
		return "none"
	}
	return s
}

// End is the first byte after everything flashing writes: the image, and
// the provisioning partition should the image stop short of its end. A
// device must be at least this large.
func (img *Image) End() int64 {
	return max(img.Size, img.Provisioning.Offset+img.Provisioning.Size)
}

// Close closes the image file.
func (img *Image) Close() error { return img.f.Close() }
