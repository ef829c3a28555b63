package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/provisioning/bundle"
)

// A unit provisioned from a batch keeps its signed bundle beside its
// identity (terminalstore.BundlePath). Its settings sit between the board
// profile and the config file: defaults → board profile → bundle → file →
// flags. A key the file or a flag sets wins; the bundle fills what they
// leave empty, so one OS image serves every programme and each unit gets
// its own programme's server, time zone and reunion windows.
//
// What terminald has no setting for (language, Wi-Fi, APN,
// TURN: the server hands out TURN credentials itself) is left in the
// bundle for the OS, and said in the log at start.

// provisionedBundle is what the stored bundle gave the configuration.
type provisionedBundle struct {
	unit      bundle.Unit
	applied   []string
	notHere   []string
	readError error
}

// applyBundle fills cfg's empty keys from the stored bundle.
func applyBundle(cfg *config) {
	u, ok, err := terminalstore.ReadBundle(cfg.identityFile())
	if err != nil {
		cfg.bundle = &provisionedBundle{readError: err}
		return
	}
	if !ok {
		return
	}
	p := &provisionedBundle{unit: u}
	s := u.Settings
	if cfg.ServerURL == "" {
		cfg.ServerURL = s.ServerURL
		p.applied = append(p.applied, "server_url")
	}
	if cfg.PublicURL == "" && s.PublicURL != "" {
		cfg.PublicURL = s.PublicURL
		p.applied = append(p.applied, "public_url")
	}
	if cfg.ServerCAFile == "" && s.ServerCA != "" {
		if f := serverCAFile(cfg.identityFile()); fileHolds(f, s.ServerCA) {
			cfg.ServerCAFile = f
			p.applied = append(p.applied, "server_ca_file")
		}
	}
	if len(cfg.AutoAnswer.Windows) == 0 && len(s.ReunionWindows) > 0 {
		cfg.AutoAnswer.Windows = s.ReunionWindows
		p.applied = append(p.applied, "auto_answer.windows")
	}
	if s.TimeZone != "" {
		p.applied = append(p.applied, "time_zone")
	}
	if s.Language != "" {
		p.notHere = append(p.notHere, "language")
	}
	if len(s.WiFi) > 0 {
		p.notHere = append(p.notHere, "wifi")
	}
	if s.APN != nil {
		p.notHere = append(p.notHere, "apn")
	}
	if cfg.DataBudgetMB == 0 && s.DataBudgetMB > 0 {
		cfg.DataBudgetMB = s.DataBudgetMB
		p.applied = append(p.applied, "data_budget_mb")
	}
	if len(s.TURN) > 0 {
		p.notHere = append(p.notHere, "turn")
	}
	cfg.bundle = p
}

// applyTimeZone makes the bundle's time zone the process's local time
// (reunion windows are local times), unless $TZ says otherwise.
func applyTimeZone(cfg config, log *slog.Logger) {
	p := cfg.bundle
	if p == nil {
		return
	}
	if p.readError != nil {
		log.Error("the stored provisioning bundle does not read: running on the config file alone", "err", p.readError)
		return
	}
	log.Info("provisionedBundle", "unit", p.unit.Unit, "batch", p.unit.Batch, "site", p.unit.Site, "applied", strings.Join(p.applied, ","),
		"left_for_the_os", strings.Join(p.notHere, ","))
	tz := p.unit.Settings.TimeZone
	if tz == "" || os.Getenv("TZ") != "" {
		return
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		log.Error("the bundle's time zone is unknown here: reunion windows run on the system's time", "time_zone", tz, "err", err)
		return
	}
	time.Local = loc
}

// serverCAFile is where the bundle's server CA is written at import.
func serverCAFile(identityPath string) string {
	return strings.TrimSuffix(terminalstore.BundlePath(identityPath), ".tjb") + ".server-ca.pem"
}

func fileHolds(path, want string) bool {
	b, err := os.ReadFile(path)
	return err == nil && string(b) == want
}

// describeBundle prints what an import applied.
func describeBundle(u bundle.Unit, w io.Writer) {
	s := u.Settings
	fmt.Fprintf(w, "unit        %s (batch %s, %s, %s)\n", u.Unit, u.Batch, u.Site, u.Region)
	fmt.Fprintf(w, "server      %s\n", s.ServerURL)
	fmt.Fprintf(w, "time zone   %s\n", s.TimeZone)
	if len(s.ReunionWindows) > 0 {
		fmt.Fprintf(w, "reunion     %s\n", strings.Join(s.ReunionWindows, ", "))
	}
	fmt.Fprintln(w, "settings apply at terminald's next start where the config file leaves them empty")
}
