// Package rendezvous is the rendezvous server: WebSocket signalling between a
// terminal and its one paired parent (docs/protocol.md), the pairing registry
// on bbolt, presence, the call log, and an embedded TURN relay (pion/turn)
// whose short-lived credentials it hands out per call.
//
// All routing state lives in one hub behind one mutex (hub.go); every
// message that reaches another socket is decided there, from the sender's
// authenticated identity and the stored pairing, never from IDs the sender
// chose. The call log is committed behind the hub, in groups (calllog.go),
// and what the hub sends waits for the records it follows to be on disk.
package rendezvous

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/tuanju/tuanju/internal/rendezvous/certreload"
	"github.com/tuanju/tuanju/internal/rendezvous/webapp"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Server is the rendezvous server. Create it with New, serve Handler, and
// Close it when done.
type Server struct {
	cfg         Config
	log         *slog.Logger
	store       Registry
	bolt        *Store // store, when it is a bbolt file (New); nil on NATS
	turn        *turnRelay
	turnSecret  string
	turnURLs    []turnURL // handed out with credentials: the embedded relay's, or turn.urls
	origins     []string
	deviceCAs   []*x509.Certificate // program CAs, from cfg.DeviceCAFiles
	hub         *hub
	audit       *auditLog
	now         func() time.Time
	admission   *admission                            // connections before login (admission.go)
	logins      *limiter                              // logins per terminal and per parent
	pairFails   *pairFailures                         // wrong pairing proofs per terminal and source (pairing.go)
	sourceKey   []byte                                // keys the source tags on relayed pair_requests (pairing.go)
	proxies     []netip.Prefix                        // trusted_proxies
	tls         *tls.Config                           // tls_cert_file; TLSConfig adds the web's ALPN
	revoked     *revocations                          // nil without revoked_devices_file
	fleet       *fleet                                // nil without fleet key_files
	stop        chan struct{}                         // closed by Close: background loops end
	metrics     metrics                               // counters for GET /metrics (metrics.go)
	health      *health                               // client_golang's counters (health_metrics.go)
	registry    http.Handler                          // GET /metrics and /fleet/metrics (health_metrics.go)
	callLog     *callLog                              // the hub's call-log writes (calllog.go)
	callLogStop chan struct{}                         // closed by Close once the sockets are gone: the call log's writer ends
	retryDone   chan struct{}                         // closed when the call log's writer has ended
	backupDone  chan struct{}                         // closed when the backup loop has ended (nil: no backups)
	pairFault   atomic.Pointer[func(FaultPoint) bool] // tests' crash points in pairing (pairing.go)
	push        *pusher                               // Web Push; nil when off (push.go)
	notifier    *notifier                             // the programme's SMS and voice webhook; nil when off (notifier.go)

	// The other nodes (cluster.go); nil cluster: one node.
	cluster     Cluster
	clusterStop func()
	denyStop    func()         // the cluster's deny list (UseDenyList)
	auditStream AuditStream    // the cluster's audit log (UseAuditStream); nil on one node
	auditWG     sync.WaitGroup // appends to auditStream under way
	clusterMu   sync.Mutex
	relayed     map[string]*session          // socket ID → this node's socket routed by another node's hub
	relayedDev  map[string]map[*session]bool // device ID → those sockets, by the terminal they are for
	remotes     map[string]*session          // "<node>/<socket ID>" → another node's socket routed by this hub

	wg        sync.WaitGroup // live WebSocket handlers
	mu        sync.Mutex
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, opens (or creates) the data directory and its bbolt
// registry, loads or generates the TURN secret and starts the TURN relay.
// A server whose registry is elsewhere (cfg.NATSURL: NATS JetStream, shared
// by several nodes) is made by NewWithRegistry.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.NATSURL != "" {
		return nil, errors.New("rendezvous: nats_url is set: open its registry (natsreg.Open) and call NewWithRegistry")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("rendezvous: create data dir: %w", err)
	}
	store, err := OpenStore(filepath.Join(cfg.DataDir, RegistryFile))
	if err != nil {
		return nil, err
	}
	s, err := NewWithRegistry(cfg, log, store)
	if err != nil {
		return nil, err
	}
	s.bolt = store
	if b := cfg.Backup; b.Every > 0 {
		if b.Dir == "" {
			b.Dir = filepath.Join(cfg.DataDir, "backups")
		}
		s.backupDone = make(chan struct{})
		go func() { defer close(s.backupDone); s.backupLoop(b, s.stop) }()
	}
	return s, nil
}

