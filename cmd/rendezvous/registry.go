package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/tuanju/tuanju/internal/boltfile"
	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/internal/rendezvous"
)

// errCheckFailed makes `rendezvous check` exit non-zero on a registry with
// problems.
var errCheckFailed = errors.New("check: the registry has problems (above)")

// registryFlags parses the flags the registry commands share (-config,
// -data) and returns the registry's path and the arguments left.
func registryFlags(name, usage string, args []string, stderr io.Writer) (string, []string, error) {
	fs := cli.NewFlagSet("rendezvous "+name, usage, stderr)
	configFile := fs.String("config", "", "the server's TOML configuration `file` (for data_dir)")
	dataDir := fs.String("data", "", "the server's data `directory` (overrides the file)")
	if err := fs.Parse(args); err != nil {
		return "", nil, err
	}
	path, err := registryPath(*configFile, *dataDir)
	return path, fs.Args(), err
}

// registryPath is the registry's path from -config and -data.
func registryPath(configFile, dataDir string) (string, error) {
	cfg := defaults()
	if configFile != "" {
		if err := cli.DecodeFile(configFile, &cfg); err != nil {
			return "", err
		}
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	return filepath.Join(cfg.DataDir, rendezvous.RegistryFile), nil
}

// runCheck is "rendezvous check [FILE]": bbolt's consistency check and the
// registry's own on the server's registry (or on FILE, a backup), a report,
// and a non-zero exit on any problem. The server must be stopped (it
// checks the registry itself at every start).
func runCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	path, rest, err := registryFlags("check", `usage: rendezvous check [-config file | -data dir] [FILE]

Checks the registry (or FILE, e.g. a backup): bbolt's consistency check,
then the registry's own (every record decodes, every pairing has its device
and parent). Prints a report; exits non-zero on any problem. Stop the server
first: it holds the registry, and checks it at every start.

`, args, stderr)
	if err != nil {
		return err
	}
	switch len(rest) {
	case 0:
	case 1:
		path = rest[0]
	default:
		return fmt.Errorf("check: unexpected arguments: %q", rest[1:])
	}
	rep, err := rendezvous.CheckRegistry(path)
	var de *boltfile.DamageError
	if errors.As(err, &de) {
		fmt.Fprintf(stdout, "%s: DAMAGED: bbolt's check found:\n", path)
		for _, p := range de.Problems {
			fmt.Fprintf(stdout, "problem: %s\n", p)
		}
		if de.More > 0 {
			fmt.Fprintf(stdout, "(and %d more)\n", de.More)
		}
		fmt.Fprintln(stdout, "restore the last backup: rendezvous restore FILE (the damaged file is kept beside it)")
		return errCheckFailed
	}
	if err != nil {
		return err
	}
	if _, err := rep.WriteTo(stdout); err != nil {
		return err
	}
	if !rep.OK() {
		return errCheckFailed
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// runBackup is "rendezvous backup FILE": a consistent copy of the registry
// (bbolt's tx.WriteTo), checked first. The server must be stopped.
func runBackup(_ context.Context, args []string, stdout, stderr io.Writer) error {
	path, rest, err := registryFlags("backup", `usage: rendezvous backup [-config file | -data dir] FILE

Writes a consistent copy of the registry to FILE (mode 0600; it holds the
parents' token hashes), after checking it: a damaged registry is never
written over a good backup. Stop the server first: it holds the registry.

`, args, stderr)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return errors.New("backup: name the backup FILE (rendezvous backup -h)")
	}
	if err := rendezvous.BackupRegistry(path, rest[0]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s\n", path, rest[0])
	return nil
}

// runRestore is "rendezvous restore FILE": FILE, once it passes the check,
// replaces the registry; the old one is kept beside it.
func runRestore(_ context.Context, args []string, stdout, stderr io.Writer) error {
	path, rest, err := registryFlags("restore", `usage: rendezvous restore [-config file | -data dir] FILE

Checks FILE (a backup) as rendezvous check does, then puts it in place of
the registry; the registry it replaces, damaged or not, is kept beside it as
rendezvous.db.replaced-<time>. Stop the server first.

`, args, stderr)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return errors.New("restore: name the backup FILE (rendezvous restore -h)")
	}
	replaced, err := rendezvous.RestoreRegistry(path, rest[0], time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s from %s\n", path, rest[0])
	if replaced != "" {
		fmt.Fprintf(stdout, "the registry it replaced is kept as %s\n", replaced)
	}
	return nil
}
