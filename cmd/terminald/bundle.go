package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tuanju/tuanju/internal/atomicfile"
	"github.com/tuanju/tuanju/internal/terminal/cellular"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/internal/terminal/wifi"
	"github.com/tuanju/tuanju/provisioning/bundle"
)

// A unit provisioned from a batch keeps its signed bundle beside its
// identity (terminalstore.BundlePath). Its settings sit between the board
// profile and the config file: defaults → board profile → bundle → file →
// flags. A key the file or a flag sets wins; the bundle fills what they
// leave empty, so one OS image serves every programme and each unit gets
// its own programme's server, time zone and reunion windows.
//
// Wi-Fi and mobile data are the OS's, but terminald writes their
// configuration: the bundle's networks become wpa_supplicant.conf beside
// the stored bundle (applyWiFi), which the OS image's network script gives
// wpa_supplicant, and its APN pppd's peer file, chat script and secrets
// (applyCellular), with which the script dials a USB modem. What terminald
// has no setting for (language, TURN: the server hands out TURN credentials
// itself) is left in the bundle for the OS, and said in the log at start.

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
		p.applied = append(p.applied, "wifi")
	}
	if s.APN != nil {
		p.applied = append(p.applied, "apn")
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

// applyBundleAtStart is what the daemon does with the stored bundle at
// start, beyond the config: says what it applied, sets the time zone and
// writes the Wi-Fi and mobile data configuration.
func applyBundleAtStart(cfg config, log *slog.Logger) {
	applyTimeZone(cfg, log)
	if p := cfg.bundle; p != nil && p.readError == nil {
		applyWiFi(cfg, p.unit, log)
		applyCellular(cfg, p.unit, log)
	}
}

// serverCAFile is where the bundle's server CA is written at import.
func serverCAFile(identityPath string) string {
	return strings.TrimSuffix(terminalstore.BundlePath(identityPath), ".tjb") + ".server-ca.pem"
}

// wifiConfFile is the unit's wpa_supplicant configuration: beside the
// stored bundle, under a name the OS image's network script knows
// (/data/terminald/wpa_supplicant.conf).
func wifiConfFile(identityPath string) string {
	return filepath.Join(filepath.Dir(terminalstore.BundlePath(identityPath)), "wpa_supplicant.conf")
}

// reloadTimeout bounds a reload command (wifi_reload, cellular_reload): it
// starts or signals a daemon and returns; one that hangs must not hold the
// start up.
var reloadTimeout = 30 * time.Second

// applyWiFi makes the unit's wpa_supplicant configuration the stored
// bundle's networks (wifi.Config): written atomically with mode 0600 (it
// holds the networks' keys) when it differs, removed when the bundle has
// none. When it changed, wifi_reload runs (the OS image's `network wifi`:
// starts wpa_supplicant where none runs, asks a running one to read the
// file again), so a unit whose bundle was just imported joins its school's
// Wi-Fi without a reboot. All of it is best effort: a unit with a cable
// runs without Wi-Fi, so nothing here stops the start; everything is
// logged. A unit with no stored bundle (a bare identity, a developer's
// machine) has its file left alone.
func applyWiFi(cfg config, u bundle.Unit, log *slog.Logger) {
	path := wifiConfFile(cfg.identityFile())
	changed, err := syncWiFi(path, u.Settings.WiFi)
	switch {
	case err != nil:
		log.Error("wifi: the bundle's networks are not applied: the unit joins no Wi-Fi", "file", path, "err", err)
		return
	case !changed:
		return
	case len(u.Settings.WiFi) == 0:
		log.Info("wifi: the bundle has no Wi-Fi networks: removed the configuration", "file", path)
	default:
		ssids := make([]string, len(u.Settings.WiFi))
		for i, w := range u.Settings.WiFi {
			ssids[i] = fmt.Sprintf("%q", w.SSID)
		}
		log.Info("wifi: wrote the bundle's networks", "file", path, "networks", len(ssids), "ssids", strings.Join(ssids, ","))
	}
	runReload(log, "wifi", "wifi_reload", cfg.WiFiReload, "the new networks")
}

// syncWiFi writes nets' configuration to path, or removes path when nets
// is empty, and reports whether that changed the file.
func syncWiFi(path string, nets []bundle.WiFi) (changed bool, err error) {
	if len(nets) == 0 {
		return syncFile(path, nil)
	}
	conf, err := wifi.Config(nets)
	if err != nil {
		return false, err
	}
	return syncFile(path, conf)
}

// syncFile makes path hold content, written atomically with mode 0600 (the
// OS files terminald writes hold keys and passwords) when it differs in
// bytes or mode, or makes path not exist when content is nil; and reports
// whether that changed anything.
func syncFile(path string, content []byte) (changed bool, err error) {
	if content == nil {
		err := os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	}
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, content) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == 0o600 {
			return false, nil
		}
	}
	if err := atomicfile.WriteFile(path, content, 0o600); err != nil {
		return false, err
	}
	return true, nil
}

