package alsa

import (
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"
)

// fakeHW models a card's constraints the way the kernel's HW_REFINE applies
// them: each interval the caller sends is narrowed to what the card allows,
// EINVAL if nothing is left.
type fakeHW struct {
	formats    []uint // allowed format bits
	channels   [2]uint32
	rates      []uint32 // discrete rates; nil means continuous rateRange
	rateRange  [2]uint32
	periodStep uint32 // period sizes are multiples of this
	period     [2]uint32
	periods    [2]uint32
	refines    int
	badRmask   bool
}

func (h *fakeHW) refine(p *hwParams) error {
	h.refines++
	if p.Rmask != ^uint32(0) {
		h.badRmask = true
	}
	ok := false
	for _, f := range h.formats {
		if p.maskHas(paramFormat, f) {
			ok = true
		}
	}
	if !ok || !p.maskHas(paramAccess, accessRWInterleaved) {
		return syscall.EINVAL
	}
	narrow := func(param int, lo, hi uint32) bool {
		a, b := p.bounds(param)
		lo, hi = max(a, lo), min(b, hi)
		if lo > hi {
			return false
		}
		p.setRange(param, lo, hi)
		return true
	}
	if !narrow(paramChannels, h.channels[0], h.channels[1]) {
		return syscall.EINVAL
	}
	if h.rates == nil {
		if !narrow(paramRate, h.rateRange[0], h.rateRange[1]) {
			return syscall.EINVAL
		}
	} else {
		lo, hi := p.bounds(paramRate)
		var in []uint32
		for _, r := range h.rates {
			if r >= lo && r <= hi {
				in = append(in, r)
			}
		}
		if len(in) == 0 {
			return syscall.EINVAL
		}
		p.setRange(paramRate, slices.Min(in), slices.Max(in))
	}
	lo, hi := p.bounds(paramPeriodSize)
	lo, hi = max(lo, h.period[0]), min(hi, h.period[1])
	if s := h.periodStep; s > 1 {
		lo = (lo + s - 1) / s * s
		hi = hi / s * s
	}
	if lo > hi {
		return syscall.EINVAL
	}
	p.setRange(paramPeriodSize, lo, hi)
	if !narrow(paramPeriods, h.periods[0], h.periods[1]) {
		return syscall.EINVAL
	}
	if ps, ok := p.value(paramPeriodSize); ok {
		if n, ok := p.value(paramPeriods); ok {
			p.set(paramBufferSize, ps*n)
		}
	}
	p.Rmask = 0
	return nil
}

// aloopLike is snd-aloop's hardware: anything from 8 to 192 kHz, 1..32
// channels, periods of 16 bytes up.
func aloopLike() *fakeHW {
	return &fakeHW{
		formats: []uint{formatS16LE, 10}, channels: [2]uint32{1, 32},
		rateRange: [2]uint32{8000, 192000}, period: [2]uint32{16, 1 << 18}, periods: [2]uint32{1, 1024},
	}
}

func TestNegotiate(t *testing.T) {
	codec := func() *fakeHW { // a typical I2S codec: stereo only, two rates, 64-frame steps
		return &fakeHW{
			formats: []uint{formatS16LE}, channels: [2]uint32{2, 2}, rates: []uint32{44100, 48000},
			periodStep: 64, period: [2]uint32{64, 8192}, periods: [2]uint32{2, 3},
		}
	}
	tests := []struct {
		name    string
		hw      *fakeHW
		cfg     Config
		want    Params // Rate, PeriodFrames, and BufferFrames as PeriodFrames*periods
		wantErr error
	}{
		{"aloop defaults", aloopLike(), Config{}, Params{Channels: 1, Rate: 48000, PeriodFrames: 960, BufferFrames: 3840}, nil},
		{"aloop stereo 16k 10ms", aloopLike(), Config{Channels: 2, Rate: 16000, PeriodTime: 10 * time.Millisecond, Periods: 2},
			Params{Channels: 2, Rate: 16000, PeriodFrames: 160, BufferFrames: 320}, nil},
		{"codec 48k", codec(), Config{Channels: 2}, Params{Channels: 2, Rate: 48000, PeriodFrames: 960, BufferFrames: 2880}, nil},
		// 20 ms at 44.1 kHz is 882 frames: 896 is the nearest multiple of 64.
		{"codec 44.1k", codec(), Config{Channels: 2, Rate: 44100}, Params{Channels: 2, Rate: 44100, PeriodFrames: 896, BufferFrames: 2688}, nil},
		// The period is the wanted time at the rate the hardware gave.
		{"codec nearest to 96k", codec(), Config{Channels: 2, Rate: 96000}, Params{Channels: 2, Rate: 48000, PeriodFrames: 960, BufferFrames: 2880}, nil},
		{"codec nearest to 22.05k", codec(), Config{Channels: 2, Rate: 22050}, Params{Channels: 2, Rate: 44100, PeriodFrames: 896, BufferFrames: 2688}, nil},
		{"codec has no mono", codec(), Config{Channels: 1}, Params{}, ErrUnsupported},
		{"no S16_LE", &fakeHW{formats: []uint{10}, channels: [2]uint32{1, 2}, rateRange: [2]uint32{8000, 48000}, period: [2]uint32{1, 1 << 20}, periods: [2]uint32{2, 8}},
			Config{}, Params{}, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg.WithDefaults()
			p, err := negotiate(tt.hw.refine, cfg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("negotiate = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("negotiate: %v", err)
			}
			if tt.hw.badRmask {
				t.Error("a refine was sent without rmask covering every parameter")
			}
			got, err := paramsFrom(p)
			if err != nil {
				t.Fatalf("paramsFrom: %v", err)
			}
			if got != tt.want {
				t.Errorf("negotiated %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRateCandidates(t *testing.T) {
	got := rateCandidates(47000, 8000, 48000)
	if got[0] != 47000 || got[1] != 48000 || got[2] != 44100 {
		t.Errorf("candidates for 47000 in 8000..48000 start %v, want [47000 48000 44100 ...]", got[:3])
	}
	for _, r := range got {
		if r < 8000 || r > 48000 {
			t.Errorf("candidate %d outside the hardware's range", r)
		}
	}
	if got := rateCandidates(48000, 50000, 60000); !slices.Equal(got, []uint32{50000, 60000}) {
		t.Errorf("candidates for 48000 in 50000..60000 = %v, want the range's ends", got)
	}
}
