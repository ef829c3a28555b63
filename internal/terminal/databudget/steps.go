package databudget

import "github.com/tuanju/tuanju/media"

// ReserveMinutes is how many minutes of calls at a step what is left of
// the budget must still pay for before a call may start at that step.
// An hour is a week of a child's daily ten-minute calls: a parent sees the
// picture shrink, and the page says so, a week or more before the budget
// is spent, and each step lasts a while rather than a call or two.
const ReserveMinutes = 60

// PerMinute is what a minute of a call costs at each step, both ways on
// the wire (the terminal's plan counts what it sends and what it receives;
// the offer asks the parent's phone for the same profile, so both follow
// it): BenchmarkBytesPerMinute (tests/e2e, README) measured each direction
// at 2.61, 0.90, 0.42 and 0.08 MB/min with IP/UDP headers. Audio only is
// taken at 0.18 a direction, a child talking without pause (DTX sends
// nothing in a pause; the benchmark's voice pauses), so a talkative
// child does not outrun the last step either.
var PerMinute = map[string]int64{
	media.Normal.Name:    5_220_000,
	media.Low.Name:       1_800_000,
	media.VeryLow.Name:   840_000,
	media.AudioOnly.Name: 360_000,
}

// Threshold is what must be left of the budget for a call to start at p:
// ReserveMinutes of it. From the figures above: normal 313 MB, low 108
// MB, very low 50 MB; audio only needs nothing, and is what is left.
func Threshold(p media.Profile) int64 { return ReserveMinutes * PerMinute[p.Name] }

// Step is the richest step of media.Ladder() a call may start at with
// used of total spent: the first whose Threshold what is left still pays.
// No budget (total 0) limits nothing. A spent budget gives audio only,
// never no call.
//
// With 500 MB: normal for the first 187 MB, low to 392 MB, very low to
// 450 MB, then ~140 minutes of voice before the budget is spent, and
// voice calls after that.
func Step(total, used int64) media.Profile {
	ladder := media.Ladder()
	if total <= 0 {
		return ladder[0]
	}
	left := max(total-used, 0)
	for _, p := range ladder {
		if p.Video && left > 0 && left >= Threshold(p) {
			return p
		}
	}
	return media.AudioOnly
}

// Cap is the profile a call starts at: the configured one, or limit when
// limit is leaner (sends less video). A configured profile leaner than the
// limit stays as it is.
func Cap(configured, limit media.Profile) media.Profile {
	if !limit.Video {
		if configured.Video {
			return limit
		}
		return configured
	}
	if configured.Video && configured.VideoBitrate > limit.VideoBitrate {
		return limit
	}
	return configured
}

// VoiceOnly reports whether the budget is what makes a call with the
// configured profile voice only (a unit without a camera is voice only
// anyway, and not because of the budget).
func VoiceOnly(configured, limit media.Profile) bool { return configured.Video && !limit.Video }