// NewWithRegistry is New on a registry the caller opened: a bbolt Store, or
// natsreg's registry on NATS JetStream (cfg.NATSURL). The server owns it
// from here: it is closed with the server, or at once if New fails. Backups
// (cfg.Backup) are of a bbolt file, so New makes them; a registry on
// JetStream is kept by its replicas and the cluster's own backups.
func NewWithRegistry(cfg Config, log *slog.Logger, reg Registry) (s *Server, err error) {
	defer func() {
		if err != nil {
			reg.Close()
		}
	}()
	if err = cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "rendezvous")
	public, _ := url.Parse(cfg.PublicURL) // Validate checked it; "" is an empty URL
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("rendezvous: create data dir: %w", err)
	}
	s = &Server{cfg: cfg, log: log, now: time.Now, origins: slicesClone(cfg.AllowedOrigins),
		audit:     &auditLog{path: filepath.Join(cfg.DataDir, AuditFile)},
		admission: newAdmission(cfg.Limits), logins: newRateLimiter(cfg.Limits.LoginsPerIdentity),
		pairFails: newPairFailures(cfg.Limits.PairFailuresPerSource, cfg.Limits.PairFailureMemory),
		sourceKey: randomKey(), health: newHealth()}
	s.proxies, _ = parseProxies(cfg.TrustedProxies) // Validate checked them
	if s.deviceCAs, err = loadDeviceCAs(cfg.DeviceCAFiles, log); err != nil {
		return nil, err
	}
	if cfg.TLSCertFile != "" {
		certs, err := certreload.New(cfg.TLSCertFile, cfg.TLSKeyFile, log)
		if err != nil {
			return nil, fmt.Errorf("rendezvous: tls_cert_file: %w", err)
		}
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	} else if public.Scheme == "https" && len(s.proxies) == 0 {
		log.Warn("public_url is https but this server speaks plain http: set tls_cert_file and tls_key_file, or put a TLS proxy in front (and list it in trusted_proxies)")
	}
	if cfg.RevokedDevicesFile != "" {
		if s.revoked, err = loadRevocations(cfg.RevokedDevicesFile); err != nil {
			return nil, err
		}
		log.Info("revoked devices", "file", cfg.RevokedDevicesFile, "devices", s.revoked.count())
	}
	if s.fleet, err = loadFleet(cfg); err != nil {
		return nil, err
	}
	logFleet(s.fleet, log)
	if len(cfg.SecurityContact) == 0 {
		log.Warn("no security_contact configured: publish where to report a vulnerability (/.well-known/security.txt)")
	}
	if public.Host != "" {
		s.origins = append(s.origins, public.Host)
	}
	s.store = reg
	if s.fleet != nil {
		s.fleet.keep.write, s.fleet.keep.log = reg.NoteDeviceHealth, log
	}
	open := s.closeOpenCalls()
	s.callLog = newCallLog(reg, log.With("component", "call_log"), &s.metrics, func() time.Time { return s.now() })
	switch {
	case len(cfg.TURN.URLs) > 0:
		s.turnSecret, s.turnURLs = cfg.TURN.Secret, externalTURNURLs(cfg.TURN.URLs)
		log.Info("turn relay external: handing out its URLs with TURN REST credentials", "urls", strings.Join(cfg.TURN.URLs, " "))
	case cfg.TURN.enabled():
		s.turnSecret = cfg.TURN.Secret
		if s.turnSecret == "" {
			if s.turnSecret, err = loadOrCreateSecret(cfg.DataDir); err != nil {
				return nil, err
			}
		}
		if s.turn, err = startTURN(cfg.TURN, selfAddrs(cfg), s.turnSecret, s.tls, public.Hostname(), log.With("component", "turn")); err != nil {
			return nil, err
		}
		s.turnURLs = s.turn.urls
	}
	if s.push, err = newPusher(cfg, reg, &s.metrics, func() time.Time { return s.now() }, log.With("component", "push")); err != nil {
		if s.turn != nil {
			s.turn.Close()
		}
		return nil, err
	}
	s.notifier = newNotifier(cfg.Notifier, &s.metrics, func() time.Time { return s.now() }, log.With("component", "notifier"))
	s.hub = newHub(s)
	s.hub.restore(open)
	s.registry = newRegistry(s)
	s.stop = make(chan struct{})
	s.retryDone = make(chan struct{})
	s.callLogStop = make(chan struct{})
	go func() { defer close(s.retryDone); s.callLog.run(s.callLogStop) }()
	if s.revoked != nil {
		go s.watchRevocations(cfg.RevocationCheckInterval, s.stop)
	}
	if s.fleet != nil {
		go s.watchFleet(cfg.RevocationCheckInterval, s.stop)
	}
	if sw, ok := reg.(IndexSweeper); ok {
		go s.sweepIndex(sw, s.stop)
	}
	return s, nil
}

