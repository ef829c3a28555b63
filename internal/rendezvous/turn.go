package rendezvous

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // TURN REST credentials are defined as HMAC-SHA1.
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v4"
	"github.com/tuanju/tuanju/internal/atomicfile"
	"github.com/tuanju/tuanju/internal/logging"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// TURNCredentials returns TURN REST credentials (draft-uberti-behave-turn-rest,
// as coturn's use-auth-secret understands them): username
// "<unix expiry>:<user>", credential base64(HMAC-SHA1(secret, username)).
func TURNCredentials(secret, user string, expiry time.Time) (username, credential string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// turnAuthHandler accepts only unexpired credentials made by TURNCredentials
// with our secret. It also refuses expiries further out than maxTTL, so a
// credential cannot outlive the policy that issued it.
//
// One exception keeps long calls alive: every refresh, permission and
// channel binding of an allocation is authenticated again, so a call
// relayed longer than the credential's lifetime (10 minutes by default)
// would lose its relay minutes later. An expired credential is therefore
// still accepted from the client address that holds a live allocation made
// with it (holds, from allocationQuota); it can keep that relay, and make
// no other anywhere else (TestTURNAuthHandler).
func turnAuthHandler(secret string, maxTTL time.Duration, now func() time.Time, holds func(username string, src net.Addr) bool, log *slog.Logger) turn.AuthHandler {
	return func(username, realm string, src net.Addr) ([]byte, bool) {
		ts, user, ok := strings.Cut(username, ":")
		if !ok || user == "" {
			log.Debug("turn auth refused: malformed username", "src", src)
			return nil, false
		}
		exp, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			log.Debug("turn auth refused: malformed expiry", "src", src)
			return nil, false
		}
		t := now()
		if exp < t.Unix() && (holds == nil || !holds(username, src)) {
			log.Debug("turn auth refused: credential expired", "src", src, "user", user)
			return nil, false
		}
		if exp > t.Add(maxTTL+time.Minute).Unix() {
			log.Debug("turn auth refused: expiry too far ahead", "src", src, "user", user)
			return nil, false
		}
		_, cred := TURNCredentials(secret, user, time.Unix(exp, 0))
		return turn.GenerateAuthKey(username, realm, cred), true
	}
}

// deniedPeers are the networks the production policy never relays to: the
// server's own host and LANs, the carrier's CGNAT space, and addresses that
// are not unicast destinations at all.
var deniedPeers = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network", unspecified
		"10.0.0.0/8",      // RFC 1918
		"100.64.0.0/10",   // CGNAT, RFC 6598
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local
		"172.16.0.0/12",   // RFC 1918
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // TEST-NET-1
		"192.168.0.0/16",  // RFC 1918
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // TEST-NET-2
		"203.0.113.0/24",  // TEST-NET-3
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, broadcast
		"::/128",          // unspecified
		"::1/128",         // loopback
		"::/96",           // IPv4-compatible (deprecated): could carry a private IPv4
		"::ffff:0:0/96",   // IPv4-mapped (checked unmapped anyway)
		"64:ff9b::/96",    // NAT64 could reach private IPv4
		"64:ff9b:1::/48",  // local NAT64
		"100::/64",        // discard
		"2001::/32",       // Teredo: tunnels to an IPv4 address the relay cannot see
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4: embeds an IPv4 address, private ones included
		"fc00::/7",        // unique local
		"fe80::/10",       // link-local
		"ff00::/8",        // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// peerPolicy is the relay's permission policy. With an allow list, exactly
// those networks are allowed. Without (production), every public unicast
// address is, and nothing in deniedPeers nor the server's own addresses
// (selfAddrs), which would let a relay reach services on this host that are
// open to it alone. The one exception is the relay address itself: two
// phones that both relay (ice_transport_policy "relay") talk from relay to
// relay through it; relayGuard lets datagrams to it reach relay ports only.
type peerPolicy struct {
	allow []netip.Prefix
	self  []netip.Addr
	relay netip.Addr // turn.public_ip
}

