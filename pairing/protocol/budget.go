package protocol

import (
	"fmt"
	"slices"
	"time"
)

// Budget is a terminal's monthly data budget as the terminal reports it
// with status, and as the server passes it to the parent in presence and
// welcome (docs/protocol.md, "Data budget"): the page shows how much of
// the month's data is used, what calls are limited to, until when, and
// why a call is voice only. Only a unit with a budget reports one.
type Budget struct {
	// TotalBytes is the month's budget; UsedBytes what calls sent and
	// received this month. Used may pass total: voice calls go on.
	TotalBytes int64 `json:"total_bytes"`
	UsedBytes  int64 `json:"used_bytes"`
	// Limit is what a call starts at now (the budget's step, or the
	// unit's own profile when that is leaner): one of the Limit* values.
	Limit string `json:"limit"`
	// Until is when the month ends in the unit's time zone (the counters
	// start again): RFC 3339 with the unit's offset, so the page can say
	// "until 1 December".
	Until time.Time `json:"until"`
}

// Limit values: the terminal's profiles (package media), richest first.
const (
	LimitNormal    = "normal"
	LimitLow       = "low"
	LimitVeryLow   = "very-low"
	LimitAudioOnly = "audio-only"
)

// MaxBudgetBytes bounds a budget and its usage: 1 TB, far past any plan.
const MaxBudgetBytes = 1 << 40

var limits = []string{LimitNormal, LimitLow, LimitVeryLow, LimitAudioOnly}

// ValidLimit reports whether l is one of the Limit* values.
func ValidLimit(l string) bool { return slices.Contains(limits, l) }

// validateBudget checks a budget's fields; it is part of Validate.
func (m *Message) validateBudget(bad func(field, why string) error) error {
	b := m.Budget
	if b == nil {
		return nil
	}
	switch {
	case b.TotalBytes <= 0 || b.TotalBytes > MaxBudgetBytes:
		return bad("budget", fmt.Sprintf("total_bytes must be 1 to %d", int64(MaxBudgetBytes)))
	case b.UsedBytes < 0 || b.UsedBytes > MaxBudgetBytes:
		return bad("budget", fmt.Sprintf("used_bytes must be 0 to %d", int64(MaxBudgetBytes)))
	case !ValidLimit(b.Limit):
		return bad("budget", fmt.Sprintf("limit must be one of %v", limits))
	case b.Until.IsZero() || b.Until.Year() < 2000 || b.Until.Year() > 9999:
		return bad("budget", "until must be a time between the years 2000 and 9999")
	}
	// Like health, only a terminal that is there reports a budget.
	if m.PeerOnline != nil && !*m.PeerOnline {
		return bad("budget", "is only for a terminal that is online (peer_online true)")
	}
	return nil
}
