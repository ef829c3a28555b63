package terminalstore

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestDataUsageSurvivesReopenAndReset: counts add up in a real bbolt
// file, survive closing and reopening it, a factory reset leaves them, and
// a new month starts from zero.
func TestDataUsageSurvivesReopenAndReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	if u, err := s.DataUsage(); err != nil || u != (Usage{}) {
		t.Fatalf("fresh file: %+v, %v; want nothing counted", u, err)
	}
	if _, err := s.AddDataUsage("2026-11", 1000, 2000); err != nil {
		t.Fatal(err)
	}
	if u, err := s.AddDataUsage("2026-11", 10, 20); err != nil || u != (Usage{"2026-11", 1010, 2020}) {
		t.Fatalf("after two adds: %+v, %v", u, err)
	}
	if err := s.FactoryReset(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, path)
	u, err := s.DataUsage()
	if err != nil || u != (Usage{"2026-11", 1010, 2020}) || u.Total() != 3030 {
		t.Fatalf("reopened after a reset: %+v, %v; want 2026-11 1010/2020", u, err)
	}
	if u, err := s.AddDataUsage("2026-12", 5, 7); err != nil || u != (Usage{"2026-12", 5, 7}) {
		t.Fatalf("new month: %+v, %v; want the counters started again", u, err)
	}
	if _, err := s.AddDataUsage("2026-12", -1, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("a negative count: %v, want ErrInvalid", err)
	}
	s.Close()
}
