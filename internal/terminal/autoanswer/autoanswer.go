// Package autoanswer is the terminal's "reunion window" schedule: the weekly
// times (say, Saturday 19:00-20:00, when a parent working far away always
// calls) in which a ring from the paired parent is answered without a press.
// The schedule only says whether a moment is inside a window; who may be
// auto-answered, and how (ring light and sound first, then the connect sound
// and the media gate), is decided by internal/call and internal/terminal.
package autoanswer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadWindow: a window string does not follow the "Sat 19:00-20:00" form.
var ErrBadWindow = errors.New("autoanswer: bad window")

// Window is one weekly window: Day, from Start to End (minutes after local
// midnight; End may be 24*60). A window never crosses midnight: write two.
type Window struct {
	Day        time.Weekday
	Start, End int
}

var days = map[string]time.Weekday{
	"Sun": time.Sunday, "Mon": time.Monday, "Tue": time.Tuesday, "Wed": time.Wednesday,
	"Thu": time.Thursday, "Fri": time.Friday, "Sat": time.Saturday,
}

// ParseWindow parses "Sat 19:00-20:00": a three-letter English day name,
// one space, and two 24-hour HH:MM times with the start before the end.
// Parsing is strict — no other spellings, no spaces inside — because a
// mistyped window would silently auto-answer at the wrong time.
func ParseWindow(s string) (Window, error) {
	bad := func(why string) (Window, error) {
		return Window{}, fmt.Errorf("%w %q: %s (want e.g. \"Sat 19:00-20:00\")", ErrBadWindow, s, why)
	}
	day, span, ok := strings.Cut(s, " ")
	if !ok {
		return bad("no space between day and times")
	}
	d, ok := days[day]
	if !ok {
		return bad("day must be one of Mon Tue Wed Thu Fri Sat Sun")
	}
	from, to, ok := strings.Cut(span, "-")
	if !ok {
		return bad("times must be HH:MM-HH:MM")
	}
	start, err := clock(from)
	if err != nil {
		return bad(err.Error())
	}
	end, err := clock(to)
	if err != nil {
		return bad(err.Error())
	}
	if start >= end {
		return bad("start must be before end (a window cannot cross midnight; write two)")
	}
	return Window{Day: d, Start: start, End: end}, nil
}

// clock parses HH:MM (00:00 to 24:00) into minutes.
func clock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("time %q is not HH:MM", s)
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || s[0] == '+' || s[0] == '-' || s[3] == '+' || s[3] == '-' {
		return 0, fmt.Errorf("time %q is not HH:MM", s)
	}
	if h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time %q is out of range", s)
	}
	return h*60 + m, nil
}

// String formats w the way ParseWindow reads it.
func (w Window) String() string {
	return fmt.Sprintf("%s %02d:%02d-%02d:%02d", w.Day.String()[:3], w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// Contains reports whether t, in its own location, falls inside w: from
// Start inclusive to End exclusive.
func (w Window) Contains(t time.Time) bool {
	if t.Weekday() != w.Day {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	return m >= w.Start && m < w.End
}

// Schedule is a set of windows; empty means auto-answer is off.
type Schedule []Window

// ParseSchedule parses every window, reporting the first bad one.
func ParseSchedule(ss []string) (Schedule, error) {
	var out Schedule
	for i, s := range ss {
		w, err := ParseWindow(s)
		if err != nil {
			return nil, fmt.Errorf("window %d: %w", i+1, err)
		}
		out = append(out, w)
	}
	return out, nil
}

// Contains reports whether t falls inside any window.
func (s Schedule) Contains(t time.Time) bool {
	for _, w := range s {
		if w.Contains(t) {
			return true
		}
	}
	return false
}
