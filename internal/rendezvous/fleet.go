package rendezvous

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tuanju/tuanju/internal/atomicfile"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/manifest"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// The fleet is what the programme shipped: the signed manifests of its
// batches (provisioning/manifest), imported with `rendezvous fleet import`
// into fleet.dir and checked against the programme's signing key at every
// read. From them the server knows each unit's site and region (for the
// logs, and for the fleet page to come); with fleet.require it refuses a
// certificate whose unit is in no manifest, so a stolen program CA key
// cannot mint units the programme never shipped. The deny list
// (revoked.go) applies either way: a revoked unit stays out whatever
// manifest lists it.

// FleetConfig is the [fleet] table.
type FleetConfig struct {
	// Dir holds the imported manifests (default: DATA/fleet).
	Dir string `toml:"dir"`
	// KeyFiles are the programme's public signing keys (PEM; provision
	// init writes PROG/server/signing-key.pem).
	KeyFiles []string `toml:"key_files"`
	// Require refuses the login of a unit in no manifest. Off by default:
	// a server whose programme has not imported manifests yet keeps
	// working as before.
	Require bool `toml:"require"`
	// OperatorsFile lists the programme's operators who may see the fleet
	// page (fleet_http.go); empty: nobody.
	OperatorsFile string `toml:"operators_file"`
}

// notInManifestText is what a unit in no manifest is told at login.
const notInManifestText = "this unit is in no manifest of the programme"

// FleetUnit is one shipped unit.
type FleetUnit struct {
	manifest.Unit
	Programme string `json:"programme"`
	Batch     string `json:"batch"`
}

// ErrManifestConflict: a manifest that contradicts one already imported.
var ErrManifestConflict = errors.New("manifest conflicts with one already imported")

// FleetDir is cfg's fleet directory.
func FleetDir(cfg Config) string {
	if cfg.Fleet.Dir != "" {
		return cfg.Fleet.Dir
	}
	return filepath.Join(cfg.DataDir, "fleet")
}

// LoadFleetKeys reads the programme's public signing keys.
func LoadFleetKeys(files []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("rendezvous: fleet key_files: %w", err)
		}
		k, err := signing.ParsePublic(b)
		if err != nil {
			return nil, fmt.Errorf("rendezvous: fleet key_files %s: %w", f, err)
		}
		keys = append(keys, k...)
	}
	return keys, nil
}

// ReadFleet reads and checks every manifest in dir: device ID → unit. A
// manifest that does not verify, or two that list one device, is an error
// naming the file.
func ReadFleet(dir string, keys []ed25519.PublicKey) (map[string]FleetUnit, error) {
	names, err := manifestFiles(dir)
	if err != nil {
		return nil, err
	}
	units := map[string]FleetUnit{}
	from := map[string]string{}
	for _, name := range names {
		m, err := readManifest(filepath.Join(dir, name), keys)
		if err != nil {
			return nil, err
		}
		for _, u := range m.Units {
			if other, dup := from[u.DeviceID]; dup {
				return nil, fmt.Errorf("rendezvous: fleet: device %s is in %s and %s: %w", u.DeviceID, other, name, ErrManifestConflict)
			}
			from[u.DeviceID] = name
			units[u.DeviceID] = FleetUnit{Unit: u, Programme: m.Programme, Batch: m.Batch}
		}
	}
	return units, nil
}

func manifestFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rendezvous: fleet: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func readManifest(path string, keys []ed25519.PublicKey) (manifest.Manifest, error) {
	doc, err := os.ReadFile(path)
	if err != nil {
		return manifest.Manifest{}, fmt.Errorf("rendezvous: fleet: %w", err)
	}
	sig, err := os.ReadFile(path + ".sig")
	if err != nil {
		return manifest.Manifest{}, fmt.Errorf("rendezvous: fleet: %s: its signature: %w", path, err)
	}
	m, err := manifest.Decode(doc, sig, keys)
	if err != nil {
		return manifest.Manifest{}, fmt.Errorf("rendezvous: fleet: %s: %w", path, err)
	}
	return m, nil
}

