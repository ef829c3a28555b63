package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/internal/rendezvous"
)

// runFleet is "rendezvous fleet import|list": the programme's manifests of
// the units it shipped (internal/rendezvous/fleet.go).
func runFleet(_ context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = `usage: rendezvous fleet import [-config file] [-dir D] [-key F]... MANIFEST.json
       rendezvous fleet list [-config file] [-dir D] [-key F]...
       rendezvous fleet operator [-config file] [-operators F] NAME

import checks a batch's manifest (from provision batch; MANIFEST.json.sig
beside it) against the programme's signing key and copies it into the fleet
directory ([fleet] dir; default DATA/fleet), where a running server picks it
up within its revocation_check_interval. From it the server knows each
unit's site and region; with [fleet] require = true it refuses a unit that
is in no manifest. A batch imported again (more rows) must still list every
unit it listed; a device already in another batch is refused.
list prints the units of the imported manifests.
operator adds a programme operator who may see the fleet page (/fleet) and
its Prometheus figures (/fleet/metrics), and prints their token once: the
operators file ([fleet] operators_file) keeps only its SHA-256.
`
	if len(args) == 0 || cli.IsHelp(args[0]) {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return fmt.Errorf("fleet: import or list")
		}
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := cli.NewFlagSet("rendezvous fleet "+cmd, usage, stderr)
	configFile := fs.String("config", "", "the server's TOML configuration `file` (for [fleet] and data)")
	cfg := defaults()
	o := cli.NewOverrides(fs)
	o.String("dir", &cfg.Fleet.Dir, "the fleet `directory` (overrides [fleet] dir)")
	o.List("key", &cfg.Fleet.KeyFiles, "the programme's public signing key `files` (PEM, comma separated; overrides [fleet] key_files)")
	o.String("operators", &cfg.Fleet.OperatorsFile, "the operators `file` (overrides [fleet] operators_file)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configFile != "" {
		if err := cli.DecodeFile(*configFile, &cfg); err != nil {
			return err
		}
	}
	o.Apply()
	if cmd == "operator" {
		if fs.NArg() != 1 {
			return fmt.Errorf("fleet operator: name one operator")
		}
		if cfg.Fleet.OperatorsFile == "" {
			return fmt.Errorf("fleet operator: name the operators file: -operators FILE, or [fleet] operators_file")
		}
		token, err := rendezvous.AddOperator(cfg.Fleet.OperatorsFile, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "operator %s added to %s; their token (shown only now, give it to them privately):\n%s\n", fs.Arg(0), cfg.Fleet.OperatorsFile, token)
		return nil
	}
	if len(cfg.Fleet.KeyFiles) == 0 {
		return fmt.Errorf("fleet: name the programme's signing key: -key PROG/server/signing-key.pem, or [fleet] key_files")
	}
	switch {
	case cmd == "import" && fs.NArg() == 1:
		keys, err := rendezvous.LoadFleetKeys(cfg.Fleet.KeyFiles)
		if err != nil {
			return err
		}
		total, added, err := rendezvous.ImportManifest(rendezvous.FleetDir(cfg), fs.Arg(0), keys)
		if err != nil {
			return err
		}
		// The parents' numbers the batch's CSV gave, if any: phones.json
		// beside the manifest (never in it).
		phones, err := rendezvous.ImportPhones(rendezvous.FleetDir(cfg), fs.Arg(0), keys)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported %s into %s: %d units, %d new, %d parents' numbers for the notifier; a running server picks it up within its revocation_check_interval\n",
			fs.Arg(0), rendezvous.FleetDir(cfg), total, added, phones)
		return nil
	case cmd == "list" && fs.NArg() == 0:
		units, err := rendezvous.FleetUnits(cfg)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "UNIT\tDEVICE\tSITE\tREGION\tBATCH")
		for _, u := range units {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Unit.Unit, u.DeviceID, u.Site, u.Region, u.Batch)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d units in %s\n", len(units), rendezvous.FleetDir(cfg))
		return nil
	default:
		fs.Usage()
		return fmt.Errorf("fleet: want import MANIFEST.json or list")
	}
}
