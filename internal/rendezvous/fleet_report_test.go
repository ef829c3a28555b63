package rendezvous_test

import (
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/manifest"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// fleetSite writes a signed manifest of units at sites.
func fleetManifest(t *testing.T, key *signing.Key, units []testUnit, sites []string) string {
	t.Helper()
	m := manifest.Manifest{Format: manifest.Format, Programme: "Test", Batch: "B1", CreatedAt: time.Now().UTC()}
	for i, u := range units {
		m.Units = append(m.Units, manifest.Unit{Unit: "B1-0000" + string(rune('1'+i)), DeviceID: u.id, Site: sites[i], Region: "河北"})
	}
	doc, sig, err := manifest.Encode(m, key)
	check(t, err)
	path := filepath.Join(t.TempDir(), "manifest.json")
	check(t, os.WriteFile(path, doc, 0o644))
	check(t, os.WriteFile(path+".sig", sig, 0o644))
	return path
}

// TestFleetReport: the report and the Prometheus aggregates over a fleet of
// five units at two sites: paired with and without a call this week, never
// paired, revoked, offline for more than 7 days, needs repair (what the unit
// said before it went away, with the parts it named; a unit that says it is
// well again is not); figures per child for the site of three, none for the
// site of two; only an operator's token gets the report.
func TestFleetReport(t *testing.T) {
	ctx := testCtx(t)
	ca, caFile, sk, keyFile := newProgramme(t)
	a1, a2, a3, b1, b2 := newTestUnit(t, ca), newTestUnit(t, ca), newTestUnit(t, ca), newTestUnit(t, ca), newTestUnit(t, ca)
	fleetDir := filepath.Join(t.TempDir(), "fleet")
	keys := try(rendezvous.LoadFleetKeys([]string{keyFile})).must(t)
	try2(rendezvous.ImportManifest(fleetDir, fleetManifest(t, sk, []testUnit{a1, a2, a3, b1, b2}, []string{"新河小学", "新河小学", "新河小学", "东关小学", "东关小学"}), keys)).must(t)
	ops := filepath.Join(t.TempDir(), "operators")
	token := try(rendezvous.AddOperator(ops, "hebei-office")).must(t)
	if _, err := rendezvous.AddOperator(ops, "hebei-office"); err == nil {
		t.Fatal("the same operator added twice")
	}
	revoked := filepath.Join(t.TempDir(), "revoked.txt")
	check(t, os.WriteFile(revoked, []byte(b1.id+" lost\n"), 0o644))
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.DeviceCAFiles = append(c.DeviceCAFiles, caFile)
		c.Fleet = rendezvous.FleetConfig{Dir: fleetDir, KeyFiles: []string{keyFile}, OperatorsFile: ops}
		c.RevokedDevicesFile = revoked
	})
	// a1 and a2 pair; a2 goes away; a1 stays online and its family calls.
	var parentOfA1 string
	for i, u := range []testUnit{a1, a2} {
		term := try(rt.DialTerminalCert(ctx, srv.WSURL, u.key, u.cert)).must(t)
		cred := try(rt.Pair(ctx, srv.WSURL, term, pairing.NewSecret())).must(t)
		if i == 0 {
			parentOfA1 = cred.ParentID
			t.Cleanup(func() { term.Close() })
		} else {
			term.Close()
		}
	}
	// b2, never paired, says its camera and button are broken and goes
	// away; a1 says its microphone is, then that it is well again.
	broken := try(rt.DialTerminalCert(ctx, srv.WSURL, b2.key, b2.cert)).must(t)
	check(t, broken.Send(ctx, protocol.Message{Type: protocol.TypeStatus, Health: protocol.HealthNeedsRepair, Faults: []string{protocol.FaultCamera, protocol.FaultButton}}))
	check(t, broken.Barrier(ctx))
	broken.Close()
	a1Term := try(rt.DialTerminalCert(ctx, srv.WSURL, a1.key, a1.cert)).must(t) // replaces a1's socket
	t.Cleanup(func() { a1Term.Close() })
	unitStatus := func(id string) (string, []string) {
		rep := try(srv.FleetReport(time.Now())).must(t)
		for _, u := range rep.Units {
			if u.DeviceID == id {
				return u.Status, u.Faults
			}
		}
		return "", nil
	}
	check(t, a1Term.Send(ctx, protocol.Message{Type: protocol.TypeStatus, Health: protocol.HealthNeedsRepair, Faults: []string{protocol.FaultMicrophone}}))
	eventually(t, ctx, "a1 needs repair (microphone)", func() bool {
		st, faults := unitStatus(a1.id)
		return st == rendezvous.StatusNeedsRepair && slices.Equal(faults, []string{protocol.FaultMicrophone})
	})
	check(t, a1Term.Send(ctx, protocol.Message{Type: protocol.TypeStatus, Health: protocol.HealthReady}))
	eventually(t, ctx, "a1 well again", func() bool { st, _ := unitStatus(a1.id); return st == rendezvous.StatusPaired })
	eventually(t, ctx, "b2 is offline", func() bool {
		for _, u := range try(srv.FleetReport(time.Now())).must(t).Units {
			if u.DeviceID == b2.id {
				return !u.Online
			}
		}
		return false
	})

	now := time.Now().UTC()
	week := now.Add(-time.Duration(int(now.Weekday()+6)%7) * 24 * time.Hour).Truncate(24 * time.Hour)
	start := week.Add(now.Sub(week) / 2)
	end := start.Add(min(12*time.Minute, now.Sub(start)))
	check(t, srv.RequireStore(t).PutCall(parentOfA1, protocol.CallRecord{CallID: "c1", Direction: protocol.DirFromTerminal, StartedAt: start, AnsweredAt: start, EndedAt: end, Outcome: protocol.OutcomeAnswered}))
	check(t, srv.RequireStore(t).PutCall(parentOfA1, protocol.CallRecord{CallID: "c2", Direction: protocol.DirFromParent, StartedAt: start, Outcome: protocol.OutcomeMissed}))
	check(t, srv.RequireStore(t).PutCall(parentOfA1, protocol.CallRecord{CallID: "c0", Direction: protocol.DirFromParent, StartedAt: week.Add(-time.Hour), AnsweredAt: week.Add(-time.Hour), EndedAt: week, Outcome: protocol.OutcomeAnswered}))
	eventually(t, ctx, "a2 is offline", func() bool {
		rep := try(srv.FleetReport(time.Now())).must(t)
		for _, u := range rep.Units {
			if u.DeviceID == a2.id {
				return !u.Online
			}
		}
		return false
	})

	// Only an operator gets the report.
	get := func(path, tok string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		check(t, err)
		return res
	}
	for _, tok := range []string{"", "not-a-token"} {
		if res := get("/fleet/api/report", tok); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("report with token %q: %s", tok, res.Status)
		}
	}
	res := get("/fleet/api/report", token)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(body), `"never_paired"`) {
		t.Fatalf("report: %s %s", res.Status, body)
	}
	for _, secret := range []string{parentOfA1, "c1", "+86"} {
		if strings.Contains(string(body), secret) {
			t.Fatalf("the report carries %q (a parent or a call)", secret)
		}
	}

	rep := try(srv.FleetReport(now)).must(t)
	status := map[string]string{}
	for _, u := range rep.Units {
		status[u.DeviceID] = u.Status
	}
	want := map[string]string{a1.id: rendezvous.StatusPaired, a2.id: rendezvous.StatusPaired, a3.id: rendezvous.StatusNeverPaired, b1.id: rendezvous.StatusRevoked,
		b2.id: rendezvous.StatusNeedsRepair}
	for id, w := range want {
		if status[id] != w {
			t.Errorf("unit %s: %s, want %s", id, status[id], w)
		}
	}
	for _, u := range rep.Units {
		if u.DeviceID == b2.id && !slices.Equal(u.Faults, []string{protocol.FaultCamera, protocol.FaultButton}) || u.DeviceID != b2.id && u.Faults != nil {
			t.Errorf("unit %s (%s) names faults %v", u.Unit, u.Status, u.Faults)
		}
		if u.DeviceID == a1.id && u.Version == "" || u.DeviceID == a3.id && u.Version != "" {
			t.Errorf("unit %s version %q: want the one said at login, none for a unit never seen", u.Unit, u.Version)
		}
	}
	minutes := end.Sub(start).Minutes()
	var xinhe, dongguan rendezvous.SiteFigures
	for _, s := range rep.Sites {
		switch s.Site {
		case "新河小学":
			xinhe = s
		case "东关小学":
			dongguan = s
		}
	}
	if !xinhe.Shown || xinhe.Units != 3 || math.Abs(xinhe.CallsPerChild-1.0/3) > 1e-9 || math.Abs(xinhe.MinutesPerChild-minutes/3) > 1e-6 || math.Abs(xinhe.WithCall-1.0/3) > 1e-9 {
		t.Fatalf("新河小学 figures %+v, want 1 call and %.2f minutes over 3 children", xinhe, minutes)
	}
	if dongguan.Shown || dongguan.CallsPerChild != 0 || dongguan.Status[rendezvous.StatusRevoked] != 1 {
		t.Fatalf("东关小学 (two children) figures %+v, want none shown", dongguan)
	}
	if dongguan.Status[rendezvous.StatusNeedsRepair] != 1 || dongguan.Faults[protocol.FaultCamera] != 1 || dongguan.Faults[protocol.FaultButton] != 1 ||
		dongguan.Faults[protocol.FaultMicrophone] != 0 || xinhe.Status[rendezvous.StatusNeedsRepair] != 0 || len(xinhe.Faults) != 0 {
		t.Fatalf("needs repair: 东关小学 %v %v, 新河小学 %v %v; want one unit (camera, button) at 东关小学", dongguan.Status, dongguan.Faults, xinhe.Status, xinhe.Faults)
	}
	// Eight days on, a2 (not seen since) is offline; a1 (online) is not.
	later := try(srv.FleetReport(time.Now().Add(8 * 24 * time.Hour))).must(t)
	for _, u := range later.Units {
		if u.DeviceID == a2.id && u.Status != rendezvous.StatusOffline7d || u.DeviceID == a1.id && u.Status != rendezvous.StatusPaired {
			t.Fatalf("eight days on, %s is %s", u.Unit, u.Status)
		}
	}

	// Prometheus: scraped from the server's own machine, parsed with the
	// Prometheus text parser.
	res = get("/fleet/metrics", "")
	if res.StatusCode != 200 {
		t.Fatalf("metrics: %s", res.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	check(t, err)
	gauge := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := families[name]
		if f == nil {
			t.Fatalf("no %s in the scrape", name)
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	if v := gauge("tuanju_fleet_units", map[string]string{"site": "新河小学", "status": "paired"}); v != 2 {
		t.Errorf("paired units at 新河小学: %v, want 2", v)
	}
	if v := gauge("tuanju_fleet_units", map[string]string{"site": "东关小学", "status": "revoked"}); v != 1 {
		t.Errorf("revoked units at 东关小学: %v, want 1", v)
	}
	if v := gauge("tuanju_fleet_units", map[string]string{"site": "东关小学", "status": "needs_repair"}); v != 1 {
		t.Errorf("units needing repair at 东关小学: %v, want 1", v)
	}
	for part, want := range map[string]float64{"camera": 1, "button": 1, "microphone": 0} {
		if v := gauge("tuanju_fleet_units_needs_repair", map[string]string{"site": "东关小学", "part": part}); v != want {
			t.Errorf("units at 东关小学 needing their %s repaired: %v, want %v", part, v, want)
		}
	}
	if v := gauge("tuanju_fleet_children_with_call_ratio", map[string]string{"site": "新河小学"}); math.Abs(v-1.0/3) > 1e-9 {
		t.Errorf("share with a call: %v, want 1/3", v)
	}
	if v := gauge("tuanju_fleet_units_online", nil); v != 1 {
		t.Errorf("online: %v, want 1", v)
	}
	if f := families["tuanju_fleet_calls_per_child_week"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == "东关小学" {
					t.Error("call figures for a site of one child")
				}
			}
		}
	}
	if families["go_goroutines"] == nil || families["process_cpu_seconds_total"] == nil {
		t.Error("no Go runtime or process metrics")
	}
}

