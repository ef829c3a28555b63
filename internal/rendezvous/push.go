package rendezvous

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"github.com/tuanju/tuanju/internal/atomicfile"
)

// PushConfig configures Web Push (RFC 8030, 8291, 8292): the server wakes a
// parent's phone for the child's ring and for a missed call, through the
// push service of the parent's browser, even when the page is closed
// (docs/notifications.md).
type PushConfig struct {
	// Disabled turns Web Push off: notify_status then has no vapid_key and
	// the page does not subscribe.
	Disabled bool `toml:"disabled"`
	// Subject is the VAPID "sub" claim (RFC 8292 section 2.1): a mailto:
	// or https: URI where a push service's operator can reach this
	// server's. Empty: public_url. Without either, Web Push is off (a
	// push service may refuse an application server it cannot reach).
	Subject string `toml:"subject"`
	// EndpointHosts are the push services the server will post to: host
	// names, "*." matching any subdomain. A subscription naming another
	// host is refused, so a parent's page cannot make the server send
	// requests into its own network. Empty: DefaultPushHosts.
	EndpointHosts []string `toml:"endpoint_hosts"`
	// MissedTTL is how long a push service keeps a missed-call message for
	// a phone that is off or out of reach (RFC 8030 TTL). A ring's TTL is
	// the ring timeout: a late ring is worth nothing.
	MissedTTL time.Duration `toml:"missed_ttl"`
	// QueueSize, Workers, Timeout (one POST) and RetryMin (the first wait
	// before a retry; they grow to 30 s) shape the sending (outbox.go).
	QueueSize int           `toml:"queue_size"`
	Workers   int           `toml:"workers"`
	Timeout   time.Duration `toml:"timeout"`
	RetryMin  time.Duration `toml:"retry_min"`
}

// DefaultPushHosts are the push services of the browsers parents use:
// Chrome and the Android browsers built on it (Google's FCM), Firefox
// (Mozilla's autopush), Safari (Apple) and Edge (Microsoft's WNS).
var DefaultPushHosts = []string{
	"fcm.googleapis.com", "*.googleapis.com",
	"updates.push.services.mozilla.com", "*.push.services.mozilla.com",
	"*.push.apple.com",
	"*.notify.windows.com",
}

// VAPIDKeyFile is where the server keeps its VAPID private key (data_dir).
const VAPIDKeyFile = "vapid-key"

func defaultPushConfig() PushConfig {
	return PushConfig{MissedTTL: 24 * time.Hour, QueueSize: 1024, Workers: 4, Timeout: 10 * time.Second, RetryMin: 2 * time.Second}
}

func (p PushConfig) validate(bad func(string, ...any) error) error {
	if p.Subject != "" {
		u, err := url.Parse(p.Subject)
		if err != nil || (u.Scheme != "mailto" && u.Scheme != "https") || (u.Opaque == "" && u.Host == "") {
			return bad("push.subject %q must be a mailto: or https: URI", p.Subject)
		}
	}
	for _, h := range p.EndpointHosts {
		if h == "" || strings.ContainsAny(h, "/:@ ") || h == "*" || h == "*." {
			return bad("push.endpoint_hosts: %q is not a host name or *.domain", h)
		}
	}
	if p.MissedTTL < time.Minute || p.MissedTTL > 28*24*time.Hour {
		return bad("push.missed_ttl %v must be between 1m and 28 days", p.MissedTTL)
	}
	if p.QueueSize < 1 || p.Workers < 1 || p.Timeout <= 0 || p.RetryMin <= 0 {
		return bad("push: queue_size and workers must be at least 1, timeout and retry_min positive")
	}
	return nil
}

// pushMessage is what a push carries, encrypted for the browser alone
// (RFC 8291): what happened and to which call, nothing more. The service
// worker shows it (static/sw.js).
type pushMessage struct {
	Type   string    `json:"type"` // "ring", "answered" or "missed"
	CallID string    `json:"call_id"`
	At     time.Time `json:"at"` // when the call started
}