var batchName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ImportManifest checks the manifest at path (and path.sig) against keys
// and copies both into dir, where a running server picks them up. A batch
// imported again (run again with more rows) replaces its manifest only if
// every unit it listed is still there, the same device; a device listed by
// another batch is refused. It returns the manifest's units and how many
// are new.
func ImportManifest(dir, path string, keys []ed25519.PublicKey) (total, added int, err error) {
	m, err := readManifest(path, keys)
	if err != nil {
		return 0, 0, err
	}
	if !batchName.MatchString(m.Batch) {
		return 0, 0, fmt.Errorf("rendezvous: fleet import: batch name %q: %w", m.Batch, manifest.ErrBadManifest)
	}
	current, err := ReadFleet(dir, keys)
	if err != nil {
		return 0, 0, fmt.Errorf("%w (fix the fleet directory first)", err)
	}
	name := manifestName(m)
	byUnit := map[string]string{}
	for _, u := range m.Units {
		byUnit[u.Unit] = u.DeviceID
		if cur, ok := current[u.DeviceID]; ok && (cur.Batch != m.Batch || cur.Programme != m.Programme) {
			return 0, 0, fmt.Errorf("rendezvous: fleet import: device %s (%s) is already unit %s of batch %s: %w", u.DeviceID, u.Unit, cur.Unit.Unit, cur.Batch, ErrManifestConflict)
		}
		if _, ok := current[u.DeviceID]; !ok {
			added++
		}
	}
	for dev, cur := range current {
		if cur.Batch == m.Batch && cur.Programme == m.Programme && byUnit[cur.Unit.Unit] != dev {
			return 0, 0, fmt.Errorf("rendezvous: fleet import: unit %s (device %s) of batch %s is missing from the new manifest: %w", cur.Unit.Unit, dev, m.Batch, ErrManifestConflict)
		}
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	sig, err := os.ReadFile(path + ".sig")
	if err != nil {
		return 0, 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, fmt.Errorf("rendezvous: fleet import: %w", err)
	}
	// The signature first: a server that reads the new manifest with the
	// old signature refuses the pair, keeps its list and reads again.
	if err := atomicfile.WriteFile(filepath.Join(dir, name+".sig"), sig, 0o644); err != nil {
		return 0, 0, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, name), doc, 0o644); err != nil {
		return 0, 0, err
	}
	return len(m.Units), added, nil
}

// phonesExt names a batch's numbers in the fleet directory, beside its
// manifest (NAME.json → NAME.phones, with NAME.phones.sig); mode 0600.
const phonesExt = ".phones"

// ImportPhones imports the parents' numbers of the batch whose manifest is
// at manifestPath: phones.json (and .sig) beside it, made by provision
// batch when the CSV gave numbers. They must be signed by the programme,
// name the manifest's programme and batch, and list only its units. No
// phones.json: nothing to do (0). Import the manifest first
// (ImportManifest). The numbers serve the notifier alone
// (hub_notify.go): never the fleet report, its metrics, or a log.
func ImportPhones(dir, manifestPath string, keys []ed25519.PublicKey) (int, error) {
	src := filepath.Join(filepath.Dir(manifestPath), manifest.PhonesJSONName)
	doc, err := os.ReadFile(src)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("rendezvous: fleet import: %w", err)
	}
	sig, err := os.ReadFile(src + ".sig")
	if err != nil {
		return 0, fmt.Errorf("rendezvous: fleet import: %s: its signature: %w", src, err)
	}
	m, err := readManifest(manifestPath, keys)
	if err != nil {
		return 0, err
	}
	p, err := checkPhones(doc, sig, keys, m)
	if err != nil {
		return 0, fmt.Errorf("rendezvous: fleet import: %s: %w", src, err)
	}
	name := strings.TrimSuffix(manifestName(m), ".json") + phonesExt
	if err := atomicfile.WriteFile(filepath.Join(dir, name+".sig"), sig, 0o600); err != nil {
		return 0, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, name), doc, 0o600); err != nil {
		return 0, err
	}
	return len(p.Units), nil
}

