package flash

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device is the flasher's edge: the disk it writes and reads back. A
// BlockDevice is the real one; tests wrap it to inject faults.
type Device interface {
	// Size in bytes.
	Size() int64
	// BlockSize is the logical block size: WriteAt is called with offsets
	// and lengths that are multiples of it.
	BlockSize() int
	WriteAt(p []byte, off int64) (int, error)
	// Sync returns when every write is on the medium.
	Sync() error
	// ReadBack opens the device afresh to read what its medium holds,
	// not what a cache remembers of the writes.
	ReadBack() (ReaderAtCloser, error)
	Close() error
}

// ReaderAtCloser reads a device back.
type ReaderAtCloser interface {
	io.ReaderAt
	io.Closer
}

// chunk is the unit of I/O: large enough that a USB reader streams, small
// enough that the progress bar moves and a cancel is prompt.
const chunk = 4 << 20

// align is the memory alignment of O_DIRECT buffers: the page size, which
// satisfies every block device's DMA alignment.
const align = 4096

// BlockDevice is a disk opened for flashing: exclusively (O_EXCL: while it
// is open nothing can mount it or one of its partitions), with O_DIRECT.
//
// Why O_DIRECT both ways, with fsync between: writes through the page
// cache would fill the technician's memory with gigabytes, make the
// progress bar show the cache filling rather than the card, and leave the
// real write to a final fsync that hangs with no progress. O_DIRECT sends
// each chunk to the device as it is written; Sync's fsync then flushes the
// device's own write cache (a block device's fsync sends a cache flush).
// ReadBack opens the device again with O_DIRECT, so the read-back never
// comes from the page cache: it is what the card returns. (BLKFLSBUF or
// posix_fadvise(DONTNEED) would drop the cache too, but only what is clean
// and only at that moment; O_DIRECT cannot be answered from it at all.)
type BlockDevice struct {
	f         *os.File
	path      string
	size      int64
	blockSize int
	buf       []byte // aligned scratch for writes
}

// Open inspects the disk at path (Host.Inspect), refuses it if Check does
// not pass with allow, and opens it for flashing. The disk is inspected
// again here even if the caller did so before asking the technician: a
// card may have been swapped or mounted while they read the question.
func Open(h Host, path string, allow Allow) (*BlockDevice, *Disk, error) {
	d, err := h.Inspect(path)
	if err != nil {
		return nil, nil, err
	}
	if err := d.Check(allow); err != nil {
		return nil, d, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_EXCL|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, d, fmt.Errorf("flash: open %s: %w (the kernel holds it: a partition mounted or in use): %v", path, ErrInUse, err)
		}
		return nil, d, fmt.Errorf("flash: open %s: %w", path, err)
	}
	bd, err := newBlockDevice(f, path, d.Dev)
	if err != nil {
		f.Close()
		return nil, d, err
	}
	return bd, d, nil
}

func newBlockDevice(f *os.File, path, dev string) (*BlockDevice, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("flash: %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || devString(st.Rdev) != dev {
		return nil, fmt.Errorf("flash: %s changed between inspecting and opening it: %w", path, ErrNotBlockDevice)
	}
	size, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return nil, fmt.Errorf("flash: %s: size: %w", path, err)
	}
	bs, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return nil, fmt.Errorf("flash: %s: block size: %w", path, err)
	}
	if bs <= 0 || bs > align || align%bs != 0 {
		return nil, fmt.Errorf("flash: %s: logical block size %d not supported", path, bs)
	}
	return &BlockDevice{f: f, path: path, size: int64(size), blockSize: bs, buf: alignedBuffer(chunk)}, nil
}

// Size is the device's size in bytes.
func (d *BlockDevice) Size() int64 { return d.size }

// BlockSize is the device's logical block size.
func (d *BlockDevice) BlockSize() int { return d.blockSize }

// WriteAt writes p at off; both must be multiples of BlockSize. p need
// not be aligned in memory: it is copied through an aligned buffer.
func (d *BlockDevice) WriteAt(p []byte, off int64) (int, error) {
	if off%int64(d.blockSize) != 0 || len(p)%d.blockSize != 0 {
		return 0, fmt.Errorf("flash: %s: write of %d bytes at %d is not in whole %d-byte blocks", d.path, len(p), off, d.blockSize)
	}
	done := 0
	for done < len(p) {
		n := copy(d.buf, p[done:])
		if _, err := d.f.WriteAt(d.buf[:n], off+int64(done)); err != nil {
			return done, fmt.Errorf("flash: %s: write at %d: %w", d.path, off+int64(done), err)
		}
		done += n
	}
	return done, nil
}

// Sync flushes the device's write cache.
func (d *BlockDevice) Sync() error {
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("flash: %s: sync: %w", d.path, err)
	}
	return nil
}

// ReadBack opens the device again, read-only with O_DIRECT.
func (d *BlockDevice) ReadBack() (ReaderAtCloser, error) {
	f, err := os.OpenFile(d.path, os.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("flash: %s: open to read back: %w", d.path, err)
	}
	return &directReader{f: f, path: d.path, size: d.size, blockSize: int64(d.blockSize), buf: alignedBuffer(chunk)}, nil
}

// RereadPartitions asks the kernel to read the new partition table
// (BLKRRPART), so the technician's machine shows the card's partitions.
func (d *BlockDevice) RereadPartitions() error {
	if err := unix.IoctlSetInt(int(d.f.Fd()), unix.BLKRRPART, 0); err != nil {
		return fmt.Errorf("flash: %s: re-read partition table: %w", d.path, err)
	}
	return nil
}

// Close closes the device.
func (d *BlockDevice) Close() error { return d.f.Close() }

// directReader reads any range of an O_DIRECT file through aligned
// whole-block reads.
type directReader struct {
	f               *os.File
	path            string
	size, blockSize int64
	buf             []byte
}

func (r *directReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("flash: %s: read at %d", r.path, off)
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		if pos >= r.size {
			return done, io.EOF
		}
		start := pos - pos%r.blockSize
		end := min(start+int64(len(r.buf)), (pos+int64(len(p)-done)+r.blockSize-1)/r.blockSize*r.blockSize, r.size)
		n, err := r.f.ReadAt(r.buf[:end-start], start)
		if int64(n) <= pos-start {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, fmt.Errorf("flash: %s: read at %d: %w", r.path, start, err)
		}
		done += copy(p[done:], r.buf[pos-start:n])
	}
	return done, nil
}

func (r *directReader) Close() error { return r.f.Close() }

// alignedBuffer returns n bytes starting at a multiple of align.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+align)
	skip := (align - int(uintptr(unsafe.Pointer(&b[0]))%align)) % align
	return b[skip : skip+n : skip+n]
}
