package rendezvoustest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
)

// Server is a rendezvous server on 127.0.0.1 for tests, with TURN on a
// loopback UDP port and loopback peers allowed.
type Server struct {
	*rendezvous.Server
	Config rendezvous.Config
	HTTP   *httptest.Server
	URL    string // http://127.0.0.1:port
	WSURL  string // ws://127.0.0.1:port/ws

	once sync.Once
	logs *logTap
}

// TestConfig is the configuration NewServer starts from: a fresh data
// directory, TURN on 127.0.0.1 with a random secret and 127.0.0.0/8 peers,
// TestCA as the one program CA, and no automatic backups.
func TestConfig(t testing.TB) rendezvous.Config {
	t.Helper()
	var b [24]byte
	rand.Read(b[:])
	cfg := rendezvous.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.TURN.Listen = "127.0.0.1:0"
	cfg.TURN.PublicIP = "127.0.0.1"
	cfg.TURN.Secret = base64.RawURLEncoding.EncodeToString(b[:])
	cfg.TURN.AllowPeers = []string{"127.0.0.0/8"}
	cfg.DeviceCAFiles = []string{TestCAFile(t)}
	cfg.Backup.Every = 0 // a backup at each start is not what most tests test
	if os.Getenv("TUANJU_REGISTRY") == "nats" {
		cfg.NATSURL = natsreg.EmbeddedURL // make test-nats: the same tests on the NATS registry
	}
	return cfg
}

// RequireBolt skips a test that holds only for the bbolt registry when the
// tests run on NATS (TUANJU_REGISTRY=nats), before it starts a server.
func RequireBolt(t testing.TB) {
	t.Helper()
	if os.Getenv("TUANJU_REGISTRY") == "nats" {
		t.Skip("holds for the bbolt registry; these tests run on NATS")
	}
}

// RequireStore skips a test that reaches into the bbolt store itself (its
// fault hooks, its file) when the server runs on another registry
// (TUANJU_REGISTRY=nats).
func (s *Server) RequireStore(t testing.TB) *rendezvous.Store {
	t.Helper()
	st := s.Store()
	if st == nil {
		t.Skip("reaches into the bbolt store; this server's registry is on NATS")
	}
	return st
}

// NewServer starts a server; configure may adjust TestConfig first. The
// server is closed when the test ends (or by Close).
func NewServer(t testing.TB, configure func(*rendezvous.Config)) *Server {
	t.Helper()
	level := slog.LevelInfo
	if _, bench := t.(*testing.B); bench {
		level = slog.LevelWarn // keep benchmark output readable
	}
	return newServer(t, configure, level)
}

// NewQuietServer is NewServer logging only warnings and errors: a load
// test's thousands of logins would fill the test's output (and its
// memory, which such a test measures).
func NewQuietServer(t testing.TB, configure func(*rendezvous.Config)) *Server {
	t.Helper()
	return newServer(t, configure, slog.LevelWarn)
}

func newServer(t testing.TB, configure func(*rendezvous.Config), level slog.Level) *Server {
	t.Helper()
	cfg := TestConfig(t)
	if configure != nil {
		configure(&cfg)
	}
	tap := &logTap{Handler: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}), counts: &logCounts{n: map[string]int{}}}
	srv, err := natsreg.NewRendezvous(cfg, slog.New(tap)) // as cmd/rendezvous makes it
	if err != nil {
		t.Fatalf("start rendezvous server: %v", err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	srv.ConfigureHTTP(hs.Config)
	url := ""
	if tc := srv.TLSConfig(); tc != nil {
		// The server's own TLS (tls_cert_file), as cmd/rendezvous serves
		// it, not httptest's certificate.
		hs.Listener = tls.NewListener(hs.Listener, tc)
		hs.Start()
		url = "https://" + hs.Listener.Addr().String()
		trustServer(t, hs.Listener.Addr().String(), tc)
	} else {
		hs.Start()
		url = hs.URL
	}
	s := &Server{Server: srv, Config: cfg, HTTP: hs, URL: url, WSURL: "ws" + strings.TrimPrefix(url, "http") + "/ws", logs: tap}
	t.Cleanup(func() { s.Close() })
	return s
}

// Close stops the server: sockets, TURN, store, then the HTTP listener.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		err = s.Server.Close()
		s.HTTP.CloseClientConnections()
		s.HTTP.Close()
	})
	return err
}

// Logged is how many records with message msg the server has logged.
func (s *Server) Logged(msg string) int { return s.logs.counts.get(msg) }

// WaitLogged waits until the server has logged message msg at least n
// times: proof that it got as far as that line, where a test would
// otherwise sleep and hope.
func (s *Server) WaitLogged(ctx context.Context, msg string, n int) error {
	for s.Logged(msg) < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("rendezvoustest: waiting for the server to log %q %d times (%d so far): %w", msg, n, s.Logged(msg), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// logTap passes the server's log on and counts its records by message.
type logTap struct {
	slog.Handler
	counts *logCounts
}

type logCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *logCounts) get(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[msg]
}

func (h *logTap) Handle(ctx context.Context, r slog.Record) error {
	h.counts.mu.Lock()
	h.counts.n[r.Message]++
	h.counts.mu.Unlock()
	return h.Handler.Handle(ctx, r)
}

func (h *logTap) WithAttrs(as []slog.Attr) slog.Handler {
	return &logTap{Handler: h.Handler.WithAttrs(as), counts: h.counts}
}

func (h *logTap) WithGroup(name string) slog.Handler {
	return &logTap{Handler: h.Handler.WithGroup(name), counts: h.counts}
}

// Timeout is a generous bound for one step of a test over loopback.
const Timeout = 10 * time.Second

// tlsClients holds, per TLS test server's address, an HTTP client that
// trusts exactly the certificate that server serves, so that Dial and the
// Dial* helpers work against it as they do over plain ws.
var tlsClients sync.Map // host:port → *http.Client

func trustServer(t testing.TB, addr string, tc *tls.Config) {
	t.Helper()
	cert, err := tc.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || len(cert.Certificate) == 0 {
		t.Fatalf("rendezvoustest: the server's certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	tlsClients.Store(addr, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}})
	t.Cleanup(func() { tlsClients.Delete(addr) })
}

// httpClientFor is the client Dial uses for wsURL: nil (the default) unless
// it is a TLS test server's.
func httpClientFor(wsURL string) *http.Client {
	u, err := neturl.Parse(wsURL)
	if err != nil {
		return nil
	}
	if c, ok := tlsClients.Load(u.Host); ok {
		return c.(*http.Client)
	}
	return nil
}
