package natsreg

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tuanju/tuanju/internal/rendezvous"
)

// EmbeddedURL, as nats_url, runs a NATS server inside the rendezvous
// process with its JetStream store in DataDir/nats: one node on the same
// code path a cluster takes, with nothing else to run.
const EmbeddedURL = "embedded"

// NewRendezvous makes a rendezvous server on the registry cfg names: the
// bbolt file in its data directory (rendezvous.New), or, with nats_url set,
// NATS JetStream (Open, rendezvous.NewWithRegistry). cmd/rendezvous and the
// test servers make theirs with it.
func NewRendezvous(cfg rendezvous.Config, log *slog.Logger) (*rendezvous.Server, error) {
	if cfg.NATSURL == "" {
		return rendezvous.New(cfg, log)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err // before a server is started in a data directory that may be ""
	}
	reg, err := Open(cfg, log)
	if err != nil {
		return nil, err
	}
	srv, err := rendezvous.NewWithRegistry(cfg, log, reg)
	if err != nil {
		return nil, err
	}
	// Every server on NATS is a node of a cluster, of one node or more:
	// a family's sockets on several nodes are routed by one (route.go).
	if r, ok := reg.(interface{ Router() *Router }); ok {
		if err := srv.JoinCluster(r.Router()); err != nil {
			srv.Close()
			return nil, err
		}
	}
	if a, ok := reg.(rendezvous.AuditStream); ok {
		srv.UseAuditStream(a)
	}
	if d, ok := reg.(rendezvous.DenyList); ok {
		if err := srv.UseDenyList(d); err != nil {
			srv.Close()
			return nil, err
		}
	}
	return srv, nil
}

// Open opens the registry cfg.NATSURL names, for rendezvous.NewWithRegistry:
// a NATS cluster's servers, or EmbeddedURL. Its buckets get cfg.NATSReplicas
// replicas when it makes them; its open calls are this node's
// (cfg.NodeName, default the host's name).
func Open(cfg rendezvous.Config, log *slog.Logger) (rendezvous.Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	node := cfg.NodeName
	if node == "" {
		node = hostNode()
	}
	o := Options{Replicas: cfg.NATSReplicas, Name: "tuanju-rendezvous-" + node, Node: node}
	if cfg.NATSURL != EmbeddedURL {
		reg, err := Connect(cfg.NATSURL, o)
		if err != nil {
			return nil, err
		}
		log.Info("registry on NATS", "component", "registry", "url", redact(cfg.NATSURL), "node", node)
		return reg, nil
	}
	dir := filepath.Join(cfg.DataDir, "nats")
	srv, err := StartEmbedded(dir, Embed{Log: log.With("component", "nats")})
	if err != nil {
		return nil, fmt.Errorf("natsreg: embedded server in %s: %w", dir, err)
	}
	reg, err := Connect(srv.URL(), o)
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	reg.storeFull = srv.Full
	log.Info("registry on an embedded NATS server", "component", "registry", "dir", dir, "node", node)
	return &embedded{reg, srv}, nil
}

// embedded is a registry whose Close also stops its embedded server.
type embedded struct {
	*Registry
	srv *Server
}

func (e *embedded) Close() error {
	err := e.Registry.Close()
	e.srv.Shutdown()
	return err
}

// hostNode is the host's name as a node name (letters, digits, '-', '_').
func hostNode() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "node"
	}
	h, _, _ = strings.Cut(h, ".")
	var b strings.Builder
	for _, c := range h {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 || b.Len() > 64 {
		return "node"
	}
	return b.String()
}

// redact drops credentials from NATS URLs before they are logged.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if at := strings.LastIndexByte(p, '@'); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "…@" + p[at+1:]
			}
		}
	}
	return strings.Join(parts, ",")
}