// closeOpenCalls ends, in the log, the calls a server that stopped without
// ending them left open (Store.CloseOpenCalls). A failure is logged and the
// server starts anyway: those entries stay open, and calls are not refused
// for them.
//
// It returns them: the answered ones wait to be resumed (hub.restore).
func (s *Server) closeOpenCalls() []OpenCall {
	open, err := s.store.CloseOpenCallsList()
	if err != nil {
		s.log.Error("could not close the calls left open by the last run", "err", err)
		return nil
	}
	n := len(open)
	s.metrics.callsClosedAtStart.Add(uint64(n))
	if n > 0 {
		s.log.Warn("closed calls left open by the last run (it stopped without ending them)", "calls", n)
	}
	return open
}

func slicesClone(in []string) []string { return append([]string(nil), in...) }

// TLSConfig is what the HTTP listener must serve with (tls_cert_file and
// tls_key_file), or nil when the server speaks plain http. The TURN relay
// serves turns: with the same certificate but without this ALPN list, so a
// TURN client that offers "stun.turn" is not refused for it.
func (s *Server) TLSConfig() *tls.Config {
	if s.tls == nil {
		return nil
	}
	tc := s.tls.Clone()
	// HTTP/1.1 only: browsers then open the signalling WebSocket the one
	// way the server takes it (an Upgrade), never over HTTP/2's extended
	// CONNECT.
	tc.NextProtos = []string{"http/1.1"}
	return tc
}

// Handler serves GET /ws (signalling), GET /healthz, GET /metrics (to the
// server's own machine only, metrics.go) and the parent's web app at /.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("GET /.well-known/security.txt", s.serveSecurityTxt)
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	s.fleetRoutes(mux) // GET /fleet, /fleet/api/report, /fleet/metrics (fleet_http.go)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/", webapp.Handler())
	return hsts(mux)
}

// hstsValue tells a browser that has reached the server over TLS to use
// nothing else for a year, so a network that strips TLS (a hostile Wi-Fi)
// cannot serve the parent a look-alike page. Not includeSubDomains: the
// server does not know what else runs under its domain.
const hstsValue = "max-age=31536000"

// hsts adds Strict-Transport-Security to every answer given over TLS. A
// TLS proxy in front terminates TLS itself and sets its own headers.
func hsts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", hstsValue)
		}
		next.ServeHTTP(w, r)
	})
}

// Store is the server's registry when it is a bbolt file (for tools and
// tests); nil when it is elsewhere (NewWithRegistry).
func (s *Server) Store() *Store { return s.bolt }

// Registry is the server's registry, wherever it is.
func (s *Server) Registry() Registry { return s.store }

// AuditPath is where the server appends its audit log (see ReadAudit).
func (s *Server) AuditPath() string { return s.audit.path }

// writeAudit appends to the audit log; a failure is logged loudly but does
// not undo the change, which has committed already.
func (s *Server) writeAudit(event, deviceID, parentID string) {
	e := AuditEntry{Time: s.now().UTC(), Event: event, DeviceID: deviceID, ParentID: parentID}
	if err := s.audit.append(e); err != nil {
		s.log.Error("audit log write failed", "event", event, "device", deviceID, "parent", parentID, "err", err)
	}
	if s.auditStream != nil {
		// Off the hub's lock (the callers hold it): a round trip to the
		// cluster, retried through a leader's election.
		s.auditWG.Go(func() {
			if err := s.auditStream.AppendAudit(e); err != nil {
				s.log.Error("the cluster's audit log: write failed (the node's file has it)", "event", event, "device", deviceID, "parent", parentID, "err", err)
			}
		})
	}
}

// TURNAddr is the TURN relay's local UDP address, or nil when TURN is off.
func (s *Server) TURNAddr() net.Addr {
	if s.turn == nil {
		return nil
	}
	return s.turn.addr
}