// pushJob is one message for one of a parent's subscriptions: each its
// own, so a slow push service of one browser does not hold back another's.
type pushJob struct {
	parentID string
	sub      PushSubscription
	msg      pushMessage
	ttl      time.Duration
}

// pusher sends Web Push messages for the hub.
type pusher struct {
	cfg      PushConfig
	store    Registry
	log      *slog.Logger
	subject  string // as webpush-go wants it: an https URL, or a mailto address without "mailto:"
	priv     string // base64url of the VAPID private scalar
	pub      string // base64url of the uncompressed public point (notify_status vapid_key)
	hosts    []string
	client   webpush.HTTPClient
	out      *outbox[pushJob]
	removed  *atomic.Uint64
	ringTTL  time.Duration
	recordSz uint32
	now      func() time.Time
}

// newPusher loads (or makes) the VAPID key and starts the sending. It
// returns nil when Web Push is off.
func newPusher(cfg Config, store Registry, m *metrics, now func() time.Time, log *slog.Logger) (*pusher, error) {
	p := cfg.Push
	subject := p.Subject
	if subject == "" {
		subject = cfg.PublicURL
	}
	if p.Disabled || subject == "" {
		if !p.Disabled {
			log.Warn("Web Push is off: set push.subject (or public_url) so push services know whom to reach")
		}
		return nil, nil
	}
	priv, pub, err := loadOrCreateVAPIDKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	hosts := p.EndpointHosts
	if len(hosts) == 0 {
		hosts = DefaultPushHosts
	}
	ps := &pusher{
		cfg: p, store: store, log: log, priv: priv, pub: pub, hosts: hosts,
		subject: strings.TrimPrefix(subject, "mailto:"),
		client:  &http.Client{Timeout: p.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		removed: &m.pushRemoved, ringTTL: cfg.RingTimeout, now: now,
		// Every push is padded to this size (RFC 8291): a push service
		// cannot tell a ring from a missed call by its length.
		recordSz: 512,
	}
	ps.out = newOutbox("push", p.QueueSize, p.Workers, p.Timeout, p.RetryMin, ps.send, &m.push, now, log)
	return ps, nil
}

// hostAllowed reports whether the server may post to endpoint's host.
func (p *pusher) hostAllowed(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" {
		return false
	}
	return hostMatches(p.hosts, strings.ToLower(u.Hostname()))
}

func hostMatches(patterns []string, host string) bool {
	for _, pat := range patterns {
		pat = strings.ToLower(pat)
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			if strings.HasSuffix(host, "."+rest) {
				return true
			}
		} else if ok, _ := path.Match(pat, host); ok {
			return true
		}
	}
	return false
}

// ring wakes the parent's browsers for a child's ring; missed tells them a
// call went unanswered. None of them waits for anything.
func (p *pusher) ring(parentID, callID string, at time.Time) {
	p.put(pushJob{parentID: parentID, msg: pushMessage{Type: "ring", CallID: callID, At: at}, ttl: p.ringTTL})
}

// answered silences the ring on the parent's other browsers: one of the
// parent's phones took the call.
func (p *pusher) answered(parentID, callID string, at time.Time) {
	p.put(pushJob{parentID: parentID, msg: pushMessage{Type: "answered", CallID: callID, At: at}, ttl: p.ringTTL})
}

func (p *pusher) missed(parentID, callID string, at time.Time) {
	p.put(pushJob{parentID: parentID, msg: pushMessage{Type: "missed", CallID: callID, At: at}, ttl: p.cfg.MissedTTL})
}

func (p *pusher) put(j pushJob) {
	subs, err := p.store.PushSubscriptions(j.parentID)
	if err != nil {
		p.log.Error("push: read subscriptions", "parent", j.parentID, "err", err)
		return
	}
	// A message is worth sending while a push service would still deliver
	// it.
	deadline := p.now().Add(j.ttl)
	for _, sub := range subs {
		j.sub = sub
		p.out.put(j, deadline)
	}
}

