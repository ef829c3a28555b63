package autoanswer

import (
	"errors"
	"testing"
	"time"
)

func TestParseWindow(t *testing.T) {
	tests := []struct {
		in   string
		want Window
		err  bool
	}{
		{"Sat 19:00-20:00", Window{time.Saturday, 19 * 60, 20 * 60}, false},
		{"Sun 00:00-24:00", Window{time.Sunday, 0, 24 * 60}, false},
		{"Mon 07:05-07:35", Window{time.Monday, 7*60 + 5, 7*60 + 35}, false},
		{"sat 19:00-20:00", Window{}, true},      // day spelling is exact
		{"Saturday 19:00-20:00", Window{}, true}, // three letters only
		{"Sat  19:00-20:00", Window{}, true},     // one space
		{"Sat 19:00 - 20:00", Window{}, true},    // no spaces around the dash
		{"Sat 19:00-19:00", Window{}, true},      // empty
		{"Sat 23:00-01:00", Window{}, true},      // crosses midnight
		{"Sat 9:00-10:00", Window{}, true},       // HH
		{"Sat 19:60-20:00", Window{}, true},      // minutes
		{"Sat 24:30-24:45", Window{}, true},      // past the day
		{"Sat 25:00-26:00", Window{}, true},      // hours
		{"Sat +1:00-20:00", Window{}, true},      // signs
		{"Sat 19:00-20:00 ", Window{}, true},     // trailing space
		{"", Window{}, true},
		{"Sat", Window{}, true},
		{"Sat 19:00", Window{}, true},
	}
	for _, tt := range tests {
		got, err := ParseWindow(tt.in)
		if tt.err {
			if !errors.Is(err, ErrBadWindow) {
				t.Errorf("ParseWindow(%q) = %v, %v; want ErrBadWindow", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseWindow(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
}

func TestScheduleContains(t *testing.T) {
	s, err := ParseSchedule([]string{"Sat 19:00-20:00", "Wed 00:00-00:30"})
	if err != nil {
		t.Fatal(err)
	}
	loc := time.FixedZone("CST", 8*3600)
	// 2026-11-28 is a Saturday.
	at := func(day, h, m, sec int) time.Time { return time.Date(2026, 11, day, h, m, sec, 0, loc) }
	tests := []struct {
		t    time.Time
		want bool
	}{
		{at(28, 19, 0, 0), true},
		{at(28, 19, 59, 59), true},
		{at(28, 20, 0, 0), false}, // end is exclusive
		{at(28, 18, 59, 59), false},
		{at(21, 19, 30, 0), true},  // every week
		{at(29, 19, 30, 0), false}, // Sunday
		{at(25, 0, 10, 0), true},   // Wednesday just after midnight
		{at(24, 23, 59, 0), false}, // Tuesday just before
		// Local time decides: 19:30 in Beijing is 11:30 UTC.
		{at(28, 19, 30, 0).UTC(), false},
	}
	for _, tt := range tests {
		if got := s.Contains(tt.t); got != tt.want {
			t.Errorf("Contains(%v) = %v, want %v", tt.t, got, tt.want)
		}
	}
	if Schedule(nil).Contains(at(28, 19, 30, 0)) {
		t.Error("an empty schedule contains a time: auto-answer must be off by default")
	}
	if _, err := ParseSchedule([]string{"Sat 19:00-20:00", "Sat 21:00"}); !errors.Is(err, ErrBadWindow) {
		t.Errorf("ParseSchedule with a bad second window: err = %v", err)
	}
}