// Close closes every socket, waits for their handlers, then stops the TURN
// relay and closes the store. http.Server.Shutdown does not wait for
// hijacked WebSockets, so call Close after it.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		s.hub.closeAll()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.log.Warn("sockets still open after 10 s; closing anyway")
		}
		s.hub.reads.Wait() // logs being pushed read the store
		// The call log's writer runs until the sockets are gone: what they
		// were sent last waits for its commit (calllog.go).
		close(s.callLogStop)
		<-s.retryDone
		if s.backupDone != nil {
			<-s.backupDone // a backup in progress reads the store
		}
		s.callLog.retry(true) // the last chance for records a full disk held back
		if s.fleet != nil {
			s.fleet.keep.wait() // units' last health reports
		}
		if s.push != nil {
			s.push.close()
		}
		if s.notifier != nil {
			s.notifier.close()
		}
		if s.clusterStop != nil {
			s.clusterStop()
		}
		if s.denyStop != nil {
			s.denyStop()
		}
		s.auditWG.Wait()
		var errs []error
		if s.turn != nil {
			errs = append(errs, s.turn.Close())
		}
		errs = append(errs, s.store.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// enter registers a WebSocket handler unless the server is closing.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// clientIP is the address the limits count a request by: the connection's
// peer, unless the peer is a trusted proxy (trusted_proxies); then the
// right-most X-Forwarded-For entry that is not itself a trusted proxy.
// Entries further left were written by the client and are never read; an
// entry that does not parse stops the walk at the last trusted hop.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trustedProxy(peer) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer.Unmap()
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		client = hop.Unmap().WithZone("")
		if !s.trustedProxy(client) {
			break
		}
	}
	return client.String()
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	ip := s.clientIP(r)
	ticket, status, why := s.admission.admit(ip, s.now())
	if ticket == nil {
		s.wg.Done()
		s.log.Debug("connection refused", "remote", ip, "status", status, "why", why)
		refuse(w, status, why)
		return
	}
	sb := &smallBuffers{ResponseWriter: w}
	conn, err := websocket.Accept(sb, r, &websocket.AcceptOptions{
		Subprotocols:   []string{protocol.Subprotocol},
		OriginPatterns: s.origins,
	})
	if err != nil {
		ticket.leave()
		s.wg.Done()
		s.log.Debug("websocket accept failed", "remote", r.RemoteAddr, "err", err)
		return // Accept has written the HTTP error
	}
	// The socket gets a goroutine of its own and this handler returns: an
	// idle socket then keeps a shallow stack and none of the HTTP
	// request's state, where the handler's goroutine would keep net/http's
	// frames and whatever stack the login grew (BenchmarkIdleTerminals).
	go s.serveSocket(conn, sb.out, ip, ticket)
}

// serveSocket runs one WebSocket from its upgrade to its close: login,
// then the read loop. s.wg counts it (serveWS entered it). The login runs
// in openSocket, so the deep calls it makes (signatures, the registry) are
// off the stack an idle socket waits with, which the collector then shrinks
// to 8 KiB. (4 KiB would need under ~1.2 KiB in use; coder/websocket's read
// and the runtime's netpoll frames alone take more.)
func (s *Server) serveSocket(conn *websocket.Conn, out *socketOut, ip string, ticket *ticket) {
	defer s.wg.Done()
	defer ticket.leave()
	defer s.recoverSocket(conn, ip)
	sess := s.openSocket(conn, out, ip, ticket)
	if sess == nil {
		return
	}
	defer s.closeSocket(sess)
	if sess.loggedIn {
		s.readLoop(sess)
	}
}

// recoverSocket does what net/http did for the handler: a bug costs this
// socket, not every family on the node.
func (s *Server) recoverSocket(conn *websocket.Conn, ip string) {
	if v := recover(); v != nil {
		s.log.Error("panic serving a socket", "remote", ip, "panic", v, "stack", string(debug.Stack()))
		conn.CloseNow()
	}
}

