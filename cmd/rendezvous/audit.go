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
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
)

// runAudit is "rendezvous audit": it prints the server's audit log (every
// pairing and factory reset), oldest first: the node's file, or, with a
// NATS cluster (nats_url, or -nats-url), the cluster's, every node's
// entries. It only reads, so it works while the servers run.
func runAudit(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("rendezvous audit", `usage: rendezvous audit [-config file | -data dir | -nats-url URL] [-json]

Prints the server's audit log (every pairing and factory reset), oldest
first: the one in the data directory, or, when the configuration names a
NATS cluster (nats_url) or -nats-url is given, the cluster's, which holds
every node's. It only reads the log, so it works while the server runs.

`, stderr)
	var (
		configFile = fs.String("config", "", "the server's TOML configuration `file` (for data_dir)")
		dataDir    = fs.String("data", "", "the server's data `directory` (overrides the file)")
		natsURL    = fs.String("nats-url", "", "the cluster's NATS `URLs` (overrides the file's nats_url)")
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
	if *natsURL != "" {
		cfg.NATSURL = *natsURL
	}
	var entries []rendezvous.AuditEntry
	var err error
	if cfg.NATSURL != "" && cfg.NATSURL != natsreg.EmbeddedURL && *dataDir == "" {
		reg, cerr := natsreg.Connect(cfg.NATSURL, natsreg.Options{Name: "rendezvous-audit"})
		if cerr != nil {
			return cerr
		}
		defer reg.Close()
		entries, err = reg.ReadAudit()
	} else {
		entries, err = rendezvous.ReadAudit(filepath.Join(cfg.DataDir, rendezvous.AuditFile))
	}
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
