package rendezvous

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// NotifierConfig is the programme's notifier: an HTTP webhook that an SMS
// gateway, a voice-notification (text to speech) service or a messaging
// platform can be driven by, for parents whom Web Push does not reach
// (a browser without Google's push service in mainland China, an in-app
// WebView). docs/notifications.md documents the payload, its signature and
// the gateways.
type NotifierConfig struct {
	// URL the server posts events to (https, or http to an adapter on the
	// same host or network). Empty: no text messages or calls, and the page
	// does not ask for a number.
	URL string `toml:"url"`
	// Secret keys the HMAC-SHA256 signature on every request; the adapter
	// checks it. At least 32 characters; shared with the adapter only.
	Secret string `toml:"secret"`
	// SMSAfter: a child's ring that nobody has answered this long after it
	// started sends a "ring_unanswered" SMS event. It must be shorter than
	// ring_timeout (and than the terminal's 45 s), or it never fires.
	SMSAfter time.Duration `toml:"sms_after"`
	// VoiceOnMissed: a child's call that ends missed sends a
	// "missed_call" voice event (a text-to-speech phone call).
	VoiceOnMissed bool `toml:"voice_on_missed"`
	// PerFamilyPerDay caps the events for one family in any 24 hours
	// (gateways cap messages per number per day, and a child who presses
	// twenty times must not cost the programme twenty calls).
	PerFamilyPerDay int `toml:"per_family_per_day"`
	// MaxAge: an event not delivered this long after it was made is
	// dropped ("your child is calling" an hour late helps nobody).
	MaxAge time.Duration `toml:"max_age"`
	// QueueSize, Workers, Timeout (one POST) and RetryMin (the first wait
	// before a retry, growing to 30 s) shape the sending (outbox.go).
	QueueSize int           `toml:"queue_size"`
	Workers   int           `toml:"workers"`
	Timeout   time.Duration `toml:"timeout"`
	RetryMin  time.Duration `toml:"retry_min"`
}

func defaultNotifierConfig() NotifierConfig {
	return NotifierConfig{SMSAfter: 20 * time.Second, PerFamilyPerDay: 6, MaxAge: 10 * time.Minute,
		QueueSize: 1024, Workers: 4, Timeout: 10 * time.Second, RetryMin: 2 * time.Second}
}

func (n NotifierConfig) enabled() bool { return n.URL != "" }

func (n NotifierConfig) validate(ringTimeout time.Duration, bad func(string, ...any) error) error {
	if !n.enabled() {
		return nil
	}
	u, err := url.Parse(n.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return bad("notifier.url %q is not an http(s) URL without user information", n.URL)
	}
	if len(n.Secret) < 32 {
		return bad("notifier.secret must be at least 32 characters (the adapter checks every request's signature with it)")
	}
	if n.SMSAfter <= 0 || n.SMSAfter >= ringTimeout {
		return bad("notifier.sms_after %v must be positive and shorter than ring_timeout %v", n.SMSAfter, ringTimeout)
	}
	if n.PerFamilyPerDay < 1 {
		return bad("notifier.per_family_per_day must be at least 1")
	}
	if n.MaxAge < time.Minute || n.QueueSize < 1 || n.Workers < 1 || n.Timeout <= 0 || n.RetryMin <= 0 {
		return bad("notifier: max_age at least 1m, queue_size and workers at least 1, timeout and retry_min positive")
	}
	return nil
}

// Notifier events and channels (docs/notifications.md).
const (
	EventRingUnanswered = "ring_unanswered" // the child's ring is not answered after sms_after: SMS
	EventMissedCall     = "missed_call"     // the child's call ended missed: voice call
	ChannelSMS          = "sms"
	ChannelVoice        = "voice"
)

// NotifyEvent is the JSON body of a webhook request.
type NotifyEvent struct {
	ID      string `json:"id"`      // random, the same on every retry: the adapter sends an event once
	Event   string `json:"event"`   // EventRingUnanswered or EventMissedCall
	Channel string `json:"channel"` // ChannelSMS or ChannelVoice
	// Phone is the parent's number in E.164 form, the one thing the
	// gateway needs that the server keeps; it appears nowhere else.
	Phone string `json:"phone"`
	// Family is an opaque tag of the family (the same for every event of
	// one pairing, HMAC-keyed by the notifier secret): the adapter may
	// count by it; it names nobody.
	Family string `json:"family"`
	// CallRef is an opaque reference of the call (its random ID).
	CallRef       string    `json:"call_ref"`
	CallStartedAt time.Time `json:"call_started_at"`
	Created       time.Time `json:"created"`
	// Lang is the language the message should be in.
	Lang string `json:"lang"`
}

