package rendezvous_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/logbuf"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

const (
	testPhone          = "+8613812345678"
	testNotifierSecret = "a-notifier-secret-of-at-least-32-characters"
)

// gateway is a programme's SMS / voice adapter on loopback: it keeps every
// webhook request; status decides each answer, hold (when set) keeps each
// request waiting until it is closed.
type gateway struct {
	*httptest.Server
	got     chan gatewayRequest
	arrived chan struct{}
	mu      sync.Mutex
	n       int
	status  func(n int) int
	hold    chan struct{}
}

type gatewayRequest struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newGateway(t *testing.T) *gateway {
	t.Helper()
	g := &gateway{got: make(chan gatewayRequest, 64), arrived: make(chan struct{}, 64), status: func(int) int { return http.StatusOK }}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		g.arrived <- struct{}{}
		g.mu.Lock()
		g.n++
		n, status, hold := g.n, g.status, g.hold
		g.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		g.got <- gatewayRequest{header: r.Header.Clone(), body: body, at: time.Now()}
		w.WriteHeader(status(n))
	}))
	t.Cleanup(g.Close)
	return g
}

// next waits for the gateway's next request, checks its signature as an
// adapter must (computed here, not with the server's code: hex
// HMAC-SHA256 over timestamp "." body, a timestamp within five minutes)
// and decodes it.
func (g *gateway) next(t *testing.T, ctx context.Context) rendezvous.NotifyEvent {
	t.Helper()
	var r gatewayRequest
	select {
	case r = <-g.got:
	case <-ctx.Done():
		t.Fatalf("no webhook request arrived: %v", ctx.Err())
	}
	ts := r.header.Get("Tuanju-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || r.at.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		t.Fatalf("Tuanju-Timestamp %q is not a time near now", ts)
	}
	mac := hmac.New(sha256.New, []byte(testNotifierSecret))
	mac.Write([]byte(ts + "." + string(r.body)))
	if want := "v1=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(r.header.Get("Tuanju-Signature")), []byte(want)) {
		t.Fatalf("Tuanju-Signature %q, want %q", r.header.Get("Tuanju-Signature"), want)
	}
	if err := rendezvous.VerifyNotifySignature(testNotifierSecret, r.header, r.body, r.at); err != nil {
		t.Fatalf("VerifyNotifySignature refuses a request the server signed: %v", err)
	}
	if r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
	}
	var e rendezvous.NotifyEvent
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("webhook body %s: %v", r.body, err)
	}
	if r.header.Get("Tuanju-Event-Id") != e.ID || !protocol.ValidID(e.ID) {
		t.Fatalf("Tuanju-Event-Id %q, body id %q", r.header.Get("Tuanju-Event-Id"), e.ID)
	}
	return e
}

