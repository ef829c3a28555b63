package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/provisioning/bundle"
)

// On the OS image the unit's signed bundle is on a raw partition of its
// own, named "provisioning" in the GPT, written once by the flasher and
// never by the unit (buildroot/README.md). terminald reads it at every
// start (provisioning_partition in the config): the bundle is verified
// against the programme's key and imported when the unit does not hold it
// yet, so a first boot, and a boot after /data was re-created, both end
// with the identity the label was printed for. A partition with no bundle,
// a tampered one or another programme's keeps the terminal from running
// its call loop: it shows needs-repair and logs why (startIdentity).

// sysClassBlock and devDir are where partitions are looked up (tests point
// them at a directory of their own).
var (
	sysClassBlock = "/sys/class/block"
	devDir        = "/dev"
)

// findPartition is the device node of the one partition whose GPT name
// (PARTNAME in its uevent) is name. Two are refused: a card in a USB reader
// flashed with the same layout must not be taken for the unit's own.
func findPartition(name string) (string, error) {
	uevents, err := filepath.Glob(filepath.Join(sysClassBlock, "*", "uevent"))
	if err != nil {
		return "", fmt.Errorf("terminald: partition %q: %w", name, err)
	}
	var found []string
	for _, u := range uevents {
		b, err := os.ReadFile(u)
		if err != nil {
			continue // a device that went away
		}
		var partName, devName string
		for line := range strings.Lines(string(b)) {
			k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
			switch k {
			case "PARTNAME":
				partName = v
			case "DEVNAME":
				devName = v
			}
		}
		if partName == name && devName != "" {
			found = append(found, filepath.Join(devDir, devName))
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("terminald: no partition named %q", name)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("terminald: %d partitions named %q (%s): refusing to guess which is this unit's", len(found), name, strings.Join(found, ", "))
}

// readRawBundle reads the one bundle at the start of a raw partition or
// device (bundle.ReadFrom: nothing after the bundle's end is read).
func readRawBundle(dev string) ([]byte, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, fmt.Errorf("terminald: %w", err)
	}
	defer f.Close()
	b, err := bundle.ReadFrom(f)
	if err != nil {
		return nil, fmt.Errorf("terminald: %s: %w", dev, err)
	}
	return b, nil
}

// provisionFromPartition reads the bundle on the named partition and
// imports it, unless the unit holds exactly that bundle with its identity
// already (the usual boot: nothing is written). A refusal — no partition,
// no bundle, a tampered or foreign one, another unit's identity — is
// returned, and kept beside the identity file for `terminald identity
// show` and the daemon.
func provisionFromPartition(cfg config, stdout io.Writer) error {
	name := cfg.ProvisioningPartition
	identityPath := cfg.identityFile()
	if err := os.MkdirAll(filepath.Dir(cfg.StateFile), 0o700); err != nil {
		return fmt.Errorf("terminald: state dir: %w", err)
	}
	dev, err := findPartition(name)
	var raw []byte
	if err == nil {
		raw, err = readRawBundle(dev)
	}
	if err != nil {
		err = fmt.Errorf("terminald: provisioning partition %q: refused: %w", name, err)
		if werr := terminalstore.WriteRefusal(identityPath, err.Error()); werr != nil {
			return errors.Join(err, werr)
		}
		return err
	}
	if held, rerr := os.ReadFile(terminalstore.BundlePath(identityPath)); rerr == nil && bytes.Equal(held, raw) {
		if _, serr := os.Stat(identityPath); serr == nil {
			// Held already; still verified, so a key changed in the image
			// or a partition altered since is caught at every start.
			return verifyOnly(cfg, dev, raw)
		}
	}
	return importBundle(cfg, dev, raw, stdout)
}

// verifyOnly checks the partition's bundle against the programme's key
// without writing anything but a refusal.
func verifyOnly(cfg config, dev string, raw []byte) error {
	keys, err := programmeKeys(cfg)
	if err == nil {
		_, err = bundle.Decode(raw, keys)
	}
	if err != nil {
		err = fmt.Errorf("terminald: identity import %s: refused: %w", dev, err)
		if werr := terminalstore.WriteRefusal(cfg.identityFile(), err.Error()); werr != nil {
			return errors.Join(err, werr)
		}
		return err
	}
	return terminalstore.ClearRefusal(cfg.identityFile())
}
