package databudget

import "time"

// Month names the calendar month of t in t's own location ("2026-11"):
// the counters' key. The terminal reads the clock in the unit's time zone
// (the bundle's time_zone, or $TZ), so a unit in Shanghai starts its new
// month at midnight Beijing time, eight hours before UTC does.
func Month(t time.Time) string { return t.Format("2006-01") }

// MonthEnd is the first instant of the month after t's, in t's location.
func MonthEnd(t time.Time) time.Time {
	y, m, _ := t.Date()
	return time.Date(y, m+1, 1, 0, 0, 0, 0, t.Location())
}