func (p peerPolicy) allowed(ip net.IP) bool {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	if p.allow != nil {
		for _, n := range p.allow {
			if n.Contains(addr) {
				return true
			}
		}
		return false
	}
	if !addr.IsGlobalUnicast() {
		return false
	}
	for _, n := range deniedPeers {
		if n.Contains(addr) {
			return false
		}
	}
	return addr == p.relay || !slices.Contains(p.self, addr)
}

func permissionHandler(policy peerPolicy, log *slog.Logger) turn.PermissionHandler {
	return func(client net.Addr, peer net.IP) bool {
		if policy.allowed(peer) {
			return true
		}
		log.Info("turn permission refused", "client", client, "peer", peer)
		return false
	}
}

// selfAddrs are the server's own addresses, which the production policy
// never relays to: the HTTP and TURN listeners' hosts, turn.public_ip,
// public_url's host when it is an IP address, and those of the host's
// interfaces.
func selfAddrs(cfg Config) []netip.Addr {
	var out []netip.Addr
	add := func(host string) {
		if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && !a.IsUnspecified() {
			if a = a.Unmap().WithZone(""); !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	for _, l := range []string{cfg.Listen, cfg.TURN.Listen, cfg.TURN.TCPListen, cfg.TURN.TLSListen} {
		if host, _, err := net.SplitHostPort(l); err == nil {
			add(host)
		}
	}
	add(cfg.TURN.PublicIP)
	if u, err := url.Parse(cfg.PublicURL); err == nil {
		add(u.Hostname())
	}
	if ifaddrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range ifaddrs {
			if n, ok := a.(*net.IPNet); ok {
				add(n.IP.String())
			}
		}
	}
	return out
}

// relayGuard hands out relays whose datagrams to the server's own
// addresses go only to a relay port that is live right now: the relay to
// relay path peerPolicy allows, and nothing else on this host. TURN
// permissions are per IP address, not per port, so this is the only place
// the port can be checked.
type relayGuard struct {
	turn.RelayAddressGenerator
	self []netip.Addr
	log  *slog.Logger

	mu    sync.Mutex
	ports map[uint16]int // live relay ports
}

func (g *relayGuard) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	pc, addr, err := g.RelayAddressGenerator.AllocatePacketConn(network, port)
	if err != nil {
		return nil, nil, err
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("rendezvous: relay address %s: %w", addr, err)
	}
	g.mu.Lock()
	g.ports[ap.Port()]++
	g.mu.Unlock()
	return &guardedConn{PacketConn: pc, g: g, port: ap.Port()}, addr, nil
}

// mayReach reports whether a relay may send to dst.
func (g *relayGuard) mayReach(dst net.Addr) bool {
	ap, err := netip.ParseAddrPort(dst.String())
	if err != nil {
		return false
	}
	if !slices.Contains(g.self, ap.Addr().Unmap().WithZone("")) {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ports[ap.Port()] > 0
}

type guardedConn struct {
	net.PacketConn
	g      *relayGuard
	port   uint16
	closed sync.Once
}

// WriteTo drops a datagram to a port of this host that is not a relay, as
// a filtering network would: silently.
func (c *guardedConn) WriteTo(b []byte, dst net.Addr) (int, error) {
	if !c.g.mayReach(dst) {
		c.g.log.Debug("turn datagram to the server itself dropped", "dst", dst)
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, dst)
}

func (c *guardedConn) Close() error {
	c.closed.Do(func() {
		c.g.mu.Lock()
		if c.g.ports[c.port]--; c.g.ports[c.port] <= 0 {
			delete(c.g.ports, c.port)
		}
		c.g.mu.Unlock()
	})
	return c.PacketConn.Close()
}

// DefaultMaxAllocations is how many relays one credential — one side of one
// call — may hold at once: one per network a phone uses (Wi-Fi and mobile).
const DefaultMaxAllocations = 2

// allocationQuota counts live allocations per TURN username, so a leaked
// credential cannot be turned into a pile of relays. Two allocation
// requests racing past allow can exceed the quota by one for a moment. It
// also knows which client address holds each (holds), so the relay of a
// call that outlives its credential is kept (turnAuthHandler).
type allocationQuota struct {
	max     int
	log     *slog.Logger
	mu      sync.Mutex
	live    map[string]int
	holders map[string]int // username and client address → live allocations
	// total and made count live allocations and those ever made
	// (tuanju_turn_allocations, health_metrics.go).
	total atomic.Int64
	made  atomic.Uint64
}

func holderKey(username string, src net.Addr) string {
	return username + " " + src.Network() + ":" + src.String()
}

// holds reports whether src holds a live allocation made with username.
func (q *allocationQuota) holds(username string, src net.Addr) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.holders[holderKey(username, src)] > 0
}

