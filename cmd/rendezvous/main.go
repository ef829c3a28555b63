// Command rendezvous runs the Tuanju rendezvous server: signalling, pairing
// registry, presence, call log, the parent's web app and a TURN relay.
//
// Configuration: built-in defaults (a local demo on 127.0.0.1), then an
// optional TOML file (-config, unknown keys are an error), then flags.
//
// "rendezvous audit [-data dir | -config file] [-json]" prints the audit log
// of pairings and factory resets instead of serving. "rendezvous revoke"
// edits the programme's deny list of units (revoke.go).
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
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/tuanju/tuanju/internal/rendezvous"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "rendezvous:", err)
		}
		os.Exit(1)
	}
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

func parse(args []string, stderr io.Writer) (options, error) {
	opts := options{cfg: defaults(), logFormat: "text"}
	fs := flag.NewFlagSet("rendezvous", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configFile = fs.String("config", "", "TOML configuration `file` (applied before flags)")
		listen     = fs.String("listen", opts.cfg.Listen, "HTTP listen `address`")
		dataDir    = fs.String("data", opts.cfg.DataDir, "data `directory` (bbolt registry, TURN secret)")
		publicURL  = fs.String("public-url", "", "public base `URL` phones use (https://...); its host is an allowed origin")
		tlsCert    = fs.String("tls-cert", "", "TLS certificate `file` (PEM, chain after the leaf): serve https and wss; picked up again when renewed")
		tlsKey     = fs.String("tls-key", "", "TLS private key `file` (PEM) for -tls-cert")
		origins    = fs.String("allowed-origins", "", "extra allowed WebSocket origin host `patterns`, comma separated")
		turnListen = fs.String("turn-listen", opts.cfg.TURN.Listen, "TURN UDP listen `address` (empty: no TURN over UDP)")
		turnTCP    = fs.String("turn-tcp-listen", opts.cfg.TURN.TCPListen, "TURN over TCP listen `address`, for phones on networks that block UDP")
		turnTLS    = fs.String("turn-tls-listen", opts.cfg.TURN.TLSListen, "TURN over TLS (turns:) listen `address`, e.g. :443 on a second IP; uses -tls-cert")
		turnIP     = fs.String("turn-public-ip", opts.cfg.TURN.PublicIP, "TURN public/relay `IP`")
		turnRealm  = fs.String("turn-realm", opts.cfg.TURN.Realm, "TURN `realm`")
		allowPeers = fs.String("turn-allow-peers", strings.Join(opts.cfg.TURN.AllowPeers, ","), "peer `CIDRs` the relay may reach, comma separated; empty = production policy (public unicast only)")
		deviceCAs  = fs.String("device-ca", "", "program CA certificate `files` (PEM) that sign the terminals' device certificates, comma separated; required (here or device_ca_files)")
		icePolicy  = fs.String("ice-policy", opts.cfg.ICETransportPolicy, "ICE transport `policy` handed to clients: all or relay")
		logFormat  = fs.String("log-format", "text", "log `format`: text or json")
		logLevel   = fs.String("log-level", "info", "log `level`: debug, info, warn, error")
	)
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *configFile != "" {
		if err := decodeFile(*configFile, &opts.cfg); err != nil {
			return opts, err
		}
	}
	// Flags given on the command line override the file.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			opts.cfg.Listen = *listen
		case "data":
			opts.cfg.DataDir = *dataDir
		case "public-url":
			opts.cfg.PublicURL = *publicURL
		case "tls-cert":
			opts.cfg.TLSCertFile = *tlsCert
		case "tls-key":
			opts.cfg.TLSKeyFile = *tlsKey
		case "allowed-origins":
			opts.cfg.AllowedOrigins = splitList(*origins)
		case "turn-listen":
			opts.cfg.TURN.Listen = *turnListen
		case "turn-tcp-listen":
			opts.cfg.TURN.TCPListen = *turnTCP
		case "turn-tls-listen":
			opts.cfg.TURN.TLSListen = *turnTLS
		case "turn-public-ip":
			opts.cfg.TURN.PublicIP = *turnIP
		case "turn-realm":
			opts.cfg.TURN.Realm = *turnRealm
		case "turn-allow-peers":
			opts.cfg.TURN.AllowPeers = splitList(*allowPeers)
		case "ice-policy":
			opts.cfg.ICETransportPolicy = *icePolicy
		case "device-ca":
			opts.cfg.DeviceCAFiles = splitList(*deviceCAs)
		}
	})
	switch *logFormat {
	case "text", "json":
		opts.logFormat = *logFormat
	default:
		return opts, fmt.Errorf("-log-format %q: want text or json", *logFormat)
	}
	if err := opts.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return opts, fmt.Errorf("-log-level: %w", err)
	}
	if opts.cfg.Listen == "" {
		return opts, errors.New("listen address is empty")
	}
	return opts, opts.cfg.Validate()
}

// decodeFile overlays a TOML file on cfg, refusing keys it does not know.
func decodeFile(path string, cfg *rendezvous.Config) error {
	md, err := toml.DecodeFile(path, cfg)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "audit" {
		return runAudit(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "revoke" {
		return runRevoke(args[1:], stdout, stderr)
	}
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

	srv, err := rendezvous.New(opts.cfg, log)
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
