package rendezvous

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// The permission policy is tested as a function: these addresses must never
// receive test traffic.
func TestPeerPolicy(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		ip    string
		allow []netip.Prefix
		want  bool
	}{
		{"10.0.0.1", nil, false},
		{"172.16.5.4", nil, false},
		{"192.168.1.1", nil, false},
		{"100.64.0.1", nil, false},
		{"169.254.1.1", nil, false},
		{"127.0.0.1", nil, false},
		{"0.0.0.0", nil, false},
		{"224.0.0.1", nil, false},
		{"255.255.255.255", nil, false},
		{"::1", nil, false},
		{"::", nil, false},
		{"fe80::1", nil, false},
		{"fd00::1", nil, false},
		{"ff02::1", nil, false},
		{"::ffff:10.0.0.1", nil, false},
		{"::ffff:127.0.0.1", nil, false},
		{"::10.0.0.1", nil, false},          // IPv4-compatible
		{"2002:a00:1::1", nil, false},       // 6to4 of 10.0.0.1
		{"2001:0:4136:e378::1", nil, false}, // Teredo
		{"2001:0:ffff:ffff::1", nil, false}, // Teredo
		{"2001:1::1", nil, true},            // next to Teredo, public
		{"8.8.8.8", nil, true},
		{"2001:4860:4860::8888", nil, true},
		{"127.0.0.1", loopback, true},
		{"::ffff:127.0.0.1", loopback, true},
		{"8.8.8.8", loopback, false}, // an allow list is exhaustive
		{"10.0.0.1", loopback, false},
	}
	for _, tc := range tests {
		got := permissionHandler(peerPolicy{allow: tc.allow, relay: netip.MustParseAddr("192.0.2.10")}, discardLog())(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, net.ParseIP(tc.ip))
		if got != tc.want {
			t.Errorf("peer %s with allow=%v: allowed=%v, want %v", tc.ip, tc.allow, got, tc.want)
		}
	}
}

func TestTURNAuthHandler(t *testing.T) {
	const secret = "0123456789abcdef0123"
	now := time.Unix(1_800_000_000, 0)
	src := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	other := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}
	quota := &allocationQuota{max: 2, live: map[string]int{}, holders: map[string]int{}, log: discardLog()}
	auth := turnAuthHandler(secret, 10*time.Minute, func() time.Time { return now }, quota.holds, discardLog())
	good, _ := TURNCredentials(secret, "call", now.Add(10*time.Minute))
	expired := mustUser(secret, now.Add(-time.Second))
	// src allocated with the expired credential while it was valid; the
	// relay it holds is kept, from src only.
	quota.created(src, nil, "udp", expired, "tuanju", nil, 0)
	tests := []struct {
		name, user string
		from       net.Addr
		ok         bool
	}{
		{"fresh", good, src, true},
		{"expired", mustUser(secret, now.Add(-2*time.Second)), src, false},
		{"expired, held by this address", expired, src, true},
		{"expired, held by another address", expired, other, false},
		{"too far ahead", mustUser(secret, now.Add(2*time.Hour)), src, false},
		{"no user part", "1800000600", src, false},
		{"not a number", "soon:call", src, false},
		{"empty", "", src, false},
	}
	for _, tc := range tests {
		_, ok := auth(tc.user, "tuanju", tc.from)
		if ok != tc.ok {
			t.Errorf("%s (%q from %v): ok=%v, want %v", tc.name, tc.user, tc.from, ok, tc.ok)
		}
	}
	// Once the allocation is gone, the expired credential is refused there too.
	quota.deleted(src, nil, "udp", expired, "tuanju")
	if _, ok := auth(expired, "tuanju", src); ok {
		t.Error("an expired credential accepted after its allocation was deleted")
	}
}