// openSocket makes the socket's session, puts it in the hub and logs it in
// (sess.loggedIn). nil: the socket is closed already and nothing needs
// undoing; otherwise closeSocket undoes it.
//
//go:noinline
func (s *Server) openSocket(conn *websocket.Conn, out *socketOut, ip string, ticket *ticket) *session {
	if conn.Subprotocol() != protocol.Subprotocol {
		conn.Close(websocket.StatusPolicyViolation, "subprotocol "+protocol.Subprotocol+" required")
		return nil
	}
	conn.SetReadLimit(protocol.MaxMessageBytes)
	sess := newSession(conn, ip, s.cfg.SendQueueDepth, s.log.With("remote", ip))
	sess.out = out
	sess.counted = s.health.error
	sess.barrier = s.callLog
	if !ticket.attach(func(pairing bool) { s.evicted(sess, pairing) }) {
		conn.CloseNow() // displaced by a newcomer during the upgrade
		return nil
	}
	if !s.hub.add(sess) {
		conn.Close(websocket.StatusGoingAway, "server shutting down")
		return nil
	}
	sess.start(s.cfg.WriteTimeout, s.cfg.PingInterval, s.cfg.PongTimeout, sess.log)
	if !s.login(sess, ticket) {
		return sess
	}
	sess.loggedIn = true
	if sess.role == protocol.RolePairing {
		lifetime := s.cfg.Limits.PairingLifetime
		sess.lifetime = time.AfterFunc(lifetime, func() {
			sess.log.Info("pairing page open too long, closing", "lifetime", lifetime)
			sess.sendError(protocol.ErrCodeRateLimited, fmt.Sprintf("a pairing page may stay connected %v; reconnect to try again", lifetime), protocol.Message{})
			sess.closeWith(websocket.StatusTryAgainLater, "pairing time is up")
		})
	}
	return sess
}

// closeSocket takes a socket out of the hub and closes it, after letting
// its writer flush a last error and close frame.
func (s *Server) closeSocket(sess *session) {
	if sess.lifetime != nil {
		sess.lifetime.Stop()
	}
	s.hub.leave(sess)
	if s.cluster != nil {
		s.closeRelayed(sess)
		if sess.role == protocol.RoleTerminal {
			s.clearHome(sess)
		}
	}
	sess.stop()
	if sess.closing.Load() {
		t := time.NewTimer(s.cfg.WriteTimeout + 6*time.Second)
		select {
		case <-sess.done:
		case <-sess.ctx.Done(): // dropped: nothing more is written
		case <-t.C:
		}
		t.Stop()
	}
	sess.cancel()
	sess.conn.CloseNow()
}

// evicted closes a socket whose admission slot a newcomer took
// (admission.go). One that has not logged in is dropped without a word:
// it has been told nothing yet and holds nothing. A pairing page is told,
// so that a real one knows to reconnect.
func (s *Server) evicted(sess *session, pairing bool) {
	if !pairing {
		sess.log.Debug("displaced before login by a newcomer")
		sess.drop()
		return
	}
	sess.log.Info("pairing page displaced by a newcomer")
	sess.sendError(protocol.ErrCodeRateLimited, "too many pairing pages are open; try again", protocol.Message{})
	sess.closeWith(websocket.StatusTryAgainLater, "server busy")
}

