package fb

import (
	"testing"
	"unsafe"
)

// The ioctl structs must match the kernel's byte for byte, or the driver
// reads and writes the wrong fields. fb_var_screeninfo is all __u32;
// fb_fix_screeninfo has two unsigned longs, so it differs between 64-bit
// (amd64, arm64) and 32-bit (armv7; run this test with GOARCH=386 to check
// the 32-bit layout on a PC) — offsets from pahole on both.
func TestIoctlStructLayout(t *testing.T) {
	var v varScreenInfo
	var f fixScreenInfo
	word := unsafe.Sizeof(uintptr(0))
	want := map[uintptr]map[string]uintptr{
		8: {"size": 80, "smem_start": 16, "smem_len": 24, "visual": 36, "xpanstep": 40, "ypanstep": 42,
			"line_length": 48, "mmio_start": 56, "capabilities": 72},
		4: {"size": 68, "smem_start": 16, "smem_len": 20, "visual": 32, "xpanstep": 36, "ypanstep": 38,
			"line_length": 44, "mmio_start": 48, "capabilities": 60},
	}[word]
	tests := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"var size", unsafe.Sizeof(v), 160},
		{"var bits_per_pixel", unsafe.Offsetof(v.BitsPerPixel), 24},
		{"var red", unsafe.Offsetof(v.Red), 32},
		{"var transp", unsafe.Offsetof(v.Transp), 68},
		{"var activate", unsafe.Offsetof(v.Activate), 84},
		{"var reserved", unsafe.Offsetof(v.Reserved), 144},
		{"fix size", unsafe.Sizeof(f), want["size"]},
		{"fix smem_start", unsafe.Offsetof(f.SmemStart), want["smem_start"]},
		{"fix smem_len", unsafe.Offsetof(f.SmemLen), want["smem_len"]},
		{"fix visual", unsafe.Offsetof(f.Visual), want["visual"]},
		{"fix xpanstep", unsafe.Offsetof(f.Xpanstep), want["xpanstep"]},
		{"fix ypanstep", unsafe.Offsetof(f.Ypanstep), want["ypanstep"]},
		{"fix line_length", unsafe.Offsetof(f.LineLength), want["line_length"]},
		{"fix mmio_start", unsafe.Offsetof(f.MmioStart), want["mmio_start"]},
		{"fix capabilities", unsafe.Offsetof(f.Capabilities), want["capabilities"]},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s (%d-bit): %d, want %d", tt.name, word*8, tt.got, tt.want)
		}
	}
}