// notifierServer is a test server (as rendezvoustest's) with the notifier
// pointed at g, retrying fast, whose log the test can read.
func notifierServer(t *testing.T, g *gateway, logs *logbuf.Buffer, configure func(*rendezvous.Config)) *rt.Server {
	t.Helper()
	cfg := rt.TestConfig(t)
	cfg.Notifier.URL = g.URL + "/tuanju"
	cfg.Notifier.Secret = testNotifierSecret
	cfg.Notifier.RetryMin = 10 * time.Millisecond
	cfg.Notifier.VoiceOnMissed = true
	if configure != nil {
		configure(&cfg)
	}
	s, err := natsreg.NewRendezvous(cfg, slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), nil)))
	check(t, err)
	hs := httptest.NewServer(s.Handler())
	srv := &rt.Server{Server: s, Config: cfg, HTTP: hs, URL: hs.URL, WSURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// setPhone gives the parent's number, with consent, and checks the answer.
func setPhone(t *testing.T, ctx context.Context, c *rt.Client) {
	t.Helper()
	check(t, c.Send(ctx, protocol.Message{Type: protocol.TypePhoneSet, Phone: testPhone, Consent: boolp(true)}))
	st := try(c.Expect(ctx, protocol.TypeNotifyStatus)).must(t)
	if st.PhoneHint != "+*********5678" || st.SMS == nil || !*st.SMS || st.Voice == nil || !*st.Voice {
		t.Fatalf("notify_status after phone_set = %+v, want the masked number, sms and voice", st)
	}
}

// TestNotifierTextsUnansweredRing: a parent with a number and no page open
// is rung; after sms_after the gateway gets a signed ring_unanswered SMS
// event, retried (same event ID) after two HTTP 500s; the call ends missed
// and a missed_call voice event follows. The number appears in the
// webhook's body only, never in the server's log.
func TestNotifierTextsUnansweredRing(t *testing.T) {
	ctx := testCtx(t)
	g := newGateway(t)
	g.status = func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	logs := &logbuf.Buffer{}
	srv := notifierServer(t, g, logs, func(c *rendezvous.Config) { c.Notifier.SMSAfter = 300 * time.Millisecond })
	f := newFamily(t, ctx, srv)
	setPhone(t, ctx, f.parent)
	check(t, f.parent.Close())
	try(f.terminal.Expect(ctx, protocol.TypePresence)).must(t)

	id := protocol.NewID()
	start := time.Now()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	if m := try(f.terminal.Recv(ctx)).must(t); m.Type != protocol.TypeRinging {
		t.Fatalf("a parent reachable by SMS: the ring was answered with %s %s, want ringing", m.Type, m.Reason)
	}
	var sms []rendezvous.NotifyEvent
	for range 3 {
		sms = append(sms, g.next(t, ctx))
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("the SMS event came %v after the ring, before sms_after", waited)
	}
	e := sms[0]
	if e.Event != rendezvous.EventRingUnanswered || e.Channel != rendezvous.ChannelSMS || e.Phone != testPhone || e.CallRef != id || e.Family == "" || e.Lang != "zh-CN" {
		t.Fatalf("SMS event %+v", e)
	}
	for i, r := range sms[1:] {
		if r.ID != e.ID {
			t.Fatalf("retry %d has event id %s, want the first try's %s (the adapter sends it once)", i+1, r.ID, e.ID)
		}
	}

	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonCancel}))
	v := g.next(t, ctx)
	if v.Event != rendezvous.EventMissedCall || v.Channel != rendezvous.ChannelVoice || v.Phone != testPhone || v.CallRef != id || v.Family != e.Family || v.ID == e.ID {
		t.Fatalf("voice event %+v after the SMS %+v", v, e)
	}
	eventually(t, ctx, "two events delivered after two failed tries", func() bool {
		m := srv.Metrics()
		return m.NotifySent == 2 && m.NotifyFailed == 2
	})
	for _, leak := range []string{testPhone, testPhone[3:]} {
		if strings.Contains(logs.String(), leak) {
			t.Fatalf("the server logged the parent's number (%s)", leak)
		}
	}
	if !strings.Contains(logs.String(), "+*********5678") {
		t.Fatal("the server's log never shows the masked number: the check above proves nothing")
	}
}

// TestNotifierRateLimit: a family gets at most per_family_per_day events;
// a child who keeps pressing does not cost the programme a call each.
func TestNotifierRateLimit(t *testing.T) {
	ctx := testCtx(t)
	g := newGateway(t)
	srv := notifierServer(t, g, &logbuf.Buffer{}, func(c *rendezvous.Config) {
		c.Notifier.SMSAfter = 50 * time.Second // only the missed calls' voice events
		c.Notifier.PerFamilyPerDay = 2
	})
	f := newFamily(t, ctx, srv)
	setPhone(t, ctx, f.parent)
	check(t, f.parent.Close())
	try(f.terminal.Expect(ctx, protocol.TypePresence)).must(t)
	for range 3 {
		id := protocol.NewID()
		check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
		try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t)
		check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonCancel}))
	}
	for range 2 {
		if e := g.next(t, ctx); e.Event != rendezvous.EventMissedCall {
			t.Fatalf("event %+v, want missed_call", e)
		}
	}
	eventually(t, ctx, "the third event refused", func() bool { return srv.Metrics().NotifyRateLimited == 1 })
	if m := srv.Metrics(); m.NotifySent+uint64(m.NotifyQueued) > 2 {
		t.Fatalf("metrics %+v: more than the day's 2 events sent or queued", m)
	}
}

