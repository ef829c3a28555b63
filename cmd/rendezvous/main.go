// Command rendezvous runs the Tuanju rendezvous server: signalling, pairing
// registry, presence, call log, the parent's web app and a TURN relay.
//
// Configuration: built-in defaults (a local demo on 127.0.0.1), then an
// optional TOML file (-config, unknown keys are an error), then the flags
// that were given (internal/cli.Overrides).
//
// "rendezvous audit [-data dir | -config file] [-json]" prints the audit log
// of pairings and factory resets instead of serving. "rendezvous revoke"
// edits the programme's deny list of units (revoke.go); "rendezvous fleet"
// imports the programme's manifests (fleet.go). "rendezvous check",
// "backup" and "restore" look after the registry (registry.go);
// "rendezvous migrate" copies it into the NATS registry (migrate.go).
// "rendezvous help" lists them all.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
)

func main() { cli.Main("rendezvous", run) }

// program is the binary's commands: the server by default, and the
// operator's tools beside it.
func program() cli.Program {
	return cli.Program{
		Name: "rendezvous",
		Summary: `rendezvous is the Tuanju rendezvous server: signalling, pairing registry,
presence, call log, the parent's web app and a TURN relay. Configuration:
built-in defaults (a local demo on 127.0.0.1), then -config FILE (TOML,
unknown keys are an error; see rendezvous.example.toml), then flags.`,
		Default: cli.Command{Summary: "serve (the flags below)", Run: serveCmd},
		Flags: func() *flag.FlagSet {
			cfg := defaults()
			return newFlags(&cfg, io.Discard).FlagSet
		},
		Commands: []cli.Command{
			{Name: "audit", Summary: "print the audit log of pairings and factory resets (works while the server runs)", Run: runAudit},
			{Name: "revoke", Summary: "add units to the deny list, take them off (-undo), or print it (-list)", Run: runRevoke},
			{Name: "fleet", Summary: "import a batch's signed manifest (from provision batch), or list the shipped units", Run: runFleet},
			{Name: "check", Summary: "check the registry (or a backup): bbolt's consistency check and the registry's own; non-zero exit on a problem", Run: runCheck},
			{Name: "backup", Summary: "write a consistent, checked copy of the registry to a file (server stopped)", Run: runBackup},
			{Name: "restore", Summary: "put a checked backup in place of the registry, keeping the old one beside it (server stopped)", Run: runRestore},
			{Name: "migrate", Summary: "copy the bbolt registry into the NATS registry (-to URL) and check it by counts and a sample (server stopped)", Run: runMigrate},
		},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return program().Run(ctx, args, stdout, stderr)
}

// defaults is rendezvous.DefaultConfig: listening on loopback, and the TURN
// relay under the production peer policy. Loopback peers (the local demo)
// must be asked for with -turn-allow-peers 127.0.0.0/8, so a config file
// that leaves allow_peers out is safe on a public server.
func defaults() rendezvous.Config { return rendezvous.DefaultConfig() }

type options struct {
	cfg       rendezvous.Config
	logFormat string
	logLevel  slog.Level
}

// flags is the server's flag set: -config, the log flags, and one line per
// flag bound to a configuration field (applied over the file when given).
type flags struct {
	*flag.FlagSet
	overrides                       *cli.Overrides
	configFile, logFormat, logLevel string
}

func newFlags(cfg *rendezvous.Config, stderr io.Writer) *flags {
	f := &flags{FlagSet: flag.NewFlagSet("rendezvous", flag.ContinueOnError)}
	f.SetOutput(stderr)
	f.Usage = func() { program().Usage(f.Output()) }
	f.StringVar(&f.configFile, "config", "", "TOML configuration `file` (applied before flags)")
	f.StringVar(&f.logFormat, "log-format", "text", "log `format`: text or json")
	f.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	o := cli.NewOverrides(f.FlagSet)
	o.String("listen", &cfg.Listen, "HTTP listen `address`")
	o.String("data", &cfg.DataDir, "data `directory` (bbolt registry, TURN secret)")
	o.String("public-url", &cfg.PublicURL, "public base `URL` phones use (https://...); its host is an allowed origin")
	o.String("tls-cert", &cfg.TLSCertFile, "TLS certificate `file` (PEM, chain after the leaf): serve https and wss; picked up again when renewed")
	o.String("tls-key", &cfg.TLSKeyFile, "TLS private key `file` (PEM) for -tls-cert")
	o.List("allowed-origins", &cfg.AllowedOrigins, "extra allowed WebSocket origin host `patterns`, comma separated")
	o.String("turn-listen", &cfg.TURN.Listen, "TURN UDP listen `address` (empty: no TURN over UDP)")
	o.String("turn-tcp-listen", &cfg.TURN.TCPListen, "TURN over TCP listen `address`, for phones on networks that block UDP")
	o.String("turn-tls-listen", &cfg.TURN.TLSListen, "TURN over TLS (turns:) listen `address`, e.g. :443 on a second IP; uses -tls-cert")
	o.String("turn-public-ip", &cfg.TURN.PublicIP, "TURN public/relay `IP`")
	o.String("turn-realm", &cfg.TURN.Realm, "TURN `realm`")
	o.List("turn-urls", &cfg.TURN.URLs, "external TURN cluster `URLs` (coturn with use-auth-secret; turn.secret in the config file is its static-auth-secret; docs/coturn.md), comma separated, instead of the embedded relay: set -turn-listen \"\" with them")
	o.List("turn-allow-peers", &cfg.TURN.AllowPeers, "peer `CIDRs` the relay may reach, comma separated; empty = production policy (public unicast only)")
	o.List("device-ca", &cfg.DeviceCAFiles, "program CA certificate `files` (PEM) that sign the terminals' device certificates, comma separated; required (here or device_ca_files)")
	o.String("nats-url", &cfg.NATSURL, "keep the registry on NATS JetStream: the cluster's server `URLs`, comma separated, or \"embedded\" (a NATS server in this process, its store under -data); empty: the bbolt file under -data")
	o.String("node-name", &cfg.NodeName, "this node's `name` among the nodes sharing a NATS registry (default: the host's name)")
	o.String("ice-policy", &cfg.ICETransportPolicy, "ICE transport `policy` handed to clients: all or relay")
	f.overrides = o
	return f
}

func parse(args []string, stderr io.Writer) (options, error) {
	opts := options{cfg: defaults(), logFormat: "text"}
	fs := newFlags(&opts.cfg, stderr)
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if fs.configFile != "" {
		if err := cli.DecodeFile(fs.configFile, &opts.cfg); err != nil {
			return opts, err
		}
	}
	fs.overrides.Apply() // flags given on the command line override the file
	switch fs.logFormat {
	case "text", "json":
		opts.logFormat = fs.logFormat
	default:
		return opts, fmt.Errorf("-log-format %q: want text or json", fs.logFormat)
	}
	if err := opts.logLevel.UnmarshalText([]byte(fs.logLevel)); err != nil {
		return opts, fmt.Errorf("-log-level: %w", err)
	}
	if opts.cfg.Listen == "" {
		return opts, errors.New("listen address is empty")
	}
	return opts, opts.cfg.Validate()
}

// serveCmd runs the server until ctx ends.
func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parse(args, stderr)
	if err != nil {
		return err
	}
	hopts := &slog.HandlerOptions{Level: opts.logLevel}
	var handler slog.Handler = slog.NewTextHandler(stderr, hopts)
	if opts.logFormat == "json" {
		handler = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(handler)

	rendezvous.TuneRuntime()
	srv, err := natsreg.NewRendezvous(opts.cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.cfg.Listen)
	if err != nil {
		srv.Close()
		return fmt.Errorf("listen %s: %w", opts.cfg.Listen, err)
	}
	hs := &http.Server{
		Handler:  srv.Handler(),
		ErrorLog: slog.NewLogLogger(handler, slog.LevelWarn),
	}
	srv.ConfigureHTTP(hs) // header timeout, idle timeout, header size
	scheme := "http"
	if tc := srv.TLSConfig(); tc != nil {
		hs.TLSConfig = tc
		ln = tls.NewListener(ln, tc)
		scheme = "https"
	}
	fmt.Fprintf(stdout, "rendezvous listening on %s://%s/\n", scheme, ln.Addr())
	if opts.cfg.PublicURL != "" {
		fmt.Fprintf(stdout, "public URL %s\n", opts.cfg.PublicURL)
	}
	if a := srv.TURNAddr(); a != nil {
		fmt.Fprintf(stdout, "turn relay on udp %s\n", a)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	select {
	case err = <-serveErr:
		srv.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shutErr := hs.Shutdown(sctx)
	closeErr := srv.Close() // WebSockets are hijacked: Shutdown does not wait for them
	if err := errors.Join(shutErr, closeErr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
