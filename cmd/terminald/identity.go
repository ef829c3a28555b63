package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/atomicfile"
	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/devcert"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// notProvisioned is what the unit says, in the log, on stdout and on the
// simulated board's status line, when it has no device certificate.
const notProvisioned = "this unit has no device certificate: provision it (terminald identity import FILE)"

// errNotProvisioned makes `terminald identity show` exit non-zero on a unit
// that was never provisioned.
var errNotProvisioned = errors.New("terminald: " + notProvisioned)

// runIdentity is `terminald identity import [-config F] [-state F] BUNDLE`
// and `terminald identity show [-config F] [-state F]`: what a technician (or
// the flashing station, or `make demo`) uses to put a unit's identity on it
// and to read it back. The bundle is a PEM private key and the device
// certificate a program CA issued for it (devcert.EncodeBundle).
func runIdentity(_ context.Context, args []string, stdout, stderr io.Writer) error {
	const usageText = `usage: terminald identity import [-config F] [-state F] [-identity F] [-programme-key F] BUNDLE
       terminald identity import [-config F] [...] -partition NAME
       terminald identity show [-config F] [-state F] [-identity F]

import puts a unit's identity on it. BUNDLE is either
  - a signed bundle from provision batch (NAME-00001.tjb): checked against
    the programme's key (programme_key_file or -programme-key) before
    anything is written; a tampered, truncated or foreign one is refused,
    the reason kept for terminald's log and needs-repair light. It carries
    the unit's identity, its label's pairing secret and its settings
    (server, time zone, reunion windows, ...), applied at the next start
    where the config file leaves them empty; or
  - a PEM private key and the device certificate a program CA issued for it.
-partition NAME reads the signed bundle at the start of the raw partition
of that GPT name (the OS image's "provisioning", which the flasher writes);
BUNDLE may also be a device or partition node.
The identity goes to the identity file (identity_file; default beside the
state file), apart from the state file. show prints the device ID and the
certificate (and exits non-zero on a unit never provisioned).
`
	usage := errors.New("usage: terminald identity import [-config F] [-state F] BUNDLE | terminald identity show [-config F] [-state F]")
	if len(args) == 0 {
		return usage
	}
	if cli.IsHelp(args[0]) {
		fmt.Fprint(stderr, usageText)
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	if cmd != "import" && cmd != "show" {
		return fmt.Errorf("terminald identity: unknown command %q: want import or show", cmd)
	}
	fs := cli.NewFlagSet("terminald identity "+cmd, usageText+"\n", stderr)
	cfg := defaults()
	file := fs.String("config", "", "TOML config `file` (for its state_file)")
	o := cli.NewOverrides(fs)
	o.String("state", &cfg.StateFile, "bbolt state `file` (overrides the config's)")
	o.String("identity", &cfg.IdentityFile, "identity `file` (overrides the config's identity_file; default: beside the state file)")
	o.String("programme-key", &cfg.ProgrammeKeyFile, "the programme's public signing key `file` (overrides programme_key_file)")
	partition := ""
	if cmd == "import" {
		fs.StringVar(&partition, "partition", "", "import from the raw partition with this GPT `name` (e.g. provisioning)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := applyFile(&cfg, *file, ""); err != nil {
		return err
	}
	o.Apply()
	switch {
	case cmd == "import" && partition != "" && fs.NArg() == 0:
		cfg.ProvisioningPartition = partition
		return provisionFromPartition(cfg, stdout)
	case cmd == "import" && partition == "" && fs.NArg() == 1:
		return importIdentity(cfg, fs.Arg(0), stdout)
	case cmd == "show" && fs.NArg() == 0:
		return showIdentity(cfg.StateFile, cfg.identityFile(), stdout)
	default:
		return usage
	}
}

func importIdentity(cfg config, bundlePath string, stdout io.Writer) error {
	statePath, identityPath := cfg.StateFile, cfg.identityFile()
	b, err := readBundleFile(bundlePath)
	if err != nil {
		return fmt.Errorf("terminald: identity import: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(statePath), 0o700); err != nil {
		return fmt.Errorf("terminald: state dir: %w", err)
	}
	if bundle.IsBundle(b) {
		if err := importBundle(cfg, bundlePath, b, stdout); err != nil {
			return err
		}
		// The Wi-Fi and mobile data configuration now, so a unit imported
		// by hand beside its running daemon joins its networks without a
		// restart. (The daemon's own import, from the partition, leaves it
		// to the start that follows, which logs it.)
		if u, ok, err := terminalstore.ReadBundle(identityPath); err == nil && ok {
			log := slog.New(slog.NewTextHandler(stdout, nil))
			applyWiFi(cfg, u, log)
			applyCellular(cfg, u, log)
		}
		return nil
	}
	key, cert, err := devcert.ParseBundle(b)
	if err != nil {
		return fmt.Errorf("terminald: identity import %s: %w", bundlePath, err)
	}
	// Through the state file, which moves an older unit's identity out
	// first, so the rules of ImportIdentity see it.
	store, err := terminalstore.OpenFiles(statePath, identityPath)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.ImportIdentity(key, cert); err != nil {
		return fmt.Errorf("terminald: identity import: %w", err)
	}
	fmt.Fprintf(stdout, "imported into %s:\n", identityPath)
	return describe(cert, stdout)
}

// readBundleFile reads a bundle file, or the bundle at the start of a
// device or partition node (the rest of a raw partition is not the
// bundle's).
func readBundleFile(path string) ([]byte, error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeDevice != 0 {
		return readRawBundle(path)
	}
	return os.ReadFile(path)
}

// importBundle verifies a signed bundle against the programme's key and
// stores it. A refusal is also written beside the identity file
// (terminalstore.WriteRefusal), so a daemon waiting for its identity logs
// the reason and shows needs-repair.
func importBundle(cfg config, path string, b []byte, stdout io.Writer) error {
	identityPath := cfg.identityFile()
	refuse := func(err error) error {
		err = fmt.Errorf("terminald: identity import %s: refused: %w", path, err)
		if werr := terminalstore.WriteRefusal(identityPath, err.Error()); werr != nil {
			return errors.Join(err, werr)
		}
		return err
	}
	keys, err := programmeKeys(cfg)
	if err != nil {
		return refuse(err)
	}
	u, err := bundle.Decode(b, keys)
	if err != nil {
		return refuse(err)
	}
	store, err := terminalstore.OpenFiles(cfg.StateFile, identityPath)
	if err != nil {
		return err
	}
	defer store.Close()
	if u.Settings.ServerCA != "" {
		if err := atomicfile.WriteFile(serverCAFile(identityPath), []byte(u.Settings.ServerCA), 0o444); err != nil {
			return fmt.Errorf("terminald: identity import: %w", err)
		}
	}
	if err := store.ImportBundle(b, u); err != nil {
		return refuse(err)
	}
	if err := terminalstore.ClearRefusal(identityPath); err != nil {
		return fmt.Errorf("terminald: identity import: %w", err)
	}
	cert, err := store.Certificate()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported into %s:\n", identityPath)
	describeBundle(u, stdout)
	return describe(cert, stdout)
}

// programmeKeys are the programme's public signing keys a bundle must
// verify against (programme_key_file).
func programmeKeys(cfg config) ([]ed25519.PublicKey, error) {
	if cfg.ProgrammeKeyFile == "" {
		return nil, errors.New("a signed bundle is checked against the programme's key: set programme_key_file (or -programme-key)")
	}
	pem, err := os.ReadFile(cfg.ProgrammeKeyFile)
	if err != nil {
		return nil, err
	}
	keys, err := signing.ParsePublic(pem)
	if err != nil {
		return nil, fmt.Errorf("programme_key_file %s: %w", cfg.ProgrammeKeyFile, err)
	}
	return keys, nil
}

func showIdentity(statePath, identityPath string, stdout io.Writer) error {
	if _, err := os.Stat(statePath); err != nil {
		if _, ierr := os.Stat(identityPath); ierr != nil {
			return fmt.Errorf("terminald: identity show: %w", err)
		}
	}
	store, err := terminalstore.OpenFiles(statePath, identityPath)
	if err != nil {
		return err
	}
	defer store.Close()
	cert, err := store.Certificate()
	if errors.Is(err, terminalstore.ErrNoIdentity) || errors.Is(err, terminalstore.ErrNoCertificate) {
		fmt.Fprintln(stdout, notProvisioned)
		return errNotProvisioned
	}
	if err != nil {
		return err
	}
	return describe(cert, stdout)
}

// describe prints what a technician checks: the device ID (on the label),
// who issued the certificate, and until when.
func describe(cert []byte, w io.Writer) error {
	info, err := devcert.Describe(cert)
	if err != nil {
		return fmt.Errorf("terminald: identity: %w", err)
	}
	fmt.Fprintf(w, "device ID   %s\nsubject     %s\nissuer      %s\nserial      %s\nvalid       %s to %s\n",
		info.DeviceID, info.Subject, info.Issuer, info.Serial,
		info.NotBefore.UTC().Format(time.DateOnly), info.NotAfter.UTC().Format(time.DateOnly))
	if now := time.Now(); now.After(info.NotAfter) {
		fmt.Fprintln(w, "WARNING: the certificate has expired; the server will refuse this unit")
	}
	return nil
}

// provisionPoll is how often an unprovisioned unit looks at its state file
// again. Slow: nothing changes until a technician imports an identity.
var provisionPoll = 30 * time.Second

// provisionLooked, if set, is called after each look at an unprovisioned
// state file: tests wait on it instead of on the clock.
var provisionLooked func()

// awaitIdentity returns once the unit has its identity, the state file
// open. Until then the unit shows needs-repair (a child sees a unit that
// needs a grown-up, not one that seems ready), says why in its log and on
// stdout, and reopens the files every provisionPoll: between looks the
// state file is closed, so `terminald identity import` can run beside the
// daemon and take effect without a restart.
//
// A damaged state file is moved aside and a fresh one made
// (terminalstore.OpenOrRepair), said in the log and on stdout; the repair
// note (this one, or one from an earlier start the parent has not yet
// paired after) is returned for the daemon to show needs-repair until
// then (repairLEDs).
func awaitIdentity(ctx context.Context, statePath, identityPath string, leds terminal.LEDs, status func(string), log *slog.Logger, stdout io.Writer) (*terminalstore.Store, *terminalstore.Repair, error) {
	told, toldRefusal := false, ""
	for {
		store, repair, err := terminalstore.OpenOrRepair(statePath, identityPath, time.Now())
		if err != nil {
			return nil, nil, err
		}
		if repair != nil {
			log.Error("state file damaged: moved aside and a fresh one started; the unit keeps its identity but has lost its pairing and call log: the parent must pair again",
				"state_file", statePath, "reason", repair.Reason, "moved_to", repair.MovedTo, "identity_rescued", repair.IdentitySalvaged)
			fmt.Fprintf(stdout, "needs repair: state file damaged (%s); kept at %s; pair the parent's phone again\n", repair.Reason, repair.MovedTo)
		}
		_, err = store.Certificate()
		if err == nil {
			if told {
				log.Info("device identity imported; starting")
			}
			note, nerr := terminalstore.RepairNote(statePath)
			if nerr != nil {
				log.Warn("cannot read the repair note", "err", nerr)
			}
			return store, note, nil
		}
		store.Close()
		if !errors.Is(err, terminalstore.ErrNoIdentity) && !errors.Is(err, terminalstore.ErrNoCertificate) {
			return nil, nil, err
		}
		if refusal, _ := terminalstore.ReadRefusal(identityPath); refusal != "" && refusal != toldRefusal {
			// An import refused a bundle: say why, once per refusal.
			toldRefusal = refusal
			log.Error("provisioning bundle refused; this unit stays unprovisioned", "reason", refusal)
			if status != nil {
				status("not provisioned: bundle refused")
			}
			if leds != nil {
				if err := leds.Show(device.Fault); err != nil {
					log.Warn("cannot show needs-repair", "err", err)
				}
			}
		}
		if !told {
			told = true
			log.Error(notProvisioned, "state_file", statePath, "identity_file", identityPath, "err", err)
			fmt.Fprintln(stdout, notProvisioned)
			if leds != nil {
				if err := leds.Show(device.Fault); err != nil {
					log.Warn("cannot show needs-repair", "err", err)
				}
			}
			if status != nil {
				status("not provisioned: no device certificate")
			}
		}
		if provisionLooked != nil {
			provisionLooked()
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(provisionPoll):
		}
	}
}