// TestNotifierNeverDelaysRing: a gateway that hangs, one worker, a queue
// of one: every ring still reaches the terminal and the parent's page at
// once, while the gateway holds the first event.
func TestNotifierNeverDelaysRing(t *testing.T) {
	ctx := testCtx(t)
	g := newGateway(t)
	g.hold = make(chan struct{})
	srv := notifierServer(t, g, &logbuf.Buffer{}, func(c *rendezvous.Config) {
		c.Notifier.SMSAfter = 100 * time.Millisecond
		c.Notifier.Workers, c.Notifier.QueueSize, c.Notifier.Timeout = 1, 1, time.Minute
		c.Notifier.PerFamilyPerDay = 100
	})
	f := newFamily(t, ctx, srv)
	setPhone(t, ctx, f.parent)
	for i := range 4 {
		id := protocol.NewID()
		check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
		if m := try(f.terminal.Recv(ctx)).must(t); m.Type != protocol.TypeRinging || m.CallID != id {
			t.Fatalf("ring %d: the terminal got %s, want ringing", i, m.Type)
		}
		if m := try(f.parent.WaitFor(ctx, protocol.TypeRing)).must(t); m.CallID != id {
			t.Fatalf("ring %d: the page rang for %s, want %s", i, m.CallID, id)
		}
		if i == 0 {
			select {
			case <-g.arrived: // the unanswered ring's SMS, now held by the gateway
			case <-ctx.Done():
				t.Fatal("the SMS event never reached the gateway")
			}
		}
		check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonCancel}))
		try(f.parent.WaitFor(ctx, protocol.TypeHangup)).must(t)
	}
	if m := srv.Metrics(); m.NotifySent != 0 || m.NotifyDropped == 0 {
		t.Fatalf("metrics %+v: want nothing delivered (the gateway holds it) and the overflow dropped", m)
	}
	close(g.hold)
}

// TestVerifyNotifySignature: what an adapter refuses.
func TestVerifyNotifySignature(t *testing.T) {
	body := []byte(`{"id":"x"}`)
	now := time.Unix(1_800_000_000, 0)
	sign := func(ts int64, secret string, b []byte) http.Header {
		h := http.Header{}
		h.Set("Tuanju-Timestamp", strconv.FormatInt(ts, 10))
		h.Set("Tuanju-Signature", rendezvous.NotifySignature(secret, ts, b))
		return h
	}
	for _, tc := range []struct {
		name string
		h    http.Header
		body []byte
		ok   bool
	}{
		{"good", sign(now.Unix(), testNotifierSecret, body), body, true},
		{"4 minutes old", sign(now.Add(-4*time.Minute).Unix(), testNotifierSecret, body), body, true},
		{"6 minutes old (a replay)", sign(now.Add(-6*time.Minute).Unix(), testNotifierSecret, body), body, false},
		{"6 minutes ahead", sign(now.Add(6*time.Minute).Unix(), testNotifierSecret, body), body, false},
		{"body changed", sign(now.Unix(), testNotifierSecret, body), []byte(`{"id":"y"}`), false},
		{"other secret", sign(now.Unix(), testNotifierSecret+"x", body), body, false},
		{"no timestamp", http.Header{"Tuanju-Signature": {"v1=00"}}, body, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rendezvous.VerifyNotifySignature(testNotifierSecret, tc.h, tc.body, now)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, rendezvous.ErrBadSignature)) {
				t.Fatalf("VerifyNotifySignature = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestPhoneSettings: the number is kept with consent, cleared by the
// parent, and gone with the pairing (a factory reset) together with the
// push subscriptions.
func TestPhoneSettings(t *testing.T) {
	ctx := testCtx(t)
	g := newGateway(t)
	ps := newPushService(t)
	srv := notifierServer(t, g, &logbuf.Buffer{}, func(c *rendezvous.Config) {
		c.Push.Subject = "mailto:ops@tuanju.example"
		c.Push.EndpointHosts = []string{"127.0.0.1"}
	})
	f := newFamily(t, ctx, srv)
	setPhone(t, ctx, f.parent)
	if p, err := srv.RequireStore(t).Phone(f.creds.ParentID); err != nil || p.Number != testPhone || p.ConsentAt.IsZero() {
		t.Fatalf("stored phone %+v, %v", p, err)
	}
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypePhoneClear}))
	if st := try(f.parent.Expect(ctx, protocol.TypeNotifyStatus)).must(t); st.PhoneHint != "" {
		t.Fatalf("notify_status after phone_clear still shows %q", st.PhoneHint)
	}
	if _, err := srv.RequireStore(t).Phone(f.creds.ParentID); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("phone after phone_clear: %v, want ErrNotFound", err)
	}

	setPhone(t, ctx, f.parent)
	subscribe(t, ctx, srv, f.parent, newBrowser(t, ps))
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeUnpair}))
	try(f.terminal.WaitFor(ctx, protocol.TypeUnpaired)).must(t)
	if _, err := srv.RequireStore(t).Phone(f.creds.ParentID); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("phone after the terminal's reset: %v, want it gone", err)
	}
	if subs, err := srv.Registry().PushSubscriptions(f.creds.ParentID); err != nil || len(subs) != 0 {
		t.Fatalf("%d push subscriptions after the terminal's reset (%v), want none", len(subs), err)
	}
}