// login runs challenge → hello → welcome. On failure the client gets
// auth_failed and the socket is closed with 4001. Before the welcome it
// settles the socket's admission ticket: a terminal or parent that proved
// who it is no longer counts against the caps on unauthenticated sockets; a
// pairing page proved nothing and moves to the pairing pool (admission.go)
// or is refused. Doing that before the welcome means a client that has its
// welcome holds its slot, so the caps are exact in the order clients log in.
func (s *Server) login(sess *session, ticket *ticket) bool {
	nonce := protocol.NewNonce()
	sess.send(protocol.Message{Type: protocol.TypeChallenge, Nonce: nonce, ServerTime: s.now().UTC().Truncate(time.Second)})

	fail := func(reason, why string, m protocol.Message) bool {
		if ticket.failing() {
			return false
		}
		s.health.refused(reason)
		sess.log.Info("login refused", "why", why)
		sess.sendError(protocol.ErrCodeAuthFailed, why, m)
		sess.closeWith(CloseAuthFailed, "auth failed")
		return false
	}
	timer := time.AfterFunc(s.cfg.HelloTimeout, func() {
		fail(refusedTimeout, fmt.Sprintf("no hello within %v", s.cfg.HelloTimeout), protocol.Message{})
	})
	data, text, err := sess.read()
	if !timer.Stop() {
		return false // timed out; the close is queued
	}
	if err != nil {
		return false
	}
	if !text {
		return fail(refusedBadHello, "hello must be a text message", protocol.Message{})
	}
	m, err := protocol.Decode(data)
	if err != nil {
		return fail(refusedBadHello, err.Error(), protocol.Message{})
	}
	if m.Type != protocol.TypeHello {
		return fail(refusedBadHello, "expected hello, got "+m.Type, m)
	}
	switch m.Role {
	case protocol.RoleTerminal:
		if m.ParentID != "" || m.Token != "" {
			return fail(refusedBadHello, "terminal hello carries parent credentials", m)
		}
		if err := s.checkDeviceCert(m); err != nil {
			return fail(refusedBadCertificate, refusal(err), m)
		}
		der, err := protocol.VerifyLogin(m, nonce)
		if err != nil {
			return fail(refusedBadSignature, err.Error(), m)
		}
		if reason, revoked := s.revoked.revoked(m.DeviceID); revoked {
			sess.log.Warn("revoked unit tried to log in", "device", m.DeviceID, "reason", reason)
			return fail(refusedRevoked, revokedText, m)
		}
		if s.fleet.refuses(m.DeviceID) {
			sess.log.Warn("unit in no manifest tried to log in", "device", m.DeviceID)
			return fail(refusedNotInManifest, notInManifestText, m)
		}
		if !s.loginAllowed(sess, "terminal:"+m.DeviceID, m) {
			return false
		}
		first, err := s.store.RegisterDevice(m.DeviceID, der, m.Version, s.now().UTC())
		if err != nil && !errors.Is(err, ErrKeyMismatch) && s.registeredWith(m.DeviceID, der) {
			// The login could not be recorded (a full disk), but the unit
			// is registered with this key: a child's terminal stays
			// reachable; only its last_seen and version wait.
			sess.log.Warn("could not record the login; letting the unit in on its registered key", "err", err)
			err = nil
		}
		if err != nil {
			if errors.Is(err, ErrKeyMismatch) {
				return fail(refusedKeyMismatch, "device key does not match the registered key", m)
			}
			sess.log.Error("register device", "err", err)
			s.health.refused(refusedInternal)
			sess.sendError(protocol.ErrCodeInternal, "could not record the login", m)
			sess.closeWith(websocket.StatusInternalError, "internal error")
			return false
		}
		sess.role, sess.deviceID = protocol.RoleTerminal, m.DeviceID
		sess.log = sess.log.With("role", "terminal", "device", m.DeviceID)
		if u, ok := s.fleet.unit(m.DeviceID); ok {
			sess.log = sess.log.With("unit", u.Unit.Unit, "site", u.Site, "region", u.Region)
		}
		if first {
			sess.log.Info("device registered", "version", m.Version)
		}
	case protocol.RoleParent:
		if m.ParentID == "" || m.Token == "" || m.DeviceID != "" || m.PublicKey != "" || m.Signature != "" || m.Certificate != "" {
			return fail(refusedBadHello, "parent hello needs exactly parent_id and token", m)
		}
		dev, ok, pending := s.checkParent(m.ParentID, m.Token)
		if !ok && !pending {
			return fail(refusedWrongToken, "unknown parent or wrong token", m)
		}
		if !s.loginAllowed(sess, "parent:"+m.ParentID, m) {
			return false
		}
		if pending {
			// Neither good nor dead yet: the terminal has not said whether
			// it stored this pairing (pairing.go). The page keeps its
			// credential and comes back.
			sess.log.Info("parent login for a pairing its terminal has not confirmed yet", "parent", m.ParentID, "device", dev)
			s.health.refused(refusedPending)
			sess.sendError(protocol.ErrCodePairingPending, "your terminal has not yet confirmed this pairing; it will when it is next online", m)
			sess.closeWith(websocket.StatusTryAgainLater, "pairing pending")
			return false
		}
		sess.role, sess.parentID, sess.deviceID = protocol.RoleParent, m.ParentID, dev
		sess.log = sess.log.With("role", "parent", "parent", m.ParentID, "device", dev)
	case protocol.RolePairing:
		if m.DeviceID != "" || m.PublicKey != "" || m.Signature != "" || m.Certificate != "" || m.ParentID != "" || m.Token != "" {
			return fail(refusedBadHello, "pairing hello carries no credentials", m)
		}
		if !ticket.pairing() {
			// Out of the pending pool before the refusal goes out, as a
			// failed login is (fail): the slot is free when the page hears.
			if ticket.failing() {
				return false
			}
			sess.log.Warn("too many pairing pages")
			s.health.refused(refusedPairingFull)
			sess.sendError(protocol.ErrCodeRateLimited, "too many pairing pages are open; wait a minute", m)
			sess.closeWith(websocket.StatusTryAgainLater, "rate limited")
			return false
		}
		sess.role = protocol.RolePairing
		sess.log = sess.log.With("role", "pairing")
	}
	if sess.role != protocol.RolePairing {
		ticket.authenticated(s.now())
	}
	// A terminal's node is recorded before it joins, so that a parent
	// routed here meanwhile is here when it does; a parent whose terminal
	// is on another node is served by that node's hub, which welcomes it
	// (cluster.go).
	var reads *joinReads
	if sess.role == protocol.RoleTerminal {
		r := s.hub.readForJoin(sess)
		reads = &r
		if !s.setHome(sess, r) {
			return s.tryAgain(sess, "could not record the login", m)
		}
	}
	if home := s.parentsHome(sess); home != "" {
		relayed, err := s.openRelay(sess, home, sess.deviceID)
		if err != nil {
			return s.tryAgain(sess, "the server your terminal is on did not answer; reconnecting", m)
		}
		if relayed {
			s.health.logins.WithLabelValues(sess.role).Inc()
			sess.log.Info("logged in")
			return true
		}
	}
	joined := false
	if reads != nil {
		joined = s.hub.joinRead(sess, *reads)
	} else {
		joined = s.hub.join(sess)
	}
	if !joined {
		if s.hub.isClosed() {
			sess.closeWith(websocket.StatusGoingAway, "shutting down")
		} else {
			s.health.refused(refusedInternal)
			sess.closeWith(websocket.StatusInternalError, "login failed")
		}
		return false
	}
	s.health.logins.WithLabelValues(sess.role).Inc()
	sess.log.Info("logged in")
	return true
}

