package alsa

import (
	"testing"
	"unsafe"
)

// TestABILayout checks the struct sizes and ioctl numbers against the
// kernel's, as alsa-lib and tinyalsa binaries carry them: an LP64 build
// (amd64, arm64) and an ILP32 one (armv7) differ only where unsigned long is
// involved.
func TestABILayout(t *testing.T) {
	lp64 := unsafe.Sizeof(uint(0)) == 8
	pick := func(lp64v, ilp32v uintptr) uintptr {
		if lp64 {
			return lp64v
		}
		return ilp32v
	}
	sizes := []struct {
		name      string
		got, want uintptr
	}{
		{"snd_pcm_hw_params", unsafe.Sizeof(hwParams{}), pick(608, 604)},
		{"snd_pcm_sw_params", unsafe.Sizeof(swParams{}), pick(136, 104)},
		{"snd_xferi", unsafe.Sizeof(xferi{}), pick(24, 12)},
		{"snd_pcm_info", unsafe.Sizeof(pcmInfo{}), 288},
		{"snd_ctl_card_info", unsafe.Sizeof(ctlCardInfo{}), 376},
		{"hw_params.intervals offset", unsafe.Offsetof(hwParams{}.Intervals), 260},
		{"hw_params.rmask offset", unsafe.Offsetof(hwParams{}.Rmask), 512},
		{"hw_params.fifo_size offset", unsafe.Offsetof(hwParams{}.FifoSize), 536},
		{"sw_params.avail_min offset", unsafe.Offsetof(swParams{}.AvailMin), pick(16, 12)},
		{"sw_params.proto offset", unsafe.Offsetof(swParams{}.Proto), pick(72, 40)},
	}
	for _, s := range sizes {
		if s.got != s.want {
			t.Errorf("%s = %d, want %d", s.name, s.got, s.want)
		}
	}
	ioctls := []struct {
		name      string
		got, want uintptr
	}{
		{"PVERSION", ioctlPVersion, 0x80044100},
		{"INFO", ioctlInfo, 0x81204101},
		{"HW_REFINE", ioctlHWRefine, pick(0xc2604110, 0xc25c4110)},
		{"HW_PARAMS", ioctlHWParams, pick(0xc2604111, 0xc25c4111)},
		{"HW_FREE", ioctlHWFree, 0x4112},
		{"SW_PARAMS", ioctlSWParams, pick(0xc0884113, 0xc0684113)},
		{"DELAY", ioctlDelay, pick(0x80084121, 0x80044121)},
		{"HWSYNC", ioctlHWSync, 0x4122},
		{"PREPARE", ioctlPrepare, 0x4140},
		{"START", ioctlStart, 0x4142},
		{"DROP", ioctlDrop, 0x4143},
		{"DRAIN", ioctlDrain, 0x4144},
		{"RESUME", ioctlResume, 0x4147},
		{"WRITEI_FRAMES", ioctlWriteIFrames, pick(0x40184150, 0x400c4150)},
		{"READI_FRAMES", ioctlReadIFrames, pick(0x80184151, 0x800c4151)},
		{"CTL_PVERSION", ioctlCtlPVersion, 0x80045500},
		{"CTL_CARD_INFO", ioctlCtlCardInfo, 0x81785501},
		{"CTL_PCM_NEXT_DEVICE", ioctlCtlPCMNextDevice, 0x80045530},
		{"CTL_PCM_INFO", ioctlCtlPCMInfo, 0xc1205531},
		{"CTL_PCM_PREFER_SUBDEVICE", ioctlCtlPCMPreferSubdev, 0x40045532},
	}
	for _, c := range ioctls {
		if c.got != c.want {
			t.Errorf("SNDRV_%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestParamEncoding(t *testing.T) {
	p := anyHWParams()
	if p.Rmask != ^uint32(0) || !p.maskHas(paramFormat, 37) {
		t.Fatalf("anyHWParams: rmask %#x, format mask %v; want all set", p.Rmask, p.Masks[1])
	}
	p.setMask(paramFormat, formatS16LE)
	p.setMask(paramAccess, accessRWInterleaved)
	if got := p.Masks[paramFormat].Bits; got != [8]uint32{1 << 2} {
		t.Errorf("format mask = %v, want only bit 2 (S16_LE)", got)
	}
	if got := p.Masks[paramAccess].Bits; got != [8]uint32{1 << 3} {
		t.Errorf("access mask = %v, want only bit 3 (RW_INTERLEAVED)", got)
	}
	p.setMask(paramSubformat, 40) // a bit in the second word
	if got := p.Masks[paramSubformat].Bits; got != [8]uint32{0, 1 << 8} {
		t.Errorf("mask with bit 40 = %v", got)
	}
	p.set(paramRate, 48000)
	iv := p.Intervals[paramRate-firstInterval]
	if iv != (interval{Min: 48000, Max: 48000, Flags: intervalInteger}) {
		t.Errorf("rate interval = %+v", iv)
	}
	// The rate interval sits at byte 260 + 3*12 of the struct.
	raw := unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
	off := 260 + (paramRate-firstInterval)*12
	if got := *(*uint32)(unsafe.Pointer(&raw[off])); got != 48000 {
		t.Errorf("rate min at offset %d = %d, want 48000", off, got)
	}
	if got := raw[off+8]; got != 0b100 {
		t.Errorf("rate flags byte = %#b, want integer (bit 2)", got)
	}

	tests := []struct {
		name           string
		iv             interval
		wantLo, wantHi uint32
		single         bool
	}{
		{"closed", interval{Min: 10, Max: 20}, 10, 20, false},
		{"open ends", interval{Min: 10, Max: 20, Flags: intervalOpenMin | intervalOpenMax}, 11, 19, false},
		{"single", interval{Min: 7, Max: 7, Flags: intervalInteger}, 7, 7, true},
		{"empty", interval{Min: 7, Max: 7, Flags: intervalEmpty}, 7, 7, false},
	}
	for _, tt := range tests {
		q := anyHWParams()
		*q.interval(paramPeriods) = tt.iv
		lo, hi := q.bounds(paramPeriods)
		_, single := q.value(paramPeriods)
		if lo != tt.wantLo || hi != tt.wantHi || single != tt.single {
			t.Errorf("%s: bounds %d..%d single %v, want %d..%d single %v", tt.name, lo, hi, single, tt.wantLo, tt.wantHi, tt.single)
		}
	}
}