// checkPhones decodes a batch's numbers and checks them against its
// manifest m.
func checkPhones(doc, sig []byte, keys []ed25519.PublicKey, m manifest.Manifest) (manifest.Phones, error) {
	p, err := manifest.DecodePhones(doc, sig, keys)
	if err != nil {
		return p, err
	}
	if p.Programme != m.Programme || p.Batch != m.Batch {
		return p, fmt.Errorf("numbers of %s batch %s, manifest of %s batch %s: %w", p.Programme, p.Batch, m.Programme, m.Batch, ErrManifestConflict)
	}
	units := map[string]bool{}
	for _, u := range m.Units {
		units[u.DeviceID] = true
	}
	for _, u := range p.Units {
		if !units[u.DeviceID] {
			return p, fmt.Errorf("a number for unit %s (%s), which the manifest does not list: %w", u.Unit, u.DeviceID, ErrManifestConflict)
		}
	}
	return p, nil
}

// manifestName is the file name a batch's manifest has in the fleet
// directory.
func manifestName(m manifest.Manifest) string {
	sum := sha256.Sum256([]byte(m.Programme))
	return hex.EncodeToString(sum[:4]) + "-" + m.Batch + ".json"
}

// readPhones reads the numbers beside each manifest in dir: device ID →
// E.164.
func readPhones(dir string, keys []ed25519.PublicKey) (map[string]string, error) {
	names, err := manifestFiles(dir)
	if err != nil {
		return nil, err
	}
	phones := map[string]string{}
	for _, name := range names {
		path := filepath.Join(dir, strings.TrimSuffix(name, ".json")+phonesExt)
		doc, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("rendezvous: fleet: %w", err)
		}
		sig, err := os.ReadFile(path + ".sig")
		if err != nil {
			return nil, fmt.Errorf("rendezvous: fleet: %s: its signature: %w", path, err)
		}
		m, err := readManifest(filepath.Join(dir, name), keys)
		if err != nil {
			return nil, err
		}
		p, err := checkPhones(doc, sig, keys, m)
		if err != nil {
			return nil, fmt.Errorf("rendezvous: fleet: %s: %w", path, err)
		}
		for _, u := range p.Units {
			phones[u.DeviceID] = u.Phone
		}
	}
	return phones, nil
}

// fleet is the server's view of the manifests, reloaded when they change.
type fleet struct {
	dir     string
	keys    []ed25519.PublicKey
	require bool

	mu    sync.Mutex // reload
	stamp string
	units atomic.Pointer[map[string]FleetUnit]
	// phones are the parents' numbers the batches' CSVs gave (device ID →
	// E.164; ImportPhones): the notifier's fallback, nothing else's.
	phones atomic.Pointer[map[string]string]

	// health is what units last said of themselves (status) since the
	// server started, kept after they go offline: a unit that went away
	// saying its camera is broken still needs repair. The registry keeps
	// it too (Device.Health), for after a restart; the software version
	// units say at login is kept there alone (Device.Version).
	health sync.Map // device ID → unitHealth
	// keep writes a changed report to the registry (Store.NoteDeviceHealth)
	// off the hub's lock, one writer at a time, the latest report per unit
	// winning (healthWriter).
	keep healthWriter
}

// healthWriter writes units' changed health reports to the registry in
// the background: status reports arrive under the hub's lock, which must
// not wait for a disk. Reports that change faster than the disk takes
// them collapse to the latest per unit.
type healthWriter struct {
	write func(id, health string, faults []string) error
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]unitHealth
	running bool
	idle    sync.WaitGroup // the writer goroutine, for Close
}

// queue takes a unit's new report and starts the writer if it is not
// running.
func (w *healthWriter) queue(id string, h unitHealth) {
	if w.write == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pending == nil {
		w.pending = map[string]unitHealth{}
	}
	w.pending[id] = h
	if w.running {
		return
	}
	w.running = true
	w.idle.Add(1)
	go w.run()
}

func (w *healthWriter) run() {
	defer w.idle.Done()
	for {
		w.mu.Lock()
		batch := w.pending
		w.pending = nil
		if len(batch) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		for id, h := range batch {
			if err := w.write(id, h.health, h.faults); err != nil {
				// The report stays in memory (the fleet page shows it
				// until the server restarts); the next change tries again.
				w.log.Error("fleet: could not keep a unit's health report", "device", id, "err", err)
			}
		}
	}
}

// wait returns once the writer has written what was queued.
func (w *healthWriter) wait() { w.idle.Wait() }

// unitHealth is a unit's last status report.
type unitHealth struct {
	health string
	faults []string
}