// registeredWith reports whether the registry holds deviceID with public
// key der.
func (s *Server) registeredWith(deviceID string, der []byte) bool {
	d, err := s.store.Device(deviceID)
	return err == nil && bytes.Equal(d.PublicKey, der)
}

// tryAgain refuses a login the cluster could not place (internal, 1013):
// the client logs in again. It returns false, login's answer.
func (s *Server) tryAgain(sess *session, why string, m protocol.Message) bool {
	s.health.refused(refusedInternal)
	sess.sendError(protocol.ErrCodeInternal, why, m)
	sess.closeWith(websocket.StatusTryAgainLater, "try again")
	return false
}

// checkParent verifies a parent's token against the stored SHA-256 in
// constant time, and does the same work for an unknown parent so that the
// answer's timing does not say which parent IDs exist. pending: the token
// is right for a pairing its terminal has not yet confirmed (not ok yet).
func (s *Server) checkParent(parentID, token string) (deviceID string, ok, pending bool) {
	sum := sha256.Sum256([]byte(token))
	p, err := s.store.Parent(parentID)
	want := p.TokenHash
	if err != nil {
		want = make([]byte, sha256.Size)
	}
	match := subtle.ConstantTimeCompare(sum[:], want) == 1
	if err == nil && match {
		return p.DeviceID, true, false
	}
	if err != nil && errors.Is(err, ErrNotFound) {
		dev, pend, perr := s.store.PendingParent(parentID)
		if perr == nil && subtle.ConstantTimeCompare(sum[:], pend.TokenHash) == 1 {
			return dev, false, true
		}
		if errors.Is(perr, ErrNotFound) {
			// Pending when Parent read it, committed by the time
			// PendingParent did: the terminal completed the pairing
			// between the two reads (on NATS, round trips apart). Read
			// once more, or the page of a pairing that has just been
			// made is refused and drops its credential
			// (TestParentLoginWhilePairingCommits).
			if p, err := s.store.Parent(parentID); err == nil && subtle.ConstantTimeCompare(sum[:], p.TokenHash) == 1 {
				return p.DeviceID, true, false
			}
		}
	}
	return "", false, false
}

// readLoop decodes each message and hands it to the hub. Bad messages get
// bad_message and change nothing; too many close the socket.
func (s *Server) readLoop(sess *session) {
	in := &socketInput{lim: newSocketLimits(&s.cfg.Limits)}
	for {
		data, text, err := sess.read()
		if err != nil {
			if st := websocket.CloseStatus(err); st == -1 && sess.ctx.Err() == nil {
				sess.log.Debug("read ended", "err", err)
			}
			return
		}
		if !s.take(sess, in, data, text) {
			return
		}
	}
}

// socketInput is what readLoop keeps between a socket's messages.
type socketInput struct {
	bad int
	lim *socketLimits
}