func mustUser(secret string, exp time.Time) string {
	u, _ := TURNCredentials(secret, "call", exp)
	return u
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		fromTerminal, answered, byCaller bool
		reason, want                     string
	}{
		{true, false, true, "cancel", "missed"},
		{true, false, true, "peer_left", "missed"},
		{true, false, false, "peer_left", "missed"},
		{true, false, false, "decline", "declined"},
		{true, false, false, "busy", "declined"},
		{false, false, true, "cancel", "cancelled"},
		{false, false, true, "no_answer", "missed"}, // the page's 45 s timer: the child was not there
		{false, false, false, "decline", "declined"},
		{false, false, false, "no_answer", "missed"},
		{true, true, true, "hangup", "answered"},
		{false, true, false, "peer_left", "answered"},
		{true, true, false, "failed", "failed"},
		{true, false, true, "failed", "failed"},
	}
	for _, tc := range tests {
		c := &call{fromTerminal: tc.fromTerminal, answered: tc.answered}
		if got := outcome(c, tc.reason, tc.byCaller); got != tc.want {
			t.Errorf("outcome(fromTerminal=%v answered=%v byCaller=%v %s) = %s, want %s",
				tc.fromTerminal, tc.answered, tc.byCaller, tc.reason, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"demo allow list on loopback", func(c *Config) { c.TURN.AllowPeers = []string{"127.0.0.0/8"} }, true},
		{"loopback peers on a public relay", func(c *Config) {
			c.TURN.PublicIP = "203.0.113.7"
			c.TURN.AllowPeers = []string{"127.0.0.0/8"}
		}, false},
		{"bad cidr", func(c *Config) { c.TURN.AllowPeers = []string{"ten"} }, false},
		{"bad policy", func(c *Config) { c.ICETransportPolicy = "some" }, false},
		{"relay without turn", func(c *Config) { c.ICETransportPolicy = "relay"; c.TURN.Listen = "" }, false},
		{"relay over tcp only", func(c *Config) {
			c.ICETransportPolicy = "relay"
			c.TURN.Listen, c.TURN.TCPListen = "", "0.0.0.0:3478"
		}, true},
		{"bad tcp address", func(c *Config) { c.TURN.TCPListen = "3478" }, false},
		{"turns without a certificate", func(c *Config) {
			c.PublicURL = "https://example.org"
			c.TURN.TLSListen = "0.0.0.0:443"
		}, false},
		{"turns without public url", func(c *Config) {
			c.TLSCertFile, c.TLSKeyFile = "cert.pem", "key.pem"
			c.TURN.TLSListen = "0.0.0.0:443"
		}, false},
		{"turns", func(c *Config) {
			c.TLSCertFile, c.TLSKeyFile = "cert.pem", "key.pem"
			c.PublicURL = "https://example.org"
			c.TURN.TLSListen = "0.0.0.0:443"
		}, true},
		{"tcp and tls on one address", func(c *Config) {
			c.TLSCertFile, c.TLSKeyFile = "cert.pem", "key.pem"
			c.PublicURL = "https://example.org"
			c.TURN.TCPListen, c.TURN.TLSListen = "0.0.0.0:443", "0.0.0.0:443"
		}, false},
		{"short secret", func(c *Config) { c.TURN.Secret = "password" }, false},
		{"no data dir", func(c *Config) { c.DataDir = "" }, false},
		{"bad public url", func(c *Config) { c.PublicURL = "example.org" }, false},
		{"zero rate", func(c *Config) { c.PairRequestsPerMinutePerIP = 0 }, false},
		{"no program CA", func(c *Config) { c.DeviceCAFiles = nil }, false},
		{"external cluster", external(nil), true},
		{"external cluster, relay only", external(func(c *Config) { c.ICETransportPolicy = "relay" }), true},
		{"external cluster and the default listen", external(func(c *Config) { c.TURN.Listen = "127.0.0.1:3478" }), false},
		{"external cluster and tcp_listen", external(func(c *Config) { c.TURN.TCPListen = "0.0.0.0:3478" }), false},
		{"external cluster without secret", external(func(c *Config) { c.TURN.Secret = "" }), false},
		{"external cluster, short secret", external(func(c *Config) { c.TURN.Secret = "password" }), false},
		{"external cluster and allow_peers", external(func(c *Config) { c.TURN.AllowPeers = []string{"127.0.0.0/8"} }), false},
		{"external cluster and max_allocations", external(func(c *Config) { c.TURN.MaxAllocations = 3 }), false},
		{"external cluster, long ttl", external(func(c *Config) { c.TURN.CredentialTTL = 48 * time.Hour }), false},
		{"external cluster, 5 urls", external(func(c *Config) {
			for i := range 4 {
				c.TURN.URLs = append(c.TURN.URLs, fmt.Sprintf("turn:turn%d.example.org:3478?transport=udp", i))
			}
		}), false},
		{"external cluster, a url twice", external(func(c *Config) { c.TURN.URLs = append(c.TURN.URLs, c.TURN.URLs[0]) }), false},
		{"external cluster, bad url", external(func(c *Config) { c.TURN.URLs = []string{"stun:turn.example.org:3478"} }), false},
	}
	for _, tc := range tests {
		c := DefaultConfig()
		c.DeviceCAFiles = []string{"program-ca.pem"}
		tc.mod(&c)
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// external is a Config.Validate test case's change for an external TURN
// cluster: its URL and secret, the embedded relay's listener off, then mod.
func external(mod func(*Config)) func(*Config) {
	return func(c *Config) {
		c.TURN.Listen = ""
		c.TURN.URLs = []string{"turn:turn.example.org:3478?transport=udp"}
		c.TURN.Secret = "0123456789abcdef0123"
		if mod != nil {
			mod(c)
		}
	}
}

// TestParseTURNURL: turn.urls entries are RFC 7065 URLs with host, port and
// transport spelled out; each names the transport its credential is for.
func TestParseTURNURL(t *testing.T) {
	tests := []struct {
		url, transport string // transport "" = refused
	}{
		{"turn:turn1.example.org:3478?transport=udp", "udp"},
		{"turn:turn1.example.org:3478?transport=tcp", "tcp"},
		{"turns:turn.example.org:443?transport=tcp", "tls"},
		{"turn:203.0.113.10:3478?transport=udp", "udp"},
		{"turn:[2001:db8::10]:3478?transport=udp", "udp"},
		{"turn:127.0.0.1:3478?transport=udp", "udp"},
		{"turn:TURN-1.Example.org:3478?transport=udp", "udp"},
		{"stun:turn.example.org:3478", ""},
		{"turn://turn.example.org:3478?transport=udp", ""},
		{"https://turn.example.org:3478", ""},
		{"turn.example.org:3478", ""},
		{"turn:turn.example.org?transport=udp", ""},
		{"turn:turn.example.org:3478", ""},
		{"turn:turn.example.org:3478?transport=sctp", ""},
		{"turn:turn.example.org:3478?transport=udp&x=1", ""},
		{"turns:turn.example.org:443?transport=udp", ""},
		{"turn::3478?transport=udp", ""},
		{"turn:0.0.0.0:3478?transport=udp", ""},
		{"turn:[::]:3478?transport=udp", ""},
		{"turn:[fe80::1%eth0]:3478?transport=udp", ""},
		{"turn:turn.example.org:0?transport=udp", ""},
		{"turn:turn.example.org:65536?transport=udp", ""},
		{"turn:turn.example.org:port?transport=udp", ""},
		{"turn:turn_1.example.org:3478?transport=udp", ""},
		{"turn:-turn.example.org:3478?transport=udp", ""},
		{"turn:turn..example.org:3478?transport=udp", ""},
		{"turn:user@turn.example.org:3478?transport=udp", ""},
		{"turn:" + strings.Repeat("a", 63) + "." + strings.Repeat("b", 200) + ".org:3478?transport=udp", ""},
	}
	for _, tc := range tests {
		transport, err := parseTURNURL(tc.url)
		if tc.transport == "" {
			if err == nil {
				t.Errorf("parseTURNURL(%q) = %q, want an error", tc.url, transport)
			} else if !strings.Contains(err.Error(), tc.url) {
				t.Errorf("parseTURNURL(%q): error %q does not name the URL", tc.url, err)
			}
			continue
		}
		if err != nil || transport != tc.transport {
			t.Errorf("parseTURNURL(%q) = %q, %v; want %q", tc.url, transport, err, tc.transport)
		}
	}
}

// TestExternalTURNHandsOutItsURLs: with turn.urls the server starts no
// relay and hands out each URL, in order, with a TURN REST credential of
// its own made from the shared secret and credential_ttl.
func TestExternalTURNHandsOutItsURLs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	ca, err := devcert.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.DeviceCAFiles = []string{caFile}
	external(func(c *Config) {
		c.TURN.URLs = []string{"turn:turn1.example.org:3478?transport=udp", "turn:turn1.example.org:3478?transport=tcp", "turns:turn.example.org:443?transport=tcp"}
		c.TURN.CredentialTTL = 5 * time.Minute
	})(&cfg)
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.turn != nil || s.TURNAddr() != nil {
		t.Fatal("the embedded relay started beside an external cluster")
	}
	now := time.Unix(1_900_000_000, 0)
	s.now = func() time.Time { return now }
	got := s.iceServers("call1/ring")
	if len(got) != 3 {
		t.Fatalf("ice servers = %+v, want one per turn.urls entry", got)
	}
	for i, transport := range []string{"udp", "tcp", "tls"} {
		user, cred := TURNCredentials(cfg.TURN.Secret, "call1/ring/"+transport, now.Add(5*time.Minute))
		if g := got[i]; len(g.URLs) != 1 || g.URLs[0] != cfg.TURN.URLs[i] || g.Username != user || g.Credential != cred {
			t.Errorf("ice server %d = %+v, want %s with %s / %s", i, g, cfg.TURN.URLs[i], user, cred)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "turn-secret")); err == nil {
		t.Error("a turn secret was generated though the cluster's is configured")
	}
}

// TestPeerPolicySelf: the production policy refuses the server's own
// addresses, except the relay address itself (relay to relay, which
// relayGuard narrows to relay ports); an allow list is exhaustive and does
// not care (the demo relays to loopback on its own host).
func TestPeerPolicySelf(t *testing.T) {
	relay, web, iface := netip.MustParseAddr("8.8.4.4"), netip.MustParseAddr("9.9.9.9"), netip.MustParseAddr("2606:4700::1111")
	prod := peerPolicy{self: []netip.Addr{relay, web, iface}, relay: relay}
	demo := peerPolicy{allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, self: prod.self, relay: relay}
	for _, tc := range []struct {
		policy peerPolicy
		ip     string
		want   bool
	}{
		{prod, "9.9.9.9", false},
		{prod, "::ffff:9.9.9.9", false},
		{prod, "2606:4700::1111", false},
		{prod, "8.8.4.4", true},
		{prod, "1.1.1.1", true}, // control: another public address
		{demo, "9.9.9.9", true},
	} {
		if got := tc.policy.allowed(net.ParseIP(tc.ip)); got != tc.want {
			t.Errorf("peer %s (allow %v): allowed=%v, want %v", tc.ip, tc.policy.allow, got, tc.want)
		}
	}
}

// TestSelfAddrs: the listeners' hosts, turn.public_ip and public_url's
// host when it is an address; names and unspecified hosts add nothing.
func TestSelfAddrs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "0.0.0.0:443"
	cfg.PublicURL = "https://[2001:db8::80]/"
	cfg.TURN.Listen, cfg.TURN.TCPListen, cfg.TURN.TLSListen = "192.0.2.1:3478", "[::]:3478", "192.0.2.2:443"
	cfg.TURN.PublicIP = "192.0.2.10"
	got := selfAddrs(cfg)
	for _, want := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.10", "2001:db8::80"} {
		if !slices.Contains(got, netip.MustParseAddr(want)) {
			t.Errorf("selfAddrs = %v, missing %s", got, want)
		}
	}
	for _, a := range got {
		if a.IsUnspecified() {
			t.Errorf("selfAddrs = %v, holds an unspecified address", got)
		}
	}
}

