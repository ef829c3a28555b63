// Package databudget is the terminal's monthly data budget: what a call
// may start at as the month's budget runs low (steps.go), the calendar
// month in the unit's time zone that the counters cover (month.go), and
// how a call's bytes are counted from pion's statistics as the data plan
// counts them (meter.go). The counters themselves live in the state file
// (terminalstore.Usage); the terminal's loop ties the parts together.
//
// Families pay for every megabyte on a 4G dongle or village broadband, so
// the programme sets each unit a monthly budget (provisioning bundle's
// data_budget_mb, or terminald.toml's data_budget_mb). As it runs low the
// terminal starts calls on a leaner profile, and with nothing left it
// still calls, voice only: a budget never keeps a child from a parent.
package databudget

import (
	"time"

	"github.com/tuanju/tuanju/media"
)

// MB is the unit budgets are set in: a million bytes, as operators bill.
const MB = 1_000_000

// State is the budget as the terminal shows it: on its status, to the
// parent's page.
type State struct {
	// Total is the month's budget in bytes; 0 is none (no limit).
	Total int64
	// Used is what calls sent and received this month, in bytes; it can
	// pass Total (voice calls go on at zero).
	Used int64
	// Limit is the richest profile a call may start at now (Step).
	Limit media.Profile
	// Until is when the month ends and the counters start again: local
	// midnight on the first of the next month.
	Until time.Time
}

// Left is what remains of the budget, never below zero.
func (s State) Left() int64 { return max(s.Total-s.Used, 0) }

// Of is the budget state at now: total and the month's usage (used bytes
// counted in month, which is ignored unless it is now's month).
func Of(total int64, month string, used int64, now time.Time) State {
	if month != Month(now) {
		used = 0
	}
	return State{Total: total, Used: used, Limit: Step(total, used), Until: MonthEnd(now)}
}