// take decodes, checks and handles one message; false closes the socket.
// It is apart from readLoop so that the frame an idle socket's goroutine
// waits in stays small: a decoded message is large, and the stack a socket
// waits with is the stack it keeps (BenchmarkIdleTerminals).
//
//go:noinline
func (s *Server) take(sess *session, in *socketInput, data []byte, text bool) bool {
	var m protocol.Message
	var err error
	if !text {
		err = errors.New("rendezvous: binary messages are not part of the protocol")
	} else {
		m, err = protocol.Decode(data)
	}
	if err == nil {
		err = checkClientMessage(m)
	}
	if err != nil {
		in.bad++
		sess.sendError(protocol.ErrCodeBadMessage, clip(err.Error(), 512), protocol.Message{Type: refType(m)})
		if in.bad >= maxBadMessages {
			sess.log.Info("too many bad messages, closing")
			sess.closeWith(websocket.StatusPolicyViolation, "too many bad messages")
			return false
		}
		return true
	}
	if !in.lim.allow(m.Type, s.now()) {
		return !s.rateLimited(sess, in.lim, m)
	}
	// A pairing page asking for a terminal on another node is served by
	// that node's hub from here on (cluster.go).
	if m.Type == protocol.TypePairRequest && sess.relay == nil && s.cluster != nil {
		if home := s.homeElsewhere(sess, m.DeviceID); home != "" {
			if _, err := s.openRelay(sess, home, m.DeviceID); err != nil {
				sess.sendError(protocol.ErrCodeInternal, "the terminal's server did not answer; try again", m)
				return true
			}
		}
	}
	if r := sess.relay; r != nil {
		if err := s.forward(sess, r, m, data); err != nil {
			sess.log.Warn("cluster: could not pass a message on to the terminal's node", "home", r.home, "err", err)
			sess.closeWith(CloseMoved, "node unreachable")
			return false
		}
		return true
	}
	s.hub.handle(sess, m)
	return true
}

// forward passes a relayed socket's message on to its home. Every one but
// a candidate waits for the home to take it: a message sent to a home that
// died was lost without a word until the node was declared gone (4–5 s) —
// a pairing page's confirm, a parent's accept of the child's ring (the
// parent saw the call open, the child's ring went on). Now the socket is
// closed (4004) at once, and the client comes back through a live node
// (TestAcceptToDeadNode). Candidates are many, and ICE gets over a lost
// one.
func (s *Server) forward(sess *session, r *relayRoute, m protocol.Message, data []byte) error {
	if m.Type == protocol.TypeCandidate {
		return s.cluster.Forward(r.home, r.sid, data)
	}
	ctx, cancel := context.WithTimeout(sess.ctx, forwardAckWait)
	defer cancel()
	return s.cluster.ForwardAcked(ctx, r.home, r.sid, data)
}

// forwardAckWait bounds ForwardAcked: the home answers as the message
// arrives, before it handles it.
const forwardAckWait = 5 * time.Second

func refType(m protocol.Message) string {
	if wordOK(m.Type) {
		return m.Type
	}
	return ""
}

// checkClientMessage rejects fields that only the server may set.
func checkClientMessage(m protocol.Message) error {
	switch {
	case m.ICEServers != nil || m.ICETransportPolicy != "":
		return fmt.Errorf("rendezvous: %s: ice_servers and ice_transport_policy are set by the server", m.Type)
	case m.Type == protocol.TypePairRequest && m.PairID != "":
		return errors.New("rendezvous: pair_request: pair_id is set by the server")
	case m.Type == protocol.TypeCallLog && m.Calls != nil:
		return errors.New("rendezvous: call_log: calls are set by the server")
	case m.Type == protocol.TypeNotifyStatus && (m.VAPIDKey != "" || m.Subscribed != nil || m.PhoneHint != "" || m.SMS != nil || m.Voice != nil):
		return errors.New("rendezvous: notify_status: its fields are set by the server")
	case m.Type == protocol.TypeHangup && !clientHangupReasons[m.Reason]:
		return fmt.Errorf("rendezvous: hangup: reason %q is not one a client may send", m.Reason)
	}
	return nil
}

var clientHangupReasons = map[string]bool{
	protocol.ReasonCancel: true, protocol.ReasonDecline: true, protocol.ReasonHangup: true,
	protocol.ReasonNoAnswer: true, protocol.ReasonFailed: true, protocol.ReasonBusy: true,
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
