package rendezvous

import (
	"testing"
	"time"
)

// TestNotifierAllowance: per_family_per_day counts events in any 24 hours,
// per family.
func TestNotifierAllowance(t *testing.T) {
	n := &notifier{cfg: NotifierConfig{PerFamilyPerDay: 2}, sent: map[string][]time.Time{}}
	t0 := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	steps := []struct {
		family string
		at     time.Duration
		want   bool
	}{
		{"a", 0, true},
		{"a", time.Hour, true},
		{"a", 2 * time.Hour, false}, // the third in 24 h
		{"b", 2 * time.Hour, true},  // another family's own allowance
		{"a", 24 * time.Hour, true}, // the first has aged out
		{"a", 24*time.Hour + time.Minute, false},
		{"a", 25 * time.Hour, true}, // the second has too
	}
	for i, s := range steps {
		if got := n.allow(s.family, t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d (%s at +%v): allow = %v, want %v", i, s.family, s.at, got, s.want)
		}
	}
}
