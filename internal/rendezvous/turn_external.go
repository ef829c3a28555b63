package rendezvous

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tuanju/tuanju/internal/dnsname"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// An external TURN cluster (turn.urls) takes the embedded relay's place
// when one process's relay is not enough: coturn with use-auth-secret and
// the same shared secret checks the TURN REST credentials iceServers hands
// out exactly as turnAuthHandler does (docs/coturn.md,
// TestCoturnRelaysWithHandedOutCredentials). The cluster then owns the peer
// policy and the quotas; this server only mints credentials.

// externalTURNURLs are the configured URLs with the transport each one's
// credential is named after, as the embedded relay's are.
func externalTURNURLs(urls []string) []turnURL {
	out := make([]turnURL, 0, len(urls))
	for _, u := range urls {
		transport, _ := parseTURNURL(u) // Validate checked them
		out = append(out, turnURL{url: u, transport: transport})
	}
	return out
}

// parseTURNURL checks one turn.urls entry, in the RFC 7065 form browsers
// take: turn:host:port?transport=udp|tcp or turns:host:port?transport=tcp.
// The port and the transport must be spelled out, so what a phone is told
// is what the cluster's configuration says, not a default. It returns the
// transport the URL's credential is named for: udp, tcp or tls.
func parseTURNURL(s string) (transport string, err error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || (scheme != "turn" && scheme != "turns") {
		return "", fmt.Errorf("%q: want a turn: or turns: URL", s)
	}
	if strings.HasPrefix(rest, "//") {
		return "", fmt.Errorf("%q: no // after %s: (RFC 7065: %s:host:port?transport=...)", s, scheme, scheme)
	}
	if len(s) > 256 {
		return "", fmt.Errorf("%q: longer than the 256 characters a client takes", s)
	}
	hostport, query, _ := strings.Cut(rest, "?")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("%q: want host:port after %s: (%v)", s, scheme, err)
	}
	if err := checkTURNHost(host); err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("%q: port %q is not between 1 and 65535", s, port)
	}
	switch query {
	case "transport=udp":
		transport = "udp"
	case "transport=tcp":
		transport = "tcp"
	default:
		return "", fmt.Errorf("%q: want ?transport=udp or ?transport=tcp at the end", s)
	}
	if scheme == "turns" {
		if transport == "udp" {
			return "", fmt.Errorf("%q: turns: is TURN over TLS, which runs over TCP (browsers do not speak TURN over DTLS): want ?transport=tcp", s)
		}
		transport = "tls"
	}
	return transport, nil
}

// checkTURNHost accepts an IP address a phone can reach or a DNS name.
func checkTURNHost(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() || a.Zone() != "" || a.IsMulticast() {
			return fmt.Errorf("host %s is not an address a client can reach", host)
		}
		return nil
	}
	if len(host) > 253 || dnsname.CheckLabels(host) != nil {
		return fmt.Errorf("host %q is not a DNS name or an IP address", host)
	}
	for _, label := range strings.Split(host, ".") {
		if strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("host %q is not a DNS name or an IP address", host)
		}
	}
	return nil
}

// validateExternal checks turn.urls and what goes with them: the shared
// secret (never generated: the cluster must be given the same one), and no
// embedded relay settings, which would otherwise be silently ignored.
func (t TURNConfig) validateExternal(bad func(string, ...any) error) error {
	for name, a := range map[string]string{"turn.listen": t.Listen, "turn.tcp_listen": t.TCPListen, "turn.tls_listen": t.TLSListen} {
		if a != "" {
			return bad("turn.urls points clients at an external TURN cluster, so the embedded relay does not start: set %s empty (listen = \"\" under [turn]: the default is 127.0.0.1:3478), and likewise tcp_listen and tls_listen", name)
		}
	}
	if len(t.AllowPeers) > 0 {
		return bad("turn.allow_peers is the embedded relay's peer policy; with turn.urls the TURN cluster's own (coturn: denied-peer-ip, docs/coturn.md) applies: leave allow_peers out")
	}
	if t.MaxAllocations != 0 {
		return bad("turn.max_allocations is the embedded relay's quota; with turn.urls the TURN cluster's own (coturn: user-quota, docs/coturn.md) applies: leave max_allocations out")
	}
	if len(t.URLs) > protocol.MaxICEServers {
		return bad("turn.urls has %d entries; clients take at most %d", len(t.URLs), protocol.MaxICEServers)
	}
	for i, u := range t.URLs {
		if _, err := parseTURNURL(u); err != nil {
			return bad("turn.urls: %v", err)
		}
		if slices.Contains(t.URLs[:i], u) {
			return bad("turn.urls lists %q twice", u)
		}
	}
	if len(t.Secret) < 16 {
		return bad("turn.urls needs turn.secret: the TURN cluster's static-auth-secret, at least 16 characters (it is not generated when the relay is external)")
	}
	if t.CredentialTTL < time.Minute || t.CredentialTTL > 24*time.Hour {
		return bad("turn.credential_ttl %v must be between 1m and 24h", t.CredentialTTL)
	}
	return nil
}