// TestRelayGuard: a relay's datagrams to the server's own address reach
// live relay ports only; anywhere else they go as before.
func TestRelayGuard(t *testing.T) {
	self := netip.MustParseAddr("127.0.0.1")
	g := &relayGuard{
		RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"},
		self:                  []netip.Addr{self}, log: discardLog(), ports: map[uint16]int{},
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	a, aAddr, err := g.AllocatePacketConn("udp4", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, bAddr, err := g.AllocatePacketConn("udp4", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Not a relay: a plain socket on the server's own address.
	service, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()

	if _, err := a.WriteTo([]byte("to the service"), service.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteTo([]byte("relay to relay"), bAddr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := b.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "relay to relay" || portOf(from) != portOf(aAddr) {
		t.Fatalf("relay b read %q from %v (%v), want relay a's datagram", buf[:n], from, err)
	}
	// The service got nothing. Loopback delivers a datagram into the
	// receiver's queue as it is sent, and the service's was sent first, so
	// it would be there by now.
	service.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := service.ReadFrom(buf); err == nil {
		t.Fatalf("the server's own non-relay port received %q through a relay", buf[:n])
	}
	// A closed relay's port is no longer one.
	b.Close()
	if g.mayReach(bAddr) {
		t.Error("a closed relay's port is still reachable")
	}
}
