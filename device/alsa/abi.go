package alsa

import (
	"unsafe"
)

// The kernel's ALSA ABI, from include/uapi/sound/asound.h (Linux 6.1; these
// parts are unchanged since 2.6). C's unsigned long (snd_pcm_uframes_t) and
// long (snd_pcm_sframes_t) are Go's uint and int: 8 bytes on amd64/arm64,
// 4 on armv7, and Go aligns them as C does on each, so one declaration fits
// both; abi_test.go checks the sizes against the kernel's ioctl numbers.

// protocolMajor is the PCM protocol major version this package speaks
// (SNDRV_PCM_VERSION is 2.0.15 in 6.1); a different major means a different ABI.
const protocolMajor = 2

// Stream directions (SNDRV_PCM_STREAM_*).
const (
	streamPlayback = 0
	streamCapture  = 1
)

// hw_params parameter indices (SNDRV_PCM_HW_PARAM_*). The first three are
// masks, the rest intervals.
const (
	paramAccess    = 0
	paramFormat    = 1
	paramSubformat = 2

	paramSampleBits  = 8
	paramFrameBits   = 9
	paramChannels    = 10
	paramRate        = 11
	paramPeriodTime  = 12
	paramPeriodSize  = 13
	paramPeriodBytes = 14
	paramPeriods     = 15
	paramBufferTime  = 16
	paramBufferSize  = 17
	paramBufferBytes = 18
	paramTickTime    = 19

	firstInterval = paramSampleBits
	lastInterval  = paramTickTime
)

// Mask values.
const (
	accessRWInterleaved = 3 // SNDRV_PCM_ACCESS_RW_INTERLEAVED
	formatS16LE         = 2 // SNDRV_PCM_FORMAT_S16_LE
	subformatStd        = 0 // SNDRV_PCM_SUBFORMAT_STD
)

// snd_interval bit-fields (unsigned int openmin:1, openmax:1, integer:1,
// empty:1), allocated from bit 0 on little-endian ABIs.
const (
	intervalOpenMin = 1 << 0
	intervalOpenMax = 1 << 1
	intervalInteger = 1 << 2
	intervalEmpty   = 1 << 3
)

// struct snd_mask: SNDRV_MASK_MAX (256) bits.
type mask struct {
	Bits [8]uint32
}

// struct snd_interval.
type interval struct {
	Min, Max uint32
	Flags    uint32
}

// struct snd_pcm_hw_params.
type hwParams struct {
	Flags     uint32
	Masks     [3]mask // ACCESS, FORMAT, SUBFORMAT
	Mres      [5]mask
	Intervals [lastInterval - firstInterval + 1]interval
	Ires      [9]interval
	Rmask     uint32 // W: which parameters to refine
	Cmask     uint32 // R: which changed
	Info      uint32 // R: SNDRV_PCM_INFO_* of the chosen setup
	Msbits    uint32
	RateNum   uint32
	RateDen   uint32
	FifoSize  uint // snd_pcm_uframes_t
	Reserved  [64]byte
}

// struct snd_pcm_sw_params.
type swParams struct {
	TstampMode       int32
	PeriodStep       uint32
	SleepMin         uint32
	AvailMin         uint // snd_pcm_uframes_t, as the rest
	XferAlign        uint
	StartThreshold   uint
	StopThreshold    uint
	SilenceThreshold uint
	SilenceSize      uint
	Boundary         uint
	Proto            uint32
	TstampType       uint32
	Reserved         [56]byte
}

// struct snd_xferi. Buf points into a Go slice for the duration of one
// ioctl; heap memory does not move and a goroutine's stack is not moved while
// it is in a system call.
type xferi struct {
	Result int // snd_pcm_sframes_t
	Buf    unsafe.Pointer
	Frames uint // snd_pcm_uframes_t
}

// struct snd_pcm_info (also returned by the control device's PCM_INFO).
type pcmInfo struct {
	Device          uint32
	Subdevice       uint32
	Stream          int32
	Card            int32
	ID              [64]byte
	Name            [80]byte
	Subname         [32]byte
	DevClass        int32
	DevSubclass     int32
	SubdevicesCount uint32
	SubdevicesAvail uint32
	Sync            [16]byte // union snd_pcm_sync_id
	Reserved        [64]byte
}

// struct snd_ctl_card_info.
type ctlCardInfo struct {
	Card       int32
	Pad        int32
	ID         [16]byte
	Driver     [16]byte
	Name       [32]byte
	Longname   [80]byte
	Reserved   [16]byte
	Mixername  [80]byte
	Components [128]byte
}

