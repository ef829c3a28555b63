package rendezvous

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// The fleet report is what the programme's operators see of its units
// (GET /fleet, fleet_http.go; /fleet/metrics): each shipped unit's status
// and when it was last seen, and per site how much families call: calls and
// minutes per child this week, and the share of children with a call. It
// never holds a call's content, a parent's phone number, or who called whom
// at what minute: per-unit call figures never leave this file, and a site
// with fewer than MinSiteChildren children shows no call figures at all (a
// school with two units would otherwise tell one family's calls).

// Unit statuses in a fleet report.
const (
	StatusNeverPaired = "never_paired"
	StatusPaired      = "paired"
	StatusOffline7d   = "offline_7d" // paired, not seen for more than OfflineAfter
	StatusRevoked     = "revoked"
	// StatusNeedsRepair: the unit's last status report (since the server
	// started) said it needs repair; ReportUnit.Faults names the parts.
	StatusNeedsRepair = "needs_repair"
)

// Statuses lists the statuses, in the order the report shows them.
var Statuses = []string{StatusNeverPaired, StatusPaired, StatusOffline7d, StatusNeedsRepair, StatusRevoked}

// FaultParts are the parts a unit that needs repair may name
// (protocol.Fault*).
var FaultParts = []string{protocol.FaultButton, protocol.FaultCamera, protocol.FaultMicrophone, protocol.FaultSpeaker, protocol.FaultStorage}

// OfflineAfter is how long a paired unit may go unseen before the report
// calls it offline.
const OfflineAfter = 7 * 24 * time.Hour

// MinSiteChildren is the fewest children a site needs for its call figures
// to be shown.
const MinSiteChildren = 3

