package rendezvous

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"time"
)

// Config is everything the rendezvous server needs. Start from DefaultConfig,
// overlay a file and flags, then call Validate (New calls it too).
type Config struct {
	// Listen is the HTTP address; the server itself does not bind it (cmd does),
	// it is here so one file configures the whole binary.
	Listen string `toml:"listen"`
	// DataDir holds the bbolt file and the generated TURN secret.
	DataDir string `toml:"data_dir"`
	// PublicURL is how phones reach the server (https://tuanju.example.org).
	// Its host is an allowed WebSocket origin.
	PublicURL string `toml:"public_url"`
	// AllowedOrigins are extra WebSocket origin host patterns (path.Match
	// syntax, as in coder/websocket). The request's own host is always allowed.
	AllowedOrigins []string `toml:"allowed_origins"`
	// TrustedProxies are the networks of the reverse proxies in front of
	// the server (CIDR prefixes, e.g. ["10.0.0.0/8"]). Only a connection
	// from one of them has its X-Forwarded-For read, and the client address
	// (for every per-address limit) is the right-most entry that is not a
	// trusted proxy: what a client writes into the header itself is further
	// left and never read. Empty, the default: the header is ignored.
	TrustedProxies []string `toml:"trusted_proxies"`
	// TrustForwardedFor is the old, unconditional switch for
	// X-Forwarded-For, which let any client choose its address for the
	// limits. It is refused with a pointer to TrustedProxies.
	TrustForwardedFor *bool `toml:"trust_forwarded_for"`
	// TLSCertFile and TLSKeyFile (PEM; the certificate file may hold the
	// chain) make the server speak https and wss itself, with no proxy in
	// front. Phones need it: WebCrypto, the camera and the service worker
	// work only on a secure origin. Renewed files are picked up without a
	// restart (internal/certreload).
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`

	// DeviceCAFiles are the program CA certificates (PEM) a terminal's
	// device certificate must chain to (docs/provisioning-keys.md). Several:
	// several subsidy programs, or an old and a new key during rollover.
	// Required: a server that trusted any terminal key would make a device ID
	// worth something again.
	DeviceCAFiles []string `toml:"device_ca_files"`
	// RevokedDevicesFile is the deny list of terminals (revoked.go): device
	// IDs, one per line, refused at login and dropped when added. Changes
	// are picked up every RevocationCheckInterval.
	RevokedDevicesFile      string        `toml:"revoked_devices_file"`
	RevocationCheckInterval time.Duration `toml:"revocation_check_interval"`

	// Fleet is the programme's manifests of the units it shipped (fleet.go):
	// each unit's site and region, and, with require, the only units that
	// may log in.
	Fleet FleetConfig `toml:"fleet"`

	// SecurityContact is where to report a vulnerability (mailto: or
	// https: URIs), published at /.well-known/security.txt (RFC 9116).
	SecurityContact []string `toml:"security_contact"`

	TURN TURNConfig `toml:"turn"`

	// ICETransportPolicy is handed to clients with each call: "all" or "relay".
	ICETransportPolicy string `toml:"ice_transport_policy"`

	// PairRequestsPerMinutePerDevice and ...PerIP bound pairing attempts, so a
	// guessed-secret flood is slow and loud.
	PairRequestsPerMinutePerDevice int `toml:"pair_requests_per_minute_per_device"`
	PairRequestsPerMinutePerIP     int `toml:"pair_requests_per_minute_per_ip"`

	// Timers. The defaults are the protocol's; tests shorten them.
	HelloTimeout   time.Duration `toml:"hello_timeout"`    // challenge → hello, 10 s
	RingTimeout    time.Duration `toml:"ring_timeout"`     // server-side ring limit, 60 s
	PairTimeout    time.Duration `toml:"pair_timeout"`     // pair_request → accept/reject, 90 s
	ResumeGrace    time.Duration `toml:"resume_grace"`     // an answered call waits this long for a side to resume it, 75 s
	PingInterval   time.Duration `toml:"ping_interval"`    // WebSocket pings, 20 s
	PongTimeout    time.Duration `toml:"pong_timeout"`     // drop a client that does not answer, 30 s
	WriteTimeout   time.Duration `toml:"write_timeout"`    // one message to a slow client, 10 s
	SendQueueDepth int           `toml:"send_queue_depth"` // messages queued per socket before it is dropped

	// Limits bound connections, logins and messages (limits.go).
	Limits LimitsConfig `toml:"limits"`

	// NATSURL, when set, keeps the registry on NATS JetStream instead of the
	// bbolt file in DataDir: a comma-separated list of a NATS cluster's
	// servers (nats://host:4222,...), shared by every rendezvous node of a
	// deployment, or "embedded", a NATS server in this process with its
	// store in DataDir/nats (issue 16, internal/rendezvous/natsreg). NATSReplicas is
	// each bucket's replica count when the server creates it (3 on a
	// cluster of three; default 1). NodeName tells this node's open calls
	// from another's in the shared call log (default: the host's name).
	NATSURL      string `toml:"nats_url"`
	NATSReplicas int    `toml:"nats_replicas"`
	NodeName     string `toml:"node_name"`

	// Backup: the registry backs itself up while the server runs (backup.go).
	Backup BackupConfig `toml:"backup"`
	// Push (Web Push, push.go) and Notifier (the programme's SMS and voice
	// webhook, notifier.go) reach a parent whose page is closed.
	Push     PushConfig     `toml:"push"`
	Notifier NotifierConfig `toml:"notifier"`
}

// TURNConfig configures the embedded TURN relay (pion/turn), or instead
// an external TURN cluster (URLs).
type TURNConfig struct {
	// URLs, when set, point clients at an external TURN cluster (coturn
	// with use-auth-secret and Secret as its static-auth-secret,
	// docs/coturn.md) instead of the embedded relay, which then does not
	// start: the listen keys must be empty. Each is handed out, in this
	// order, with a credential of its own, e.g.
	// "turn:turn1.example.org:3478?transport=udp",
	// "turns:turn.example.org:443?transport=tcp".
	URLs []string `toml:"urls"`
	// Listen is the UDP address of the TURN server; TCPListen and TLSListen
	// add TURN over TCP and over TLS (turns:, e.g. on port 443, with the
	// server's own certificate) for phones on networks that block UDP. All
	// three empty disables TURN (and ice_servers are then not handed out).
	Listen    string `toml:"listen"`
	TCPListen string `toml:"tcp_listen"`
	TLSListen string `toml:"tls_listen"`
	// PublicIP is the address clients and relayed peers reach the server at.
	PublicIP string `toml:"public_ip"`
	Realm    string `toml:"realm"`
	// Secret is the TURN REST shared secret. Empty: generated on first start
	// and kept in DataDir/turn-secret (mode 0600). Never a built-in default.
	// Required with URLs: the cluster must be given the same one.
	Secret string `toml:"secret"`
	// CredentialTTL is how long handed-out credentials are valid.
	CredentialTTL time.Duration `toml:"credential_ttl"`
	// AllowPeers, when set, is the exhaustive list of peer networks the relay
	// may send to (for tests and the local demo: 127.0.0.0/8). When empty the
	// production policy applies: only public unicast addresses, never
	// loopback, private, link-local, CGNAT, unspecified or multicast ones, so
	// the relay cannot be used to reach the server's own network.
	AllowPeers []string `toml:"allow_peers"`
	// MaxAllocations caps the relays one credential (one side of one call)
	// holds at once; 0 is DefaultMaxAllocations (2).
	MaxAllocations int `toml:"max_allocations"`
}

// DefaultResumeGrace is how long an answered call waits for a side that
// lost its socket: a phone changing networks, a terminal whose link
// dropped, or both after a server restart (docs/protocol.md, "Resuming a
// call"). The terminal waits as long (call.ResumeGrace).
const DefaultResumeGrace = 75 * time.Second

// DefaultConfig is a safe production baseline: it refuses relaying to any
// non-public address and generates its own TURN secret.
func DefaultConfig() Config {
	return Config{
		Listen:             "127.0.0.1:8080",
		DataDir:            "./rendezvous-data",
		ICETransportPolicy: "all",
		TURN: TURNConfig{
			Listen:        "127.0.0.1:3478",
			PublicIP:      "127.0.0.1",
			Realm:         "tuanju",
			CredentialTTL: 10 * time.Minute,
		},
		Backup:                         BackupConfig{Every: DefaultBackupEvery, Keep: DefaultBackupKeep},
		PairRequestsPerMinutePerDevice: 5,
		PairRequestsPerMinutePerIP:     5,
		HelloTimeout:                   10 * time.Second,
		RevocationCheckInterval:        DefaultRevocationCheck,
		RingTimeout:                    60 * time.Second,
		PairTimeout:                    90 * time.Second,
		ResumeGrace:                    DefaultResumeGrace,
		PingInterval:                   20 * time.Second,
		PongTimeout:                    30 * time.Second,
		WriteTimeout:                   10 * time.Second,
		SendQueueDepth:                 64,
		Limits:                         DefaultLimits(),
		Push:                           defaultPushConfig(),
		Notifier:                       defaultNotifierConfig(),
	}
}

// Validate reports the first bad value, naming it.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("rendezvous: config: %s: %w", fmt.Sprintf(format, a...), ErrBadConfig)
	}
	if c.DataDir == "" {
		return bad("data_dir is empty")
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("public_url %q is not an http(s) URL", c.PublicURL)
		}
	}
	if c.TrustForwardedFor != nil {
		return bad("trust_forwarded_for is gone: it let any client pick its address for the limits; list your reverse proxies' networks in trusted_proxies instead (e.g. [\"127.0.0.1/32\"] for a proxy on this host), or leave both out when clients connect directly")
	}
	if _, err := parseProxies(c.TrustedProxies); err != nil {
		return bad("trusted_proxies: %v", err)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return bad("tls_cert_file and tls_key_file go together: set both or neither")
	}
	if err := checkSecurityContact(c.SecurityContact); err != nil {
		return bad("%v", err)
	}
	if c.ICETransportPolicy != "all" && c.ICETransportPolicy != "relay" {
		return bad("ice_transport_policy %q must be all or relay", c.ICETransportPolicy)
	}
	if c.PairRequestsPerMinutePerDevice < 1 || c.PairRequestsPerMinutePerIP < 1 {
		return bad("pair request rates must be at least 1 a minute")
	}
	for name, d := range map[string]time.Duration{
		"hello_timeout": c.HelloTimeout, "ring_timeout": c.RingTimeout, "pair_timeout": c.PairTimeout,
		"ping_interval": c.PingInterval, "pong_timeout": c.PongTimeout, "write_timeout": c.WriteTimeout,
		"revocation_check_interval": c.RevocationCheckInterval, "resume_grace": c.ResumeGrace,
	} {
		if d <= 0 {
			return bad("%s must be positive", name)
		}
	}
	if c.Limits.PairingLifetime <= c.PairTimeout {
		return bad("limits.pairing_lifetime %v must be longer than pair_timeout %v, or a pairing waiting for the child's press is cut off", c.Limits.PairingLifetime, c.PairTimeout)
	}
	if c.SendQueueDepth < 8 {
		return bad("send_queue_depth %d is below 8", c.SendQueueDepth)
	}
	if err := c.Backup.validate(bad); err != nil {
		return err
	}
	if c.NATSReplicas < 0 || c.NATSReplicas > 5 {
		return bad("nats_replicas %d must be 1 to 5 (JetStream's limit), or 0 for 1", c.NATSReplicas)
	}
	if c.NodeName != "" && !validNodeName(c.NodeName) {
		return bad("node_name %q: letters, digits, '-' and '_' only, at most 64", c.NodeName)
	}
	if err := c.Limits.validate(bad); err != nil {
		return err
	}
	if c.ICETransportPolicy == "relay" && !c.TURN.enabled() && len(c.TURN.URLs) == 0 {
		return bad("ice_transport_policy relay needs the TURN server (turn.listen, or turn.urls for an external one)")
	}
	if c.TURN.TLSListen != "" && (c.TLSCertFile == "" || c.PublicURL == "") {
		return bad("turn.tls_listen needs tls_cert_file (its certificate) and public_url (the name clients check it against)")
	}
	if err := c.TURN.validate(bad); err != nil {
		return err
	}
	if err := c.Push.validate(bad); err != nil {
		return err
	}
	if err := c.Notifier.validate(c.RingTimeout, bad); err != nil {
		return err
	}
	if c.Fleet.Require && len(c.Fleet.KeyFiles) == 0 {
		return bad("fleet.require needs fleet.key_files: the programme's signing key that manifests are checked against")
	}
	if len(c.DeviceCAFiles) == 0 {
		return bad("device_ca_files is empty: name the program CA certificates that sign the terminals' device certificates (docs/provisioning-keys.md)")
	}
	return nil
}

// enabled reports whether the relay listens on any transport.
func (t TURNConfig) enabled() bool {
	return t.Listen != "" || t.TCPListen != "" || t.TLSListen != ""
}

func (t TURNConfig) validate(bad func(string, ...any) error) error {
	if len(t.URLs) > 0 {
		return t.validateExternal(bad)
	}
	if !t.enabled() {
		return nil
	}
	for name, a := range map[string]string{"turn.listen": t.Listen, "turn.tcp_listen": t.TCPListen, "turn.tls_listen": t.TLSListen} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return bad("%s %q: %v", name, a, err)
		}
	}
	if _, port, _ := net.SplitHostPort(t.TCPListen); t.TCPListen != "" && t.TCPListen == t.TLSListen && port != "0" {
		return bad("turn.tcp_listen and turn.tls_listen are the same address")
	}
	pub, err := netip.ParseAddr(t.PublicIP)
	if err != nil {
		return bad("turn.public_ip %q is not an IP address", t.PublicIP)
	}
	if pub.IsUnspecified() {
		return bad("turn.public_ip must not be unspecified")
	}
	if t.Realm == "" {
		return bad("turn.realm is empty")
	}
	if t.Secret != "" && len(t.Secret) < 16 {
		return bad("turn.secret is shorter than 16 characters (leave it empty to generate one)")
	}
	if t.CredentialTTL < time.Minute || t.CredentialTTL > 24*time.Hour {
		return bad("turn.credential_ttl %v must be between 1m and 24h", t.CredentialTTL)
	}
	prefixes, err := parsePrefixes(t.AllowPeers)
	if err != nil {
		return bad("turn.allow_peers: %v", err)
	}
	// Letting a public relay reach the server's own loopback is the classic
	// TURN misconfiguration; loopback peers only make sense when the whole
	// demo runs on one machine.
	if !pub.IsLoopback() {
		for _, p := range prefixes {
			if p.Contains(netip.AddrFrom4([4]byte{127, 0, 0, 1})) || p.Contains(netip.IPv6Loopback()) {
				return bad("turn.allow_peers contains loopback (%s) but turn.public_ip %s is not loopback; loopback peers are for local demos only (set allow_peers empty for production)", p, pub)
			}
		}
	}
	return nil
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// parseProxies parses trusted_proxies. A prefix of length 0 would trust
// every client's header, which is the hole the list exists to close.
func parseProxies(list []string) ([]netip.Prefix, error) {
	out, err := parsePrefixes(list)
	if err != nil {
		return nil, err
	}
	for _, p := range out {
		if p.Bits() == 0 {
			return nil, fmt.Errorf("%s would trust every client's X-Forwarded-For", p)
		}
	}
	return out, nil
}

// validNodeName: a node's name is a token of NATS subjects and key names.
func validNodeName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