func (q *allocationQuota) allow(username, _ string, src net.Addr) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.live[username] >= q.max {
		q.log.Info("turn allocation refused: quota reached", "src", src, "max", q.max)
		return false
	}
	return true
}

func (q *allocationQuota) created(src, _ net.Addr, _, username, _ string, _ net.Addr, _ int) {
	q.mu.Lock()
	q.live[username]++
	q.holders[holderKey(username, src)]++
	q.mu.Unlock()
	q.total.Add(1)
	q.made.Add(1)
}

func (q *allocationQuota) deleted(src, _ net.Addr, _, username, _ string) {
	q.mu.Lock()
	q.total.Add(-1)
	if q.live[username]--; q.live[username] <= 0 {
		delete(q.live, username)
	}
	k := holderKey(username, src)
	if q.holders[k]--; q.holders[k] <= 0 {
		delete(q.holders, k)
	}
	q.mu.Unlock()
}

// turnRelay is the embedded TURN server and what clients need to reach it.
type turnRelay struct {
	server *turn.Server
	addr   net.Addr // the UDP listener's, or nil without one
	urls   []turnURL
	quota  *allocationQuota
}

// turnURL is one transport clients can reach the relay by. Each is handed
// out with a credential of its own, so that a phone trying every transport
// still holds at most MaxAllocations relays per credential.
type turnURL struct {
	url, transport string
}