// ReportUnit is one shipped unit in the report.
type ReportUnit struct {
	Unit     string    `json:"unit"`
	DeviceID string    `json:"device_id"`
	Site     string    `json:"site"`
	Region   string    `json:"region"`
	Batch    string    `json:"batch"`
	Status   string    `json:"status"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Version is the software version the unit said at its last login
	// since the server started ("" when it has not logged in since).
	Version string `json:"version,omitempty"`
	// Faults are the parts a unit that needs repair named (camera,
	// button, microphone, speaker, storage); none for other statuses.
	Faults []string `json:"faults,omitempty"`
}

// SiteFigures are a site's units and its families' calls this week.
type SiteFigures struct {
	Site   string         `json:"site"`
	Region string         `json:"region"`
	Units  int            `json:"units"`
	Status map[string]int `json:"status"` // status → units
	// Faults counts the units that need repair by the part they named
	// (a unit naming two parts counts under both).
	Faults map[string]int `json:"faults"`
	// Shown is false for a site with fewer than MinSiteChildren children:
	// the call figures below are then zero and must not be shown.
	Shown bool `json:"shown"`
	// Calls and Minutes count answered calls that started this week (both
	// directions), per child (unit); WithCall is the share of children
	// with at least one.
	CallsPerChild   float64 `json:"calls_per_child"`
	MinutesPerChild float64 `json:"minutes_per_child"`
	WithCall        float64 `json:"with_call"`
}

// Report is the fleet report.
type Report struct {
	GeneratedAt time.Time     `json:"generated_at"`
	WeekStart   time.Time     `json:"week_start"` // Monday 00:00 UTC
	Units       []ReportUnit  `json:"units"`
	Sites       []SiteFigures `json:"sites"`
}

// weekStart is the Monday 00:00 UTC that starts now's week.
func weekStart(now time.Time) time.Time {
	now = now.UTC()
	d := (int(now.Weekday()) + 6) % 7
	y, m, day := now.AddDate(0, 0, -d).Date()
	return time.Date(y, m, day, 0, 0, 0, 0, time.UTC)
}

// ErrNoFleet: the server has no manifests configured ([fleet] key_files).
var ErrNoFleet = errors.New("no fleet manifests configured")

// FleetReport computes the report over the units of the imported
// manifests, at now.
func (s *Server) FleetReport(now time.Time) (Report, error) {
	if s.fleet == nil {
		return Report{}, fmt.Errorf("rendezvous: fleet report: %w", ErrNoFleet)
	}
	week := weekStart(now)
	rep := Report{GeneratedAt: now.UTC(), WeekStart: week}
	type site struct {
		fig                      SiteFigures
		calls, minutes, withCall float64
	}
	sites := map[string]*site{}
	for id, fu := range *s.fleet.units.Load() {
		u := ReportUnit{Unit: fu.Unit.Unit, DeviceID: id, Site: fu.Site, Region: fu.Region, Batch: fu.Batch, Online: s.Online(id)}
		d, err := s.store.Device(id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Report{}, fmt.Errorf("rendezvous: fleet report: %w", err)
		}
		u.LastSeen, u.Version = d.LastSeen, d.Version
		if u.Online {
			u.LastSeen = now.UTC()
		}
		parentID, err := s.store.ParentOf(id)
		paired := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Report{}, fmt.Errorf("rendezvous: fleet report: %w", err)
		}
		_, revoked := s.revoked.revoked(id)
		broken, faults := s.fleet.needsRepair(id, d)
		switch {
		case revoked:
			u.Status = StatusRevoked
		case broken:
			u.Status, u.Faults = StatusNeedsRepair, faults
		case !paired:
			u.Status = StatusNeverPaired
		case !u.Online && now.Sub(u.LastSeen) > OfflineAfter:
			u.Status = StatusOffline7d
		default:
			u.Status = StatusPaired
		}
		key := fu.Site + "\x00" + fu.Region
		st := sites[key]
		if st == nil {
			st = &site{fig: SiteFigures{Site: fu.Site, Region: fu.Region, Status: map[string]int{}, Faults: map[string]int{}}}
			sites[key] = st
		}
		st.fig.Units++
		st.fig.Status[u.Status]++
		for _, part := range u.Faults {
			st.fig.Faults[part]++
		}
		if paired {
			calls, minutes, err := s.weekCalls(parentID, week)
			if err != nil {
				return Report{}, err
			}
			st.calls += float64(calls)
			st.minutes += minutes
			if calls > 0 {
				st.withCall++
			}
		}
		rep.Units = append(rep.Units, u)
	}
	for _, st := range sites {
		f := st.fig
		if f.Units >= MinSiteChildren {
			f.Shown = true
			n := float64(f.Units)
			f.CallsPerChild, f.MinutesPerChild, f.WithCall = st.calls/n, st.minutes/n, st.withCall/n
		}
		rep.Sites = append(rep.Sites, f)
	}
	slices.SortFunc(rep.Units, func(a, b ReportUnit) int { return strings.Compare(a.Unit, b.Unit) })
	slices.SortFunc(rep.Sites, func(a, b SiteFigures) int {
		return strings.Compare(a.Region+"\x00"+a.Site, b.Region+"\x00"+b.Site)
	})
	return rep, nil
}

// weekCalls counts a family's answered calls that started since week, and
// their minutes.
func (s *Server) weekCalls(parentID string, week time.Time) (int, float64, error) {
	recs, err := s.store.CallLog(parentID, false)
	if err != nil {
		return 0, 0, fmt.Errorf("rendezvous: fleet report: %w", err)
	}
	n, minutes := 0, 0.0
	for _, r := range recs {
		if r.Outcome != protocol.OutcomeAnswered || r.StartedAt.Before(week) || r.AnsweredAt.IsZero() {
			continue
		}
		n++
		if !r.EndedAt.IsZero() && r.EndedAt.After(r.AnsweredAt) {
			minutes += r.EndedAt.Sub(r.AnsweredAt).Minutes()
		}
	}
	return n, minutes, nil
}

// online reports whether a terminal is connected now.
func (h *hub) online(deviceID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.terminals[deviceID]
	return ok
}
