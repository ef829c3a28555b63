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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/turn/v4"
	"github.com/tuanju/tuanju/internal/atomicfile"
	"github.com/tuanju/tuanju/internal/logging"
	"github.com/tuanju/tuanju/internal/protocol"
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
func turnAuthHandler(secret string, maxTTL time.Duration, now func() time.Time, log *slog.Logger) turn.AuthHandler {
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
		if exp < t.Unix() {
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
		"::ffff:0:0/96",   // IPv4-mapped (checked unmapped anyway)
		"64:ff9b::/96",    // NAT64 could reach private IPv4
		"64:ff9b:1::/48",  // local NAT64
		"100::/64",        // discard
		"2001:db8::/32",   // documentation
		"fc00::/7",        // unique local
		"fe80::/10",       // link-local
		"ff00::/8",        // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// peerAllowed is the relay's permission policy. With an allow list, exactly
// those networks are allowed; without, every public unicast address is and
// nothing in deniedPeers is.
func peerAllowed(allow []netip.Prefix, ip net.IP) bool {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	if allow != nil {
		for _, p := range allow {
			if p.Contains(addr) {
				return true
			}
		}
		return false
	}
	if !addr.IsGlobalUnicast() {
		return false
	}
	for _, p := range deniedPeers {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

func permissionHandler(allow []netip.Prefix, log *slog.Logger) turn.PermissionHandler {
	return func(client net.Addr, peer net.IP) bool {
		if peerAllowed(allow, peer) {
			return true
		}
		log.Info("turn permission refused", "client", client, "peer", peer)
		return false
	}
}

// DefaultMaxAllocations is how many relays one credential — one side of one
// call — may hold at once: one per network a phone uses (Wi-Fi and mobile).
const DefaultMaxAllocations = 2

// allocationQuota counts live allocations per TURN username, so a leaked
// credential cannot be turned into a pile of relays. Two allocation
// requests racing past allow can exceed the quota by one for a moment.
type allocationQuota struct {
	max  int
	log  *slog.Logger
	mu   sync.Mutex
	live map[string]int
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

func (q *allocationQuota) created(_, _ net.Addr, _, username, _ string, _ net.Addr, _ int) {
	q.mu.Lock()
	q.live[username]++
	q.mu.Unlock()
}

func (q *allocationQuota) deleted(_, _ net.Addr, _, username, _ string) {
	q.mu.Lock()
	if q.live[username]--; q.live[username] <= 0 {
		delete(q.live, username)
	}
	q.mu.Unlock()
}

// turnRelay is the embedded TURN server and what clients need to reach it.
type turnRelay struct {
	server *turn.Server
	addr   net.Addr // the UDP listener's, or nil without one
	urls   []turnURL
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
func startTURN(cfg TURNConfig, secret string, tlsConf *tls.Config, tlsHost string, log *slog.Logger) (_ *turnRelay, err error) {
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
	relays := &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP(cfg.PublicIP), Address: relayHost}
	perm := permissionHandler(allow, log)
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
	quota := &allocationQuota{max: cfg.MaxAllocations, live: map[string]int{}, log: log}
	if quota.max <= 0 {
		quota.max = DefaultMaxAllocations
	}
	relay.server, err = turn.NewServer(turn.ServerConfig{
		Realm:             cfg.Realm,
		AuthHandler:       turnAuthHandler(secret, cfg.CredentialTTL, time.Now, log),
		QuotaHandler:      quota.allow,
		EventHandler:      turn.EventHandler{OnAllocationCreated: quota.created, OnAllocationDeleted: quota.deleted},
		LoggerFactory:     logging.Pion(log),
		PacketConnConfigs: packetConns,
		ListenerConfigs:   listeners,
	})
	if err != nil {
		return nil, fmt.Errorf("rendezvous: start turn: %w", err)
	}
	policy := "production (public unicast only)"
	if allow != nil {
		policy = strings.Join(cfg.AllowPeers, ",")
	}
	for _, u := range relay.urls {
		log.Info("turn relay listening", "transport", u.transport, "url", u.url, "peers", policy)
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
// transport the relay listens on.
func (s *Server) iceServers(side string) []protocol.ICEServer {
	if s.turn == nil {
		return nil
	}
	exp := s.now().Add(s.cfg.TURN.CredentialTTL)
	out := make([]protocol.ICEServer, 0, len(s.turn.urls))
	for _, u := range s.turn.urls {
		user, cred := TURNCredentials(s.turnSecret, side+"/"+u.transport, exp)
		out = append(out, protocol.ICEServer{URLs: []string{u.url}, Username: user, Credential: cred})
	}
	return out
}
