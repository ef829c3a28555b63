package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/internal/rendezvous"
)

// runRevoke is "rendezvous revoke": it adds units to the programme's deny
// list (revoked_devices_file), takes them off it (-undo) or prints it
// (-list). It edits the file by rename, as the server needs; a running
// server picks the change up within revocation_check_interval.
func runRevoke(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("rendezvous revoke", `usage: rendezvous revoke [-config file | -file path] [-reason text] DEVICE_ID...
       rendezvous revoke [-config file | -file path] -undo DEVICE_ID...
       rendezvous revoke [-config file | -file path] -list
`, stderr)
	var (
		configFile = fs.String("config", "", "the server's TOML configuration `file` (for revoked_devices_file)")
		file       = fs.String("file", "", "the deny list `path` (overrides the configuration's revoked_devices_file)")
		reason     = fs.String("reason", "", "why, kept beside each ID (e.g. \"stolen\")")
		undo       = fs.Bool("undo", false, "take the IDs off the list: the units may log in again, pairing intact")
		list       = fs.Bool("list", false, "print the list")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := *file
	if path == "" && *configFile != "" {
		cfg := defaults()
		if err := cli.DecodeFile(*configFile, &cfg); err != nil {
			return err
		}
		path = cfg.RevokedDevicesFile
	}
	if path == "" {
		return fmt.Errorf("revoke: name the deny list with -file, or -config with revoked_devices_file set")
	}
	var ids []string
	for _, id := range fs.Args() {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	switch {
	case *list:
		if len(ids) > 0 || *undo || *reason != "" {
			return fmt.Errorf("revoke: -list takes no IDs, -undo or -reason")
		}
		listed, err := rendezvous.ReadRevoked(path)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tREASON")
		for _, id := range slices.Sorted(maps.Keys(listed)) {
			fmt.Fprintf(tw, "%s\t%s\n", id, listed[id])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d units revoked in %s\n", len(listed), path)
		return nil
	case len(ids) == 0:
		fs.Usage()
		return fmt.Errorf("revoke: no device IDs given")
	case *undo:
		if *reason != "" {
			return fmt.Errorf("revoke: -undo takes no -reason")
		}
		_, removed, err := rendezvous.EditRevoked(path, nil, "", ids, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "took %d of %d units off %s; they can log in again, their pairing intact\n", removed, len(ids), path)
		return nil
	default:
		added, _, err := rendezvous.EditRevoked(path, ids, *reason, nil, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %d units (%d already listed) in %s; a running server drops them within its revocation_check_interval\n", added, len(ids)-added, path)
		return nil
	}
}
