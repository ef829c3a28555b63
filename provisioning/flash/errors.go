package flash

import "errors"

// Refusals. Each is returned wrapped, naming the device or file and what
// to do about it; a check that finds several returns them joined, so the
// technician sees them all at once.
var (
	// ErrNotBlockDevice: the target is a file, a character device or
	// missing.
	ErrNotBlockDevice = errors.New("not a block device")
	// ErrPartition: the target is a partition, not a whole disk.
	ErrPartition = errors.New("a partition, not a whole disk")
	// ErrSystemDisk: the target holds the running system's root.
	ErrSystemDisk = errors.New("the disk this system runs from")
	// ErrInUse: the disk or one of its partitions is mounted, used as swap
	// or held by another device (LVM, RAID, dm-crypt).
	ErrInUse = errors.New("in use")
	// ErrNotRemovable: neither marked removable nor on a USB or SD bus
	// (Allow.NonRemovable overrides).
	ErrNotRemovable = errors.New("not a removable disk")
	// ErrTooLarge: larger than MaxSize (Allow.Large overrides).
	ErrTooLarge = errors.New("larger than a card should be")
	// ErrNoMedium: a reader with no card in it (size 0).
	ErrNoMedium = errors.New("no medium")
	// ErrTooSmall: the device is smaller than the image.
	ErrTooSmall = errors.New("smaller than the image")

	// ErrNotImage: the image file has no readable GPT.
	ErrNotImage = errors.New("not a GPT disk image")
	// ErrNoProvisioning: the image's GPT has no partition named
	// "provisioning" (or more than one).
	ErrNoProvisioning = errors.New("no provisioning partition")
	// ErrBundleTooLarge: the bundle does not fit the provisioning
	// partition.
	ErrBundleTooLarge = errors.New("bundle larger than the provisioning partition")

	// ErrVerify: what was read back from the device is not what was
	// written.
	ErrVerify = errors.New("read-back differs from what was written")
)