// send is one try of one job: an encrypted POST to the subscription's
// push service.
func (p *pusher) send(ctx context.Context, j pushJob) error {
	host := endpointHost(j.sub.Endpoint)
	if !p.hostAllowed(j.sub.Endpoint) {
		return permanent(fmt.Errorf("push to %s: not one of push.endpoint_hosts", host))
	}
	payload, err := json.Marshal(j.msg)
	if err != nil {
		return permanent(err)
	}
	resp, err := webpush.SendNotificationWithContext(ctx, payload,
		&webpush.Subscription{Endpoint: j.sub.Endpoint, Keys: webpush.Keys{Auth: j.sub.Auth, P256dh: j.sub.P256DH}},
		&webpush.Options{
			HTTPClient: p.client, Subscriber: p.subject,
			VAPIDPublicKey: p.pub, VAPIDPrivateKey: p.priv,
			// The topic lets a push service replace a call's ring that it
			// has not delivered yet by that call's missed-call message.
			// The call ID is random: it says nothing about the family.
			Topic: j.msg.CallID, TTL: int(j.ttl / time.Second), Urgency: webpush.UrgencyHigh,
			RecordSize: p.recordSz,
		})
	if err != nil {
		return fmt.Errorf("push to %s: %w", host, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusNotFound || code == http.StatusGone:
		// RFC 8030 section 7.3: the subscription has expired or the
		// browser dropped it. Never send to it again.
		if _, err := p.store.DeletePushSubscription(j.parentID, j.sub.Endpoint); err != nil {
			p.log.Error("push: could not forget a gone subscription", "push_host", host, "err", err)
		} else {
			p.removed.Add(1)
			p.log.Info("push subscription gone; removed", "parent", j.parentID, "push_host", host, "status", code)
		}
		return permanent(fmt.Errorf("push to %s: HTTP %d: the subscription is gone", host, code))
	case code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("push to %s: HTTP %d", host, code)
	default:
		return permanent(fmt.Errorf("push to %s: HTTP %d", host, code))
	}
}

func endpointHost(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil {
		return u.Hostname()
	}
	return "?"
}

func (p *pusher) close() { p.out.close() }

// loadOrCreateVAPIDKey returns the server's VAPID key pair from
// DataDir/vapid-key, making it (P-256, mode 0600, written atomically) on
// first start, as the TURN secret is kept (turn.go). The key must outlive
// restarts: every subscription a browser made is bound to it.
func loadOrCreateVAPIDKey(dir string) (priv, pub string, err error) {
	file := filepath.Join(dir, VAPIDKeyFile)
	raw, err := os.ReadFile(file)
	switch {
	case err == nil:
		b, derr := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(raw)))
		if derr != nil {
			return "", "", fmt.Errorf("rendezvous: VAPID key in %s is not base64url: %w", file, derr)
		}
		k, kerr := ecdh.P256().NewPrivateKey(b)
		if kerr != nil {
			return "", "", fmt.Errorf("rendezvous: VAPID key in %s: %w", file, kerr)
		}
		return base64.RawURLEncoding.EncodeToString(k.Bytes()), base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", fmt.Errorf("rendezvous: read VAPID key: %w", err)
	}
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("rendezvous: make VAPID key: %w", err)
	}
	priv = base64.RawURLEncoding.EncodeToString(k.Bytes())
	if err := atomicfile.WriteFile(file, []byte(priv+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("rendezvous: write VAPID key: %w", err)
	}
	return priv, base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), nil
}

// VAPIDPublicKey is the key browsers subscribe with (notify_status's
// vapid_key), or "" when Web Push is off.
func (s *Server) VAPIDPublicKey() string {
	if s.push == nil {
		return ""
	}
	return s.push.pub
}
