package alsa

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// refiner is SNDRV_PCM_IOCTL_HW_REFINE: it narrows p to what the hardware
// allows, or fails (EINVAL) when nothing is left. Tests give negotiate a
// fake that models a card's constraints.
type refiner func(p *hwParams) error

// standardRates are tried, nearest first, when the hardware does not have
// the wanted rate exactly (many codecs have a list of discrete rates).
var standardRates = []uint32{8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000}

// negotiate finds hardware parameters for cfg: S16_LE, interleaved
// read/write access, exactly cfg.Channels, and the rate, period size and
// period count nearest to what cfg asks, in that order of importance (as
// alsa-lib's set_near calls would). The result is refined but may leave
// some intervals open; HW_PARAMS picks within them.
func negotiate(hwRefine refiner, cfg Config) (*hwParams, error) {
	// The kernel refines only the parameters named in rmask and clears it
	// on return; every step here asks for all of them again.
	refine := func(p *hwParams) error {
		p.Rmask = ^uint32(0)
		return hwRefine(p)
	}
	p := anyHWParams()
	p.setMask(paramAccess, accessRWInterleaved)
	p.setMask(paramFormat, formatS16LE)
	p.setMask(paramSubformat, subformatStd)
	if err := refine(p); err != nil {
		return nil, fmt.Errorf("alsa: S16_LE interleaved read/write: %w (%v)", ErrUnsupported, err)
	}
	minCh, maxCh := p.bounds(paramChannels)
	q := *p
	q.set(paramChannels, uint32(cfg.Channels))
	if err := refine(&q); err != nil {
		return nil, fmt.Errorf("alsa: %d channels (hardware has %d..%d): %w", cfg.Channels, minCh, maxCh, ErrUnsupported)
	}
	*p = q

	minRate, maxRate := p.bounds(paramRate)
	ok := false
	for _, r := range rateCandidates(uint32(cfg.Rate), minRate, maxRate) {
		q := *p
		q.set(paramRate, r)
		if refine(&q) == nil {
			*p, ok = q, true
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("alsa: no rate near %d Hz (hardware has %d..%d): %w", cfg.Rate, minRate, maxRate, ErrUnsupported)
	}
	rate, _ := p.value(paramRate)

	period := uint32(max(1, int64(rate)*int64(cfg.PeriodTime)/int64(time.Second)))
	if err := setNear(refine, p, paramPeriodSize, period); err != nil {
		return nil, fmt.Errorf("alsa: period of %d frames: %w", period, err)
	}
	if err := setNear(refine, p, paramPeriods, uint32(cfg.Periods)); err != nil {
		return nil, fmt.Errorf("alsa: %d periods: %w", cfg.Periods, err)
	}
	return p, nil
}

// rateCandidates lists the rates to try for want: want itself, then the
// standard rates and the hardware's limits, nearest first, all within
// [min, max].
func rateCandidates(want, lo, hi uint32) []uint32 {
	var c []uint32
	add := func(r uint32) {
		if r >= lo && r <= hi && r > 0 && !slices.Contains(c, r) {
			c = append(c, r)
		}
	}
	add(want)
	rest := append(slices.Clone(standardRates), lo, hi)
	slices.SortStableFunc(rest, func(a, b uint32) int {
		return cmp.Compare(absDiff(a, want), absDiff(b, want))
	})
	for _, r := range rest {
		add(r)
	}
	return c
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// setNear narrows interval param of p to the value nearest want that the
// hardware accepts: want itself, else the smallest allowed above it or the
// largest below it, whichever is nearer. If no single value refines (odd
// step constraints), p keeps the range and HW_PARAMS chooses.
func setNear(refine refiner, p *hwParams, param int, want uint32) error {
	try := func(lo, hi uint32) (hwParams, bool) {
		q := *p
		q.setRange(param, lo, hi)
		return q, refine(&q) == nil
	}
	if q, ok := try(want, want); ok {
		*p = q
		return nil
	}
	lo, hi := p.bounds(param)
	var cands []uint32
	if want < hi {
		if q, ok := try(max(want, lo), hi); ok {
			v, _ := q.bounds(param)
			cands = append(cands, v)
		}
	}
	if want > lo {
		if q, ok := try(lo, min(want, hi)); ok {
			_, v := q.bounds(param)
			cands = append(cands, v)
		}
	}
	slices.SortStableFunc(cands, func(a, b uint32) int {
		return cmp.Compare(absDiff(a, want), absDiff(b, want))
	})
	for _, v := range cands {
		if q, ok := try(v, v); ok {
			*p = q
			return nil
		}
	}
	if q, ok := try(lo, hi); ok {
		*p = q
		return nil
	}
	return fmt.Errorf("hardware allows %d..%d but none refines: %w", lo, hi, ErrUnsupported)
}

// paramsFrom reads the chosen setup out of parameters HW_PARAMS returned.
func paramsFrom(p *hwParams) (Params, error) {
	var out Params
	for _, f := range []struct {
		param int
		dst   *int
		name  string
	}{
		{paramChannels, &out.Channels, "channels"},
		{paramRate, &out.Rate, "rate"},
		{paramPeriodSize, &out.PeriodFrames, "period size"},
		{paramBufferSize, &out.BufferFrames, "buffer size"},
	} {
		v, ok := p.value(f.param)
		if !ok || v == 0 {
			lo, hi := p.bounds(f.param)
			return Params{}, fmt.Errorf("alsa: hw_params left %s at %d..%d", f.name, lo, hi)
		}
		*f.dst = int(v)
	}
	// An exact fraction, when the driver gives one, beats the interval
	// (which can be rounded for rates like 44100 on a 48k-derived clock).
	if p.RateDen != 0 && p.RateNum%p.RateDen == 0 {
		out.Rate = int(p.RateNum / p.RateDen)
	}
	return out, nil
}