// runReload runs a reload command (argv; empty: none), the config key
// named key, after terminald changed what of the bundle it applies; what
// is what applies at the next boot instead when it fails. It is logged
// under area either way and stops nothing.
func runReload(log *slog.Logger, area, key string, argv []string, what string) {
	if len(argv) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		log.Warn(fmt.Sprintf("%s: %s failed: %s apply at the next boot", area, key, what), "command", strings.Join(argv, " "), "err", err, "output", strings.TrimSpace(string(out)))
		return
	}
	log.Info(fmt.Sprintf("%s: %s ran", area, key), "command", strings.Join(argv, " "), "output", strings.TrimSpace(string(out)))
}

// cellularFiles are the unit's pppd files for its APN, beside the stored
// bundle under the names the OS image knows: the network script runs
// `pppd <port> 115200 file /data/terminald/ppp-peer`, the peer file's
// connect line runs chat on ppp-chat, and the image's /etc/ppp/pap-secrets
// and chap-secrets are links to ppp-secrets.
func cellularFiles(identityPath string) (peer, chat, secrets string) {
	dir := filepath.Dir(terminalstore.BundlePath(identityPath))
	return filepath.Join(dir, "ppp-peer"), filepath.Join(dir, "ppp-chat"), filepath.Join(dir, "ppp-secrets")
}

// applyCellular makes the unit's pppd files the stored bundle's APN
// (cellular.Make), as applyWiFi does wpa_supplicant.conf: each written
// atomically with mode 0600 (the secrets hold the APN's password) when it
// differs, all removed when the bundle has no APN (and the secrets when
// the APN has no user). When any changed, cellular_reload runs (the OS
// image's `network cellular`: starts pppd on the modem where none runs,
// restarts it where one does, stops it where the files are gone). Best
// effort, as Wi-Fi: nothing here stops the start; everything is logged.
func applyCellular(cfg config, u bundle.Unit, log *slog.Logger) {
	peer, chat, secrets := cellularFiles(cfg.identityFile())
	want := map[string][]byte{peer: nil, chat: nil, secrets: nil}
	a := u.Settings.APN
	if a != nil {
		f, err := cellular.Make(*a, chat)
		if err != nil {
			log.Error("cellular: the bundle's APN is not applied: the unit has no mobile data", "file", peer, "err", err)
			return
		}
		want[peer], want[chat], want[secrets] = f.Peer, f.Chat, f.Secrets
	}
	changed := false
	for _, path := range []string{secrets, chat, peer} {
		c, err := syncFile(path, want[path])
		if err != nil {
			log.Error("cellular: the bundle's APN is not applied: the unit has no mobile data", "file", path, "err", err)
			return
		}
		changed = changed || c
	}
	switch {
	case !changed:
		return
	case a == nil:
		log.Info("cellular: the bundle has no APN: removed the pppd files", "file", peer)
	default:
		log.Info("cellular: wrote the bundle's APN", "file", peer, "apn", a.Name, "user", a.User != "")
	}
	runReload(log, "cellular", "cellular_reload", cfg.CellularReload, "the new APN")
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
	for _, n := range s.WiFi {
		fmt.Fprintf(w, "wifi        %q\n", n.SSID)
	}
	if s.APN != nil {
		fmt.Fprintf(w, "apn         %q\n", s.APN.Name)
	}
	fmt.Fprintln(w, "settings apply at terminald's next start where the config file leaves them empty")
}
