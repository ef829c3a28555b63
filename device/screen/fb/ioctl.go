package fb

import (
	"bytes"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's fbdev and VT interface (include/uapi/linux/fb.h and kd.h);
// golang.org/x/sys/unix has neither.
const (
	ioctlGetVScreenInfo = 0x4600 // FBIOGET_VSCREENINFO
	ioctlPutVScreenInfo = 0x4601 // FBIOPUT_VSCREENINFO
	ioctlGetFScreenInfo = 0x4602 // FBIOGET_FSCREENINFO
	ioctlPanDisplay     = 0x4606 // FBIOPAN_DISPLAY
	ioctlBlank          = 0x4611 // FBIOBLANK

	typePackedPixels = 0 // FB_TYPE_PACKED_PIXELS
	visualTrueColor  = 2 // FB_VISUAL_TRUECOLOR

	activateNow   = 0   // FB_ACTIVATE_NOW
	activateForce = 128 // FB_ACTIVATE_FORCE

	blankUnblank   = 0 // FB_BLANK_UNBLANK
	blankPowerdown = 4 // FB_BLANK_POWERDOWN

	ioctlKDGetMode = 0x4B3B // KDGETMODE
	ioctlKDSetMode = 0x4B3A // KDSETMODE
	kdText         = 0      // KD_TEXT
	kdGraphics     = 1      // KD_GRAPHICS
)

// bitfield is struct fb_bitfield.
type bitfield struct {
	Offset, Length, MsbRight uint32
}

// varScreenInfo is struct fb_var_screeninfo: all __u32, 160 bytes on every
// architecture.
type varScreenInfo struct {
	Xres, Yres                 uint32 // visible resolution
	XresVirtual, YresVirtual   uint32
	Xoffset, Yoffset           uint32 // visible part within the virtual screen
	BitsPerPixel, Grayscale    uint32
	Red, Green, Blue, Transp   bitfield
	Nonstd, Activate           uint32
	Height, Width              uint32 // mm
	AccelFlags                 uint32
	Pixclock                   uint32
	LeftMargin, RightMargin    uint32
	UpperMargin, LowerMargin   uint32
	HsyncLen, VsyncLen         uint32
	Sync, Vmode, Rotate, Color uint32
	Reserved                   [4]uint32
}

// fixScreenInfo is struct fb_fix_screeninfo. Its two `unsigned long` fields
// are uintptr here, so Go lays it out as C does: 80 bytes on 64-bit
// (smem_start 8-aligned at 16, line_length at 48), 68 on 32-bit ARM
// (line_length at 44). layout_test.go checks both.
type fixScreenInfo struct {
	ID                            [16]byte
	SmemStart                     uintptr // physical start of screen memory
	SmemLen                       uint32
	Type, TypeAux, Visual         uint32
	Xpanstep, Ypanstep, Ywrapstep uint16
	LineLength                    uint32 // bytes per row: the stride
	MmioStart                     uintptr
	MmioLen, Accel                uint32
	Capabilities                  uint16
	Reserved                      [2]uint16
}

func (f *fixScreenInfo) id() string {
	if i := bytes.IndexByte(f.ID[:], 0); i >= 0 {
		return string(f.ID[:i])
	}
	return string(f.ID[:])
}

func (v *varScreenInfo) format() Format {
	return Format{
		BitsPerPixel: int(v.BitsPerPixel),
		Red:          Bitfield{v.Red.Offset, v.Red.Length},
		Green:        Bitfield{v.Green.Offset, v.Green.Length},
		Blue:         Bitfield{v.Blue.Offset, v.Blue.Length},
		Transp:       Bitfield{v.Transp.Offset, v.Transp.Length},
	}
}

// ioctlPtr is ioctl(fd, req, p) for a pointer argument.
func ioctlPtr(fd uintptr, req uintptr, p unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(p)); e != 0 {
		return e
	}
	return nil
}

// ioctlVal is ioctl(fd, req, v) for a value argument.
func ioctlVal(fd uintptr, req uintptr, v uintptr) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, v); e != 0 {
		return e
	}
	return nil
}

func getVar(fd uintptr) (varScreenInfo, error) {
	var v varScreenInfo
	err := ioctlPtr(fd, ioctlGetVScreenInfo, unsafe.Pointer(&v))
	return v, err
}

func getFix(fd uintptr) (fixScreenInfo, error) {
	var f fixScreenInfo
	err := ioctlPtr(fd, ioctlGetFScreenInfo, unsafe.Pointer(&f))
	return f, err
}
