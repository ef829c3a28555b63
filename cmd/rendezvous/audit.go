package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/internal/rendezvous"
)

// runAudit is "rendezvous audit": it prints the server's audit log (every
// pairing and factory reset), oldest first. It only reads the log file, so
// it works while the server runs.
func runAudit(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("rendezvous audit", `usage: rendezvous audit [-config file | -data dir] [-json]

Prints the server's audit log (every pairing and factory reset), oldest
first. It only reads the log, so it works while the server runs.

`, stderr)
	var (
		configFile = fs.String("config", "", "the server's TOML configuration `file` (for data_dir)")
		dataDir    = fs.String("data", "", "the server's data `directory` (overrides the file)")
		asJSON     = fs.Bool("json", false, "print JSON lines instead of a table")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit: unexpected arguments: %q", fs.Args())
	}
	cfg := defaults()
	if *configFile != "" {
		if err := cli.DecodeFile(*configFile, &cfg); err != nil {
			return err
		}
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	entries, err := rendezvous.ReadAudit(filepath.Join(cfg.DataDir, rendezvous.AuditFile))
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tDEVICE\tPARENT")
	for _, e := range entries {
		parent := e.ParentID
		if parent == "" {
			parent = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Event, e.DeviceID, parent)
	}
	return tw.Flush()
}
