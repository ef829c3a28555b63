package rendezvous

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tuanju/tuanju/internal/atomicfile"
	"github.com/tuanju/tuanju/internal/rendezvous/fleetpage"
)

// The programme's operators have their own login, apart from parents: a
// token each, listed by its SHA-256 in [fleet] operators_file (one
// "NAME HASH" line each; `rendezvous fleet operator NAME` adds one and
// prints the token once). GET /fleet is their page; GET /fleet/api/report
// the report it shows (Authorization: Bearer TOKEN); GET /fleet/metrics the
// same aggregates for Prometheus (client_golang), to an operator's token or
// to the server's own machine, as /metrics.

var operatorName = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// AddOperator adds an operator to the file at path and returns the new
// token (shown once; the file keeps only its hash).
func AddOperator(path, name string) (string, error) {
	if !operatorName.MatchString(name) {
		return "", fmt.Errorf("rendezvous: operator name %q: use 1-64 letters, digits, . _ @ -: %w", name, ErrBadConfig)
	}
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("rendezvous: operators: %w", err)
	}
	ops, err := parseOperators(raw)
	if err != nil {
		return "", err
	}
	for _, n := range ops {
		if n == name {
			return "", fmt.Errorf("rendezvous: operator %q is already listed: %w", name, ErrBadConfig)
		}
	}
	b := make([]byte, 16)
	rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	out := append(bytes.Clone(raw), fmt.Sprintf("%s %s\n", name, hex.EncodeToString(sum[:]))...)
	if err := atomicfile.WriteFile(path, out, 0o600); err != nil {
		return "", err
	}
	return token, nil
}

// parseOperators reads an operators file: hash → name.
func parseOperators(raw []byte) (map[string]string, error) {
	ops := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		body, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(body)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 || !operatorName.MatchString(f[0]) || len(f[1]) != 64 {
			return nil, fmt.Errorf("rendezvous: operators file line %d: want NAME SHA256-HEX: %w", n, ErrBadConfig)
		}
		if _, err := hex.DecodeString(f[1]); err != nil {
			return nil, fmt.Errorf("rendezvous: operators file line %d: %w", n, ErrBadConfig)
		}
		ops[strings.ToLower(f[1])] = f[0]
	}
	return ops, sc.Err()
}

// operator returns the name of the operator whose token r carries. The
// file is read at each request (a few per minute), so an operator added or
// removed counts at once.
func (s *Server) operator(r *http.Request) (string, bool) {
	path := s.cfg.Fleet.OperatorsFile
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if path == "" || !ok || tok == "" {
		return "", false
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		s.log.Error("fleet operators file", "err", err)
		return "", false
	}
	ops, err := parseOperators(raw)
	if err != nil {
		s.log.Error("fleet operators file", "err", err)
		return "", false
	}
	sum := sha256.Sum256([]byte(tok))
	want := hex.EncodeToString(sum[:])
	for h, name := range ops {
		if subtle.ConstantTimeCompare([]byte(h), []byte(want)) == 1 {
			return name, true
		}
	}
	return "", false
}

func (s *Server) serveFleetReport(w http.ResponseWriter, r *http.Request) {
	name, ok := s.operator(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fleet"`)
		http.Error(w, "operator token required", http.StatusUnauthorized)
		return
	}
	rep, err := s.FleetReport(s.now())
	if errors.Is(err, ErrNoFleet) {
		http.Error(w, "no fleet manifests configured ([fleet] key_files)", http.StatusNotFound)
		return
	}
	if err != nil {
		s.log.Error("fleet report", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s.log.Info("fleet report", "operator", name, "units", len(rep.Units))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(rep)
}

// serveFleetMetrics serves the server's registry (health_metrics.go: the
// fleet's aggregates and the server's health) to an operator or to the
// server's own machine.
func (s *Server) serveFleetMetrics(w http.ResponseWriter, r *http.Request) {
	ip, err := netip.ParseAddr(s.clientIP(r))
	if _, op := s.operator(r); !op && (err != nil || !ip.Unmap().IsLoopback()) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.registry.ServeHTTP(w, r)
}

var (
	descUnits = prometheus.NewDesc("tuanju_fleet_units", "Shipped units (in a manifest) by site, region and status.",
		[]string{"region", "site", "status"}, nil)
	descOnline        = prometheus.NewDesc("tuanju_fleet_units_online", "Shipped units connected now.", nil, nil)
	descCallsPerChild = prometheus.NewDesc("tuanju_fleet_calls_per_child_week", "Answered calls this week (from Monday 00:00 UTC) per child, by site (sites with at least 3 children).",
		[]string{"region", "site"}, nil)
	descMinutesPerChild = prometheus.NewDesc("tuanju_fleet_call_minutes_per_child_week", "Minutes of answered calls this week per child, by site (sites with at least 3 children).",
		[]string{"region", "site"}, nil)
	descWithCall = prometheus.NewDesc("tuanju_fleet_children_with_call_ratio", "Share of children with an answered call this week, by site (sites with at least 3 children).",
		[]string{"region", "site"}, nil)
	descNeedsRepair = prometheus.NewDesc("tuanju_fleet_units_needs_repair", "Units that need repair, by site and the part they named (a unit naming two parts counts under both).",
		[]string{"region", "site", "part"}, nil)
)

// fleetCollector computes the fleet report at each scrape.
type fleetCollector struct{ s *Server }

func (c fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUnits, descOnline, descCallsPerChild, descMinutesPerChild, descWithCall, descNeedsRepair} {
		ch <- d
	}
}

func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	rep, err := c.s.FleetReport(c.s.now())
	if err != nil {
		if !errors.Is(err, ErrNoFleet) {
			ch <- prometheus.NewInvalidMetric(descUnits, err)
		}
		return
	}
	online := 0
	for _, u := range rep.Units {
		if u.Online {
			online++
		}
	}
	ch <- prometheus.MustNewConstMetric(descOnline, prometheus.GaugeValue, float64(online))
	for _, st := range rep.Sites {
		for _, status := range Statuses {
			ch <- prometheus.MustNewConstMetric(descUnits, prometheus.GaugeValue, float64(st.Status[status]), st.Region, st.Site, status)
		}
		for _, part := range FaultParts {
			ch <- prometheus.MustNewConstMetric(descNeedsRepair, prometheus.GaugeValue, float64(st.Faults[part]), st.Region, st.Site, part)
		}
		if !st.Shown {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descCallsPerChild, prometheus.GaugeValue, st.CallsPerChild, st.Region, st.Site)
		ch <- prometheus.MustNewConstMetric(descMinutesPerChild, prometheus.GaugeValue, st.MinutesPerChild, st.Region, st.Site)
		ch <- prometheus.MustNewConstMetric(descWithCall, prometheus.GaugeValue, st.WithCall, st.Region, st.Site)
	}
}

// fleetRoutes adds the fleet's routes to mux.
func (s *Server) fleetRoutes(mux *http.ServeMux) {
	page := fleetpage.Handler()
	mux.Handle("GET /fleet", page)
	mux.Handle("GET /fleet/fleet.js", page)
	mux.Handle("GET /fleet/fleet.css", page)
	mux.HandleFunc("GET /fleet/api/report", s.serveFleetReport)
	mux.HandleFunc("GET /fleet/metrics", s.serveFleetMetrics)
}