// noteHealth keeps what a shipped unit says of its health.
func (f *fleet) noteHealth(deviceID, health string, faults []string) {
	if f == nil {
		return
	}
	if _, ok := f.unit(deviceID); !ok {
		return
	}
	h := unitHealth{health, slices.Clone(faults)}
	if old, ok := f.health.Swap(deviceID, h); !ok || old.(unitHealth).health != health || !slices.Equal(old.(unitHealth).faults, faults) {
		f.keep.queue(deviceID, h)
	}
}

// needsRepair reports whether a unit's last report said it needs repair,
// and the parts it named: the report since the server started, or, for a
// unit that has not reported since, the one the registry kept (d).
func (f *fleet) needsRepair(deviceID string, d Device) (bool, []string) {
	h := unitHealth{d.Health, d.Faults}
	if v, ok := f.health.Load(deviceID); ok {
		h = v.(unitHealth)
	}
	return h.health == protocol.HealthNeedsRepair, h.faults
}

func loadFleet(cfg Config) (*fleet, error) {
	if len(cfg.Fleet.KeyFiles) == 0 {
		return nil, nil
	}
	keys, err := LoadFleetKeys(cfg.Fleet.KeyFiles)
	if err != nil {
		return nil, err
	}
	f := &fleet{dir: FleetDir(cfg), keys: keys, require: cfg.Fleet.Require}
	if _, err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// unit returns a device's manifest entry.
func (f *fleet) unit(deviceID string) (FleetUnit, bool) {
	if f == nil {
		return FleetUnit{}, false
	}
	u, ok := (*f.units.Load())[deviceID]
	return u, ok
}

// phone is the number a batch's CSV gave for a unit's parent, or "".
func (f *fleet) phone(deviceID string) string {
	if f == nil {
		return ""
	}
	return (*f.phones.Load())[deviceID]
}

// refuses reports whether a device in no manifest is refused at login.
func (f *fleet) refuses(deviceID string) bool {
	if f == nil || !f.require {
		return false
	}
	_, ok := f.unit(deviceID)
	return !ok
}

func (f *fleet) count() int { return len(*f.units.Load()) }

// reload reads the manifests again if the directory changed. On error the
// list in use stays.
func (f *fleet) reload() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	stamp, err := dirStamp(f.dir)
	if err != nil {
		return false, err
	}
	if f.units.Load() != nil && stamp == f.stamp {
		return false, nil
	}
	units, err := ReadFleet(f.dir, f.keys)
	if err != nil {
		return false, err
	}
	phones, err := readPhones(f.dir, f.keys)
	if err != nil {
		return false, err
	}
	f.units.Store(&units)
	f.phones.Store(&phones)
	f.stamp = stamp
	return true, nil
}

// dirStamp changes when a file in dir is added, removed or replaced.
func dirStamp(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("rendezvous: fleet: %w", err)
	}
	var b strings.Builder
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s %d %d;", e.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return b.String(), nil
}

// watchFleet reloads the manifests every interval until the server closes.
func (s *Server) watchFleet(every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		changed, err := s.fleet.reload()
		if err != nil {
			s.log.Error("fleet manifests: keeping the list in use", "err", err)
			continue
		}
		if changed {
			s.log.Info("fleet manifests reloaded", "units", s.fleet.count())
		}
	}
}

// FleetUnits lists the units of the manifests in cfg's fleet directory,
// sorted by unit (for `rendezvous fleet list`).
func FleetUnits(cfg Config) ([]FleetUnit, error) {
	keys, err := LoadFleetKeys(cfg.Fleet.KeyFiles)
	if err != nil {
		return nil, err
	}
	units, err := ReadFleet(FleetDir(cfg), keys)
	if err != nil {
		return nil, err
	}
	out := make([]FleetUnit, 0, len(units))
	for _, u := range units {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b FleetUnit) int { return strings.Compare(a.Unit.Unit, b.Unit.Unit) })
	return out, nil
}

// logFleet says at start what the fleet is.
func logFleet(f *fleet, log *slog.Logger) {
	if f == nil {
		return
	}
	log.Info("fleet manifests", "dir", f.dir, "units", f.count(), "require", f.require)
	if f.require && f.count() == 0 {
		log.Warn("fleet.require is on and no manifest is imported: every terminal will be refused (rendezvous fleet import)")
	}
}