// Headers of a webhook request.
const (
	HeaderNotifyTimestamp = "Tuanju-Timestamp" // Unix seconds at signing
	HeaderNotifySignature = "Tuanju-Signature" // "v1=" + hex HMAC-SHA256(secret, timestamp + "." + body)
	HeaderNotifyEventID   = "Tuanju-Event-Id"
)

// NotifySignature is the signature of a webhook request: hex
// HMAC-SHA256(secret, timestamp + "." + body), written "v1=<hex>". An
// adapter computes the same and compares in constant time
// (VerifyNotifySignature).
func NotifySignature(secret string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// NotifyReplayWindow is how far a request's timestamp may be from the
// adapter's clock. Each retry is signed afresh; the event ID stays.
const NotifyReplayWindow = 5 * time.Minute

// VerifyNotifySignature is the adapter's check of one request (a Go
// adapter can call it; docs/notifications.md has it in prose): the
// timestamp within NotifyReplayWindow of now, and the signature right.
func VerifyNotifySignature(secret string, h http.Header, body []byte, now time.Time) error {
	ts, err := strconv.ParseInt(h.Get(HeaderNotifyTimestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("rendezvous: notify signature: no timestamp: %w", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > NotifyReplayWindow || d < -NotifyReplayWindow {
		return fmt.Errorf("rendezvous: notify signature: timestamp %v from now: %w", d.Round(time.Second), ErrBadSignature)
	}
	if !hmac.Equal([]byte(h.Get(HeaderNotifySignature)), []byte(NotifySignature(secret, ts, body))) {
		return fmt.Errorf("rendezvous: notify signature: %w", ErrBadSignature)
	}
	return nil
}

// notifier posts events to the programme's webhook.
type notifier struct {
	cfg     NotifierConfig
	log     *slog.Logger
	client  *http.Client
	now     func() time.Time
	out     *outbox[NotifyEvent]
	limited *atomic.Uint64

	mu   sync.Mutex
	sent map[string][]time.Time // family → events in the last 24 h
}

func newNotifier(cfg NotifierConfig, m *metrics, now func() time.Time, log *slog.Logger) *notifier {
	if !cfg.enabled() {
		return nil
	}
	n := &notifier{cfg: cfg, log: log, now: now, sent: map[string][]time.Time{}, limited: &m.notifyRateLimited,
		client: &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	n.out = newOutbox("notifier", cfg.QueueSize, cfg.Workers, cfg.Timeout, cfg.RetryMin, n.post, &m.notify, now, log)
	return n
}

// family is the opaque tag of a parent in events.
func (n *notifier) family(parentID string) string {
	mac := hmac.New(sha256.New, []byte(n.cfg.Secret))
	mac.Write([]byte("tuanju family\n" + parentID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

// notify queues an event for a parent's number, within the family's daily
// allowance. It never waits.
func (n *notifier) notify(parentID, phone, event, channel, callID string, started time.Time) {
	now := n.now()
	fam := n.family(parentID)
	log := n.log.With("event", event, "channel", channel, "parent", parentID, "phone", protocol.MaskPhone(phone), "call", callID)
	if !n.allow(fam, now) {
		n.limited.Add(1)
		log.Warn("notifier: family's daily allowance used; not sent", "per_day", n.cfg.PerFamilyPerDay)
		return
	}
	e := NotifyEvent{ID: protocol.NewID(), Event: event, Channel: channel, Phone: phone, Family: fam,
		CallRef: callID, CallStartedAt: started.UTC(), Created: now.UTC(), Lang: "zh-CN"}
	if n.out.put(e, now.Add(n.cfg.MaxAge)) {
		log.Info("notifier: event queued")
	}
}

// allow spends one of the family's events in the last 24 hours.
func (n *notifier) allow(family string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	kept := n.sent[family][:0]
	for _, t := range n.sent[family] {
		if now.Sub(t) < 24*time.Hour {
			kept = append(kept, t)
		}
	}
	if len(kept) >= n.cfg.PerFamilyPerDay {
		n.sent[family] = kept
		return false
	}
	n.sent[family] = append(kept, now)
	return true
}

// post is one try: the event, signed now.
func (n *notifier) post(ctx context.Context, e NotifyEvent) error {
	body, err := json.Marshal(e)
	if err != nil {
		return permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return permanent(err)
	}
	ts := n.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderNotifyTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderNotifySignature, NotifySignature(n.cfg.Secret, ts, body))
	req.Header.Set(HeaderNotifyEventID, e.ID)
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("notifier: post %s event: %w", e.Event, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		n.log.Info("notifier: event delivered", "event", e.Event, "channel", e.Channel, "call", e.CallRef, "phone", protocol.MaskPhone(e.Phone))
		return nil
	case code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("notifier: %s event: HTTP %d", e.Event, code)
	default:
		return permanent(fmt.Errorf("notifier: %s event refused: HTTP %d", e.Event, code))
	}
}

func (n *notifier) close() { n.out.close() }
