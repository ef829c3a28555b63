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
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
)

// runRevoke is "rendezvous revoke": it adds units to the programme's deny
// list, takes them off it (-undo) or prints it (-list). The list is the
// file revoked_devices_file, edited by rename as the server needs (a
// running server picks the change up within revocation_check_interval);
// or, with a configuration naming a NATS cluster (nats_url, or -nats-url),
// the cluster's list, which every node watches.
func runRevoke(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("rendezvous revoke", `usage: rendezvous revoke [-config file | -file path | -nats-url URL] [-reason text] DEVICE_ID...
       rendezvous revoke [-config file | -file path | -nats-url URL] -undo DEVICE_ID...
       rendezvous revoke [-config file | -file path | -nats-url URL] -list
`, stderr)
	var (
		configFile = fs.String("config", "", "the server's TOML configuration `file` (for revoked_devices_file, or nats_url)")
		file       = fs.String("file", "", "the deny list `path` (overrides the configuration's revoked_devices_file)")
		natsURL    = fs.String("nats-url", "", "the cluster's NATS `URLs`: edit the list every node watches (overrides the configuration's nats_url)")
		reason     = fs.String("reason", "", "why, kept beside each ID (e.g. \"stolen\")")
		undo       = fs.Bool("undo", false, "take the IDs off the list: the units may log in again, pairing intact")
		list       = fs.Bool("list", false, "print the list")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	path, url := *file, *natsURL
	if *configFile != "" {
		cfg := defaults()
		if err := cli.DecodeFile(*configFile, &cfg); err != nil {
			return err
		}
		if path == "" && url == "" {
			if cfg.NATSURL != "" && cfg.NATSURL != natsreg.EmbeddedURL {
				url = cfg.NATSURL
			} else {
				path = cfg.RevokedDevicesFile
			}
		}
	}
	var dl denyList
	switch {
	case path != "" && url != "":
		return fmt.Errorf("revoke: -file or -nats-url, not both")
	case url != "":
		reg, err := natsreg.Connect(url, natsreg.Options{Name: "rendezvous-revoke"})
		if err != nil {
			return err
		}
		defer reg.Close()
		dl = natsDenyList{reg}
	case path != "":
		dl = fileDenyList(path)
	default:
		return fmt.Errorf("revoke: name the deny list with -file or -nats-url, or -config with revoked_devices_file or nats_url set")
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
		listed, err := dl.list()
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
		fmt.Fprintf(stdout, "%d units revoked in %s\n", len(listed), dl)
		return nil
	case len(ids) == 0:
		fs.Usage()
		return fmt.Errorf("revoke: no device IDs given")
	case *undo:
		if *reason != "" {
			return fmt.Errorf("revoke: -undo takes no -reason")
		}
		removed, err := dl.remove(ids)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "took %d of %d units off %s; they can log in again, their pairing intact\n", removed, len(ids), dl)
		return nil
	default:
		added, err := dl.add(ids, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %d units (%d already listed) in %s; %s\n", added, len(ids)-added, dl, dl.pickup())
		return nil
	}
}

// denyList is where `rendezvous revoke` edits the list.
type denyList interface {
	list() (map[string]string, error)
	add(ids []string, reason string) (int, error)
	remove(ids []string) (int, error)
	pickup() string // when running servers act on a change
	String() string
}

// fileDenyList is revoked_devices_file.
type fileDenyList string

func (f fileDenyList) list() (map[string]string, error) { return rendezvous.ReadRevoked(string(f)) }
func (f fileDenyList) add(ids []string, reason string) (int, error) {
	added, _, err := rendezvous.EditRevoked(string(f), ids, reason, nil, time.Now())
	return added, err
}
func (f fileDenyList) remove(ids []string) (int, error) {
	_, removed, err := rendezvous.EditRevoked(string(f), nil, "", ids, time.Now())
	return removed, err
}
func (f fileDenyList) pickup() string {
	return "a running server drops them within its revocation_check_interval"
}
func (f fileDenyList) String() string { return string(f) }

// natsDenyList is the cluster's list.
type natsDenyList struct{ reg *natsreg.Registry }

func (n natsDenyList) list() (map[string]string, error)             { return n.reg.DenyList() }
func (n natsDenyList) add(ids []string, reason string) (int, error) { return n.reg.Revoke(ids, reason) }
func (n natsDenyList) remove(ids []string) (int, error)             { return n.reg.Unrevoke(ids) }
func (n natsDenyList) pickup() string                               { return "every node drops them at once" }
func (n natsDenyList) String() string                               { return "the cluster's deny list" }