// asm-generic ioctl encoding (_IOC): nr | type<<8 | size<<16 | dir<<30.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, typ, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | typ<<8 | nr
}

var (
	sizeInt  = unsafe.Sizeof(int32(0))
	sizeLong = unsafe.Sizeof(int(0))

	ioctlPVersion     = ioc(iocRead, 'A', 0x00, sizeInt)
	ioctlInfo         = ioc(iocRead, 'A', 0x01, unsafe.Sizeof(pcmInfo{}))
	ioctlHWRefine     = ioc(iocRead|iocWrite, 'A', 0x10, unsafe.Sizeof(hwParams{}))
	ioctlHWParams     = ioc(iocRead|iocWrite, 'A', 0x11, unsafe.Sizeof(hwParams{}))
	ioctlHWFree       = ioc(iocNone, 'A', 0x12, 0)
	ioctlSWParams     = ioc(iocRead|iocWrite, 'A', 0x13, unsafe.Sizeof(swParams{}))
	ioctlDelay        = ioc(iocRead, 'A', 0x21, sizeLong)
	ioctlHWSync       = ioc(iocNone, 'A', 0x22, 0)
	ioctlPrepare      = ioc(iocNone, 'A', 0x40, 0)
	ioctlStart        = ioc(iocNone, 'A', 0x42, 0)
	ioctlDrop         = ioc(iocNone, 'A', 0x43, 0)
	ioctlDrain        = ioc(iocNone, 'A', 0x44, 0)
	ioctlResume       = ioc(iocNone, 'A', 0x47, 0)
	ioctlWriteIFrames = ioc(iocWrite, 'A', 0x50, unsafe.Sizeof(xferi{}))
	ioctlReadIFrames  = ioc(iocRead, 'A', 0x51, unsafe.Sizeof(xferi{}))

	ioctlCtlPVersion        = ioc(iocRead, 'U', 0x00, sizeInt)
	ioctlCtlCardInfo        = ioc(iocRead, 'U', 0x01, unsafe.Sizeof(ctlCardInfo{}))
	ioctlCtlPCMNextDevice   = ioc(iocRead, 'U', 0x30, sizeInt)
	ioctlCtlPCMInfo         = ioc(iocRead|iocWrite, 'U', 0x31, unsafe.Sizeof(pcmInfo{}))
	ioctlCtlPCMPreferSubdev = ioc(iocWrite, 'U', 0x32, sizeInt)
)

// anyHWParams returns parameters that allow everything, the starting point
// of a refinement (what alsa-lib's snd_pcm_hw_params_any sends).
func anyHWParams() *hwParams {
	p := &hwParams{Rmask: ^uint32(0), Info: ^uint32(0)}
	for i := range p.Masks {
		for j := range p.Masks[i].Bits {
			p.Masks[i].Bits[j] = ^uint32(0)
		}
	}
	for i := range p.Intervals {
		p.Intervals[i] = interval{Min: 0, Max: ^uint32(0)}
	}
	return p
}

// setMask restricts mask parameter param to the single value v.
func (p *hwParams) setMask(param int, v uint) {
	m := &p.Masks[param-paramAccess]
	m.Bits = [8]uint32{}
	m.Bits[v/32] = 1 << (v % 32)
}

// maskHas reports whether mask parameter param allows v.
func (p *hwParams) maskHas(param int, v uint) bool {
	return p.Masks[param-paramAccess].Bits[v/32]&(1<<(v%32)) != 0
}

func (p *hwParams) interval(param int) *interval {
	return &p.Intervals[param-firstInterval]
}

// setRange restricts interval parameter param to the integers min..max.
func (p *hwParams) setRange(param int, lo, hi uint32) {
	*p.interval(param) = interval{Min: lo, Max: hi, Flags: intervalInteger}
}

// set restricts interval parameter param to exactly v.
func (p *hwParams) set(param int, v uint32) { p.setRange(param, v, v) }

// bounds returns the smallest and largest integer interval param allows
// (an open end excludes its value).
func (p *hwParams) bounds(param int) (lo, hi uint32) {
	iv := p.interval(param)
	lo, hi = iv.Min, iv.Max
	if iv.Flags&intervalOpenMin != 0 {
		lo++
	}
	if iv.Flags&intervalOpenMax != 0 && hi > 0 {
		hi--
	}
	return lo, hi
}

// value returns param's value once the interval is a single one, else
// false.
func (p *hwParams) value(param int) (uint32, bool) {
	lo, hi := p.bounds(param)
	if p.interval(param).Flags&intervalEmpty != 0 || lo != hi {
		return 0, false
	}
	return lo, true
}

// cString returns a NUL-terminated C string from a fixed array.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
