package natsreg

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Embed configures an embedded NATS server. The zero value is one node on
// a random loopback port with no cluster: the default deployment.
//
// The embedded server has no authentication and no TLS, and listens on
// 127.0.0.1 only, so only processes on this machine reach it; that is all
// the one-node default needs, since the rendezvous server in the same
// process is its only client. A real deployment points nats_url at a NATS
// cluster that must set, in the NATS server's own configuration: TLS on
// client and route ports (tls, cluster.tls), an account for the registry
// with credentials (accounts or an operator/JWT resolver, nkeys or creds
// files) so that nothing else on the network can read the parents' token
// hashes or rewrite a pairing, and jetstream { sync: always } (see
// SyncAlways below).
type Embed struct {
	// Name is the server's name; a JetStream cluster needs one per node.
	// Default: "tuanju-registry".
	Name string
	// Port is the client port on 127.0.0.1; 0 picks a free one.
	Port int
	// Cluster, when set, makes this server one node of a NATS cluster
	// (tests; a production cluster is a real nats-server, not embedded).
	Cluster *EmbedCluster
	// Log receives the server's own notices, warnings and errors; nil
	// keeps it quiet.
	Log *slog.Logger
}

// EmbedCluster is a node's place in a NATS cluster of embedded servers.
type EmbedCluster struct {
	Name   string   // the cluster's name, the same on every node
	Port   int      // this node's route port on 127.0.0.1; 0 picks one
	Routes []string // every node's route address, host:port (its own may be among them)
}

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns   *server.Server
	opts server.Options // as started
	dir  string
	log  *slog.Logger

	low      atomic.Bool // the store's file system has less than storeRoom free
	stop     chan struct{}
	watching chan struct{} // closed when watchStore has returned
	stopOnce sync.Once
}

// A full disk under the embedded server. JetStream does not answer a write
// its file store failed to make (the client waits out its timeout), and
// the stream then refuses every later write, even once the disk has room,
// until JetStream restarts: nats-server keeps the write error (in a
// replicated stream the leader steps down instead and another takes the
// writes). So the server watches its store's file system every storeCheck:
// below storeRoom free it is low, and the registry fails a write that gets
// no answer at once rather than retrying it for its 20 s (Full); once it
// has room again JetStream restarts, reopening its streams from their
// files, which hold every write it acknowledged.
const (
	storeRoom  = 256 << 10
	storeCheck = time.Second
)

// StartEmbedded starts a NATS server in this process with JetStream on and
// its store under dir, and waits until it takes clients.
//
// The store syncs every write to disk before the write is acknowledged
// (nats-server's SyncAlways, "jetstream { sync: always }" in a config
// file). JetStream's default is to fsync every two minutes: a pairing
// acknowledged to the terminal and the page, then lost in a power cut,
// would leave the terminal holding a parent the server no longer knows
// (or a page holding a credential nobody accepts), which only a factory
// reset repairs. A registry write is a few hundred bytes and pairings
// are rare; the fsync costs nothing that matters. In a replicated stream
// (R3) nats-server keeps the promise through its Raft log instead, which
// it then syncs before every commit.
func StartEmbedded(dir string, c Embed) (*Server, error) {
	if dir == "" {
		return nil, errors.New("natsreg: embedded server: no store directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("natsreg: embedded server: %w", err)
	}
	name := c.Name
	if name == "" {
		name = "tuanju-registry"
	}
	port := c.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: true,
		NoSigs:     true, // the rendezvous server owns the process's signals
		NoLog:      c.Log == nil,
		// No HTTP monitoring, no leaf nodes, no websocket, no MQTT: none is
		// configured, so none listens.
	}
	if cl := c.Cluster; cl != nil {
		cport := cl.Port
		if cport == 0 {
			cport = server.RANDOM_PORT
		}
		opts.Cluster = server.ClusterOpts{Name: cl.Name, Host: "127.0.0.1", Port: cport}
		for _, r := range cl.Routes {
			u, err := url.Parse("nats-route://" + r)
			if err != nil {
				return nil, fmt.Errorf("natsreg: embedded server: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsreg: embedded server: %w", err)
	}
	if c.Log != nil {
		ns.SetLoggerV2(slogAdapter{c.Log}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("natsreg: embedded server did not start within 10s")
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{ns: ns, opts: *opts, dir: dir, log: log, stop: make(chan struct{}), watching: make(chan struct{})}
	if c.Cluster == nil {
		go s.watchStore()
	} else {
		close(s.watching) // a cluster's streams are replicated: the others take over
	}
	return s, nil
}

// Full reports whether the store's file system was short of room at the
// last look: a write that got no answer then failed on the disk.
func (s *Server) Full() bool { return s.low.Load() }

// watchStore looks at the store's free space every storeCheck and restarts
// JetStream each time it has room again after it had none.
func (s *Server) watchStore() {
	defer close(s.watching)
	t := time.NewTicker(storeCheck)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		free, err := freeBytes(s.dir)
		if err != nil {
			continue
		}
		switch low := free < storeRoom; {
		case low && !s.low.Load():
			s.low.Store(true)
			s.log.Error("the registry's disk is full: its writes fail until there is room, and JetStream then restarts", "dir", s.dir, "free_bytes", free)
		case !low && s.low.Load():
			if err := s.restartJetStream(); err != nil {
				s.log.Error("JetStream did not restart after its disk was full; trying again", "err", err)
				continue
			}
			s.low.Store(false)
			s.log.Warn("JetStream restarted after a write error: the disk has room again", "dir", s.dir, "free_bytes", free)
		}
	}
}

// restartJetStream turns JetStream off and on again through nats-server's
// own reload, which restarts it with the options it started with.
func (s *Server) restartJetStream() error {
	off := s.opts
	off.JetStream = false
	if err := s.ns.ReloadOptions(&off); err != nil {
		return fmt.Errorf("stop JetStream: %w", err)
	}
	on := s.opts
	if err := s.ns.ReloadOptions(&on); err != nil {
		return fmt.Errorf("start JetStream: %w", err)
	}
	if !s.ns.JetStreamEnabled() {
		return errors.New("JetStream is still off")
	}
	return nil
}

// URL is the client URL to Connect to.
func (s *Server) URL() string { return s.ns.ClientURL() }

// ClusterAddr is the route address (host:port), or "" without a cluster.
func (s *Server) ClusterAddr() string {
	if a := s.ns.ClusterAddr(); a != nil {
		return "127.0.0.1:" + strconv.Itoa(a.Port)
	}
	return ""
}

// Name is the server's name.
func (s *Server) Name() string { return s.ns.Name() }

// Shutdown stops the server cleanly: clients are closed, JetStream hands
// the leadership of its streams to other nodes and flushes its store.
func (s *Server) Shutdown() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.watching
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// slogAdapter carries nats-server's log lines into slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(f string, v ...any) { a.l.Info(fmt.Sprintf(f, v...), "component", "nats") }
func (a slogAdapter) Warnf(f string, v ...any)   { a.l.Warn(fmt.Sprintf(f, v...), "component", "nats") }
func (a slogAdapter) Fatalf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...), "component", "nats") }
func (a slogAdapter) Errorf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...), "component", "nats") }
func (a slogAdapter) Debugf(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...), "component", "nats") }
func (a slogAdapter) Tracef(f string, v ...any)  {}