func try2[A, B any](a A, b B, err error) result[A] { return result[A]{a, err} }

// TestFleetNeedsRepairOutlivesRestart: a unit that said it needs repair
// (camera) and went away is still shown needing repair, with the part it
// named and the version it said at login, by a server restarted on the
// same data directory; one that then says it is well again is paired, and
// that too outlives a restart. A broken unit may never log in again, so
// the programme would otherwise lose the one report that says to send a
// technician.
func TestFleetNeedsRepairOutlivesRestart(t *testing.T) {
	ctx := testCtx(t)
	ca, caFile, sk, keyFile := newProgramme(t)
	u := newTestUnit(t, ca)
	fleetDir := filepath.Join(t.TempDir(), "fleet")
	keys := try(rendezvous.LoadFleetKeys([]string{keyFile})).must(t)
	try2(rendezvous.ImportManifest(fleetDir, fleetManifest(t, sk, []testUnit{u}, []string{"新河小学"}), keys)).must(t)
	dir := t.TempDir()
	start := func() *rt.Server {
		return rt.NewServer(t, func(c *rendezvous.Config) {
			c.DataDir = dir
			c.DeviceCAFiles = append(c.DeviceCAFiles, caFile)
			c.Fleet = rendezvous.FleetConfig{Dir: fleetDir, KeyFiles: []string{keyFile}}
		})
	}
	unitOf := func(srv *rt.Server) rendezvous.ReportUnit {
		for _, ru := range try(srv.FleetReport(time.Now())).must(t).Units {
			if ru.DeviceID == u.id {
				return ru
			}
		}
		t.Fatalf("unit %s not in the report", u.id)
		return rendezvous.ReportUnit{}
	}
	report := func(srv *rt.Server, health string, faults ...string) {
		term := try(rt.DialTerminalCert(ctx, srv.WSURL, u.key, u.cert)).must(t)
		check(t, term.Send(ctx, protocol.Message{Type: protocol.TypeStatus, Health: health, Faults: faults}))
		check(t, term.Barrier(ctx))
		term.Close()
	}

	srv := start()
	report(srv, protocol.HealthNeedsRepair, protocol.FaultCamera)
	check(t, srv.Close()) // waits for the report's write
	srv = start()
	got := unitOf(srv)
	if got.Status != rendezvous.StatusNeedsRepair || !slices.Equal(got.Faults, []string{protocol.FaultCamera}) || got.Version != "rendezvoustest/1" || got.Online {
		t.Fatalf("after a restart the unit is %s %v, version %q, online %v; want needs_repair [camera], rendezvoustest/1, offline",
			got.Status, got.Faults, got.Version, got.Online)
	}
	report(srv, protocol.HealthReady)
	check(t, srv.Close())
	srv = start()
	if got := unitOf(srv); got.Status != rendezvous.StatusNeverPaired || len(got.Faults) != 0 {
		t.Fatalf("a unit well again is %s %v after a restart, want never_paired", got.Status, got.Faults)
	}
}