// startTURN listens on every transport cfg names: UDP (cheapest, what
// nearly every call uses), TCP, and TLS for a phone on a network that lets
// only TCP or only port 443 out (factory and dormitory Wi-Fi often does).
// The relay itself is always UDP. tlsConf and tlsHost (the name on the
// server's certificate) are needed only for cfg.TLSListen.
func startTURN(cfg TURNConfig, self []netip.Addr, secret string, tlsConf *tls.Config, tlsHost string, log *slog.Logger) (_ *turnRelay, err error) {
	allow, err := parsePrefixes(cfg.AllowPeers)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: turn allow list: %w", err)
	}
	var closers []io.Closer
	defer func() {
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
		}
	}()
	// Relays bind to the first listener's host (all interfaces if none).
	relayHost := ""
	for _, a := range []string{cfg.Listen, cfg.TCPListen, cfg.TLSListen} {
		if a != "" {
			if relayHost, _, err = net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("rendezvous: turn listen %q: %w", a, err)
			}
			break
		}
	}
	if relayHost == "" {
		relayHost = "0.0.0.0"
	}
	var relays turn.RelayAddressGenerator = &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP(cfg.PublicIP), Address: relayHost}
	policy := peerPolicy{allow: allow}
	if allow == nil {
		policy.self = self
		policy.relay, _ = netip.ParseAddr(cfg.PublicIP) // Validate checked it
		policy.relay = policy.relay.Unmap()
		relays = &relayGuard{RelayAddressGenerator: relays, self: self, log: log, ports: map[uint16]int{}}
	}
	perm := permissionHandler(policy, log)
	relay := &turnRelay{}
	var packetConns []turn.PacketConnConfig
	var listeners []turn.ListenerConfig
	if cfg.Listen != "" {
		pc, err := net.ListenPacket("udp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("rendezvous: turn listen udp %s: %w", cfg.Listen, err)
		}
		closers = append(closers, pc)
		packetConns = append(packetConns, turn.PacketConnConfig{PacketConn: pc, RelayAddressGenerator: relays, PermissionHandler: perm})
		relay.addr = pc.LocalAddr()
		relay.urls = append(relay.urls, turnURL{"turn:" + net.JoinHostPort(cfg.PublicIP, portOf(pc.LocalAddr())) + "?transport=udp", "udp"})
	}
	// The stream transports; Validate made sure TLS has its certificate
	// and the name clients check it against.
	for _, st := range []struct{ addr, transport, scheme, host string }{
		{cfg.TCPListen, "tcp", "turn:", cfg.PublicIP},
		{cfg.TLSListen, "tls", "turns:", tlsHost},
	} {
		if st.addr == "" {
			continue
		}
		l, err := net.Listen("tcp", st.addr)
		if err != nil {
			return nil, fmt.Errorf("rendezvous: turn listen %s %s: %w", st.transport, st.addr, err)
		}
		closers = append(closers, l)
		url := st.scheme + net.JoinHostPort(st.host, portOf(l.Addr())) + "?transport=tcp"
		if st.transport == "tls" {
			l = tls.NewListener(l, tlsConf)
		}
		listeners = append(listeners, turn.ListenerConfig{Listener: l, RelayAddressGenerator: relays, PermissionHandler: perm})
		relay.urls = append(relay.urls, turnURL{url, st.transport})
	}
	quota := &allocationQuota{max: cfg.MaxAllocations, live: map[string]int{}, holders: map[string]int{}, log: log}
	if quota.max <= 0 {
		quota.max = DefaultMaxAllocations
	}
	relay.quota = quota
	relay.server, err = turn.NewServer(turn.ServerConfig{
		Realm:             cfg.Realm,
		AuthHandler:       turnAuthHandler(secret, cfg.CredentialTTL, time.Now, quota.holds, log),
		QuotaHandler:      quota.allow,
		EventHandler:      turn.EventHandler{OnAllocationCreated: quota.created, OnAllocationDeleted: quota.deleted},
		LoggerFactory:     logging.Pion(log),
		PacketConnConfigs: packetConns,
		ListenerConfigs:   listeners,
	})
	if err != nil {
		return nil, fmt.Errorf("rendezvous: start turn: %w", err)
	}
	peers := "production (public unicast only, not this server)"
	if allow != nil {
		peers = strings.Join(cfg.AllowPeers, ",")
	}
	for _, u := range relay.urls {
		log.Info("turn relay listening", "transport", u.transport, "url", u.url, "peers", peers)
	}
	return relay, nil
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

func (t *turnRelay) Close() error {
	if err := t.server.Close(); err != nil {
		return fmt.Errorf("rendezvous: close turn: %w", err)
	}
	return nil
}

// loadOrCreateSecret returns the TURN secret from DataDir/turn-secret,
// creating it (32 random bytes, mode 0600, written atomically) on first start.
func loadOrCreateSecret(dir string) (string, error) {
	path := filepath.Join(dir, "turn-secret")
	raw, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(raw))
		if len(s) < 16 {
			return "", fmt.Errorf("rendezvous: turn secret in %s is too short", path)
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("rendezvous: read turn secret: %w", err)
	}
	var b [32]byte
	rand.Read(b[:])
	s := base64.RawURLEncoding.EncodeToString(b[:])
	if err := atomicfile.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("rendezvous: write turn secret: %w", err)
	}
	return s, nil
}

// iceServers returns fresh credentials for one side of one call (side
// names it, e.g. "<call>/ring"): one entry, with its own credential, per
// transport the relay listens on, or per turn.urls entry of an external
// cluster.
func (s *Server) iceServers(side string) []protocol.ICEServer {
	if len(s.turnURLs) == 0 {
		return nil
	}
	exp := s.now().Add(s.cfg.TURN.CredentialTTL)
	out := make([]protocol.ICEServer, 0, len(s.turnURLs))
	for _, u := range s.turnURLs {
		user, cred := TURNCredentials(s.turnSecret, side+"/"+u.transport, exp)
		out = append(out, protocol.ICEServer{URLs: []string{u.url}, Username: user, Credential: cred})
	}
	return out
}
