package rendezvous_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// pushService is a Web Push service on loopback (RFC 8030): it takes the
// server's POSTs to a subscription's endpoint and keeps them for the test.
// status decides each answer; hold, when set, keeps every request waiting
// until it is closed (a push service that hangs).
type pushService struct {
	*httptest.Server
	got    chan pushRequest
	mu     sync.Mutex
	status func(n int) int // answer to the n-th request (from 1)
	n      int
	hold   chan struct{}
	// arrived is told of every request as it arrives, before hold.
	arrived chan struct{}
}

type pushRequest struct {
	path   string
	header http.Header
	body   []byte
}

func newPushService(t *testing.T) *pushService {
	t.Helper()
	ps := &pushService{got: make(chan pushRequest, 64), arrived: make(chan struct{}, 64), status: func(int) int { return http.StatusCreated }}
	ps.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ps.arrived <- struct{}{}
		ps.mu.Lock()
		ps.n++
		n, status, hold := ps.n, ps.status, ps.hold
		ps.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		ps.got <- pushRequest{path: r.URL.Path, header: r.Header.Clone(), body: body}
		w.WriteHeader(status(n))
	}))
	t.Cleanup(ps.Close)
	return ps
}

// browser is what a browser keeps of its push subscription: the keys the
// push messages are encrypted to (RFC 8291 section 3).
type browser struct {
	key      *ecdh.PrivateKey
	auth     []byte
	endpoint string
}

func newBrowser(t *testing.T, ps *pushService) *browser {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	check(t, err)
	b := &browser{key: k, auth: make([]byte, 16), endpoint: ps.URL + "/push/" + protocol.NewID()}
	rand.Read(b.auth)
	return b
}

func (b *browser) subscribe() protocol.Message {
	return protocol.Message{Type: protocol.TypePushSubscribe, Endpoint: b.endpoint,
		P256DH: base64.RawURLEncoding.EncodeToString(b.key.PublicKey().Bytes()), Auth: base64.RawURLEncoding.EncodeToString(b.auth)}
}

// decrypt opens a push message as the browser does (RFC 8291 section 3.4,
// RFC 8188 aes128gcm), independently of the server's library: the header
// (salt, record size, the server's one-time key), then the one record.
func (b *browser) decrypt(body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("shorter than the aes128gcm header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) < 21+idlen {
		return nil, fmt.Errorf("key id of %d bytes, want the 65-byte application server key", idlen)
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, fmt.Errorf("application server key: %w", err)
	}
	record := body[21+idlen:]
	if len(record) > int(rs) {
		return nil, fmt.Errorf("record of %d bytes over the record size %d", len(record), rs)
	}
	shared, err := b.key.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	prkKey, err := hkdf.Extract(sha256.New, shared, b.auth)
	if err != nil {
		return nil, err
	}
	info := "WebPush: info\x00" + string(b.key.PublicKey().Bytes()) + string(asPub.Bytes())
	ikm, err := hkdf.Expand(sha256.New, prkKey, info, 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	// Padding: the last record ends in 0x02 followed by zeros.
	end := len(plain) - 1
	for end >= 0 && plain[end] == 0 {
		end--
	}
	if end < 0 || plain[end] != 2 {
		return nil, errors.New("no last-record delimiter")
	}
	return plain[:end], nil
}

// checkVAPID checks a push request's Authorization (RFC 8292): "vapid
// t=<JWT>, k=<key>", k the server's key, the JWT signed ES256 by it, for
// the endpoint's origin, expiring within 24 hours, with a contact subject.
func checkVAPID(t *testing.T, h http.Header, serverKey, endpoint string, now time.Time) {
	t.Helper()
	auth := h.Get("Authorization")
	var tok, k string
	for part := range strings.SplitSeq(strings.TrimPrefix(auth, "vapid "), ",") {
		part = strings.TrimSpace(part)
		if v, ok := strings.CutPrefix(part, "t="); ok {
			tok = v
		} else if v, ok := strings.CutPrefix(part, "k="); ok {
			k = v
		}
	}
	if !strings.HasPrefix(auth, "vapid ") || tok == "" {
		t.Fatalf("Authorization %q is not vapid t=…, k=…", auth)
	}
	if k != serverKey {
		t.Fatalf("VAPID k = %q, want the server's key %q (notify_status vapid_key)", k, serverKey)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT %q has %d parts", tok, len(parts))
	}
	var header struct{ Alg, Typ string }
	var claims struct {
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
		Sub string `json:"sub"`
	}
	for i, v := range []any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		check(t, err)
		check(t, json.Unmarshal(raw, v))
	}
	if header.Alg != "ES256" {
		t.Fatalf("JWT alg %q, want ES256", header.Alg)
	}
	rawKey, err := base64.RawURLEncoding.DecodeString(k)
	check(t, err)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), rawKey)
	check(t, err)
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("JWT signature is not 64 bytes of r‖s (%d, %v)", len(sig), err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("VAPID JWT signature does not verify with the server's key")
	}
	u, _ := url.Parse(endpoint)
	if want := u.Scheme + "://" + u.Host; claims.Aud != want {
		t.Fatalf("JWT aud %q, want the push service's origin %q", claims.Aud, want)
	}
	if exp := time.Unix(claims.Exp, 0); !exp.After(now) || exp.After(now.Add(24*time.Hour)) {
		t.Fatalf("JWT exp %v is not within 24 hours after %v (RFC 8292 section 2)", exp, now)
	}
	if claims.Sub != "mailto:ops@tuanju.example" {
		t.Fatalf("JWT sub %q, want the configured contact", claims.Sub)
	}
}

// pushServer is a server that sends Web Push to ps (and only to loopback),
// retrying fast.
func pushServer(t *testing.T, ps *pushService, configure func(*rendezvous.Config)) *rt.Server {
	t.Helper()
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.Push.Subject = "mailto:ops@tuanju.example"
		c.Push.EndpointHosts = []string{"127.0.0.1"}
		c.Push.RetryMin = 20 * time.Millisecond
		if configure != nil {
			configure(c)
		}
	})
	srv.SetPushClient(ps.Client())
	return srv
}

// subscribe sends the browser's subscription on c and checks the answer.
func subscribe(t *testing.T, ctx context.Context, srv *rt.Server, c *rt.Client, b *browser) {
	t.Helper()
	check(t, c.Send(ctx, b.subscribe()))
	st := try(c.Expect(ctx, protocol.TypeNotifyStatus)).must(t)
	if st.Subscribed == nil || !*st.Subscribed || st.VAPIDKey == "" || st.VAPIDKey != srv.VAPIDPublicKey() {
		t.Fatalf("notify_status after push_subscribe = %+v, want subscribed with the server's key", st)
	}
}

// nextPush waits for the push service's next request and opens it.
func nextPush(t *testing.T, ctx context.Context, ps *pushService, b *browser, srv *rt.Server) (pushRequest, map[string]string) {
	t.Helper()
	var r pushRequest
	select {
	case r = <-ps.got:
	case <-ctx.Done():
		t.Fatalf("no push arrived: %v", ctx.Err())
	}
	if ce := r.header.Get("Content-Encoding"); ce != "aes128gcm" {
		t.Fatalf("Content-Encoding %q, want aes128gcm", ce)
	}
	checkVAPID(t, r.header, srv.VAPIDPublicKey(), b.endpoint, time.Now())
	plain, err := b.decrypt(r.body)
	if err != nil {
		t.Fatalf("the push does not open with the subscription's keys: %v", err)
	}
	var msg map[string]string
	if err := json.Unmarshal(plain, &msg); err != nil {
		t.Fatalf("push payload %q: %v", plain, err)
	}
	return r, msg
}

// TestPushWakesParent: a parent whose page is closed but whose browser
// subscribed is rung all the same (no "unavailable"): the push service gets
// an encrypted "ring" for the call (TTL the ring timeout, urgency high, the
// call as topic, VAPID-signed), the page that the notification opens logs
// in, gets the ring and answers it, and the parent's browsers are told
// "answered" (to stop ringing). A call nobody answers is pushed again as
// "missed".
func TestPushWakesParent(t *testing.T) {
	ctx := testCtx(t)
	ps := newPushService(t)
	srv := pushServer(t, ps, nil)
	f := newFamily(t, ctx, srv)
	b := newBrowser(t, ps)
	subscribe(t, ctx, srv, f.parent, b)
	check(t, f.parent.Close()) // the parent closes the page
	try(f.terminal.Expect(ctx, protocol.TypePresence)).must(t)

	// Answered: ring pushed, the page comes and answers.
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	if m := try(f.terminal.Recv(ctx)).must(t); m.Type != protocol.TypeRinging || m.CallID != id {
		t.Fatalf("a subscribed parent with no page open: the ring was answered with %s %s, want ringing", m.Type, m.Reason)
	}
	r, msg := nextPush(t, ctx, ps, b, srv)
	if msg["type"] != "ring" || msg["call_id"] != id {
		t.Fatalf("push payload %v, want a ring for call %s", msg, id)
	}
	if _, err := time.Parse(time.RFC3339, msg["at"]); err != nil {
		t.Fatalf("push payload's at %q: %v", msg["at"], err)
	}
	if len(msg) != 3 {
		t.Fatalf("push payload %v carries more than type, call_id and at", msg)
	}
	for h, want := range map[string]string{"TTL": strconv.Itoa(int(srv.Config.RingTimeout / time.Second)), "Urgency": "high", "Topic": id} {
		if got := r.header.Get(h); got != want {
			t.Errorf("push header %s = %q, want %q", h, got, want)
		}
	}
	if len(r.body) != 512 {
		t.Errorf("push body of %d bytes, want every push padded to the 512-byte record", len(r.body))
	}
	page := f.redial(t, ctx, srv, false)
	if m := try(page.WaitFor(ctx, protocol.TypeRing)).must(t); m.CallID != id {
		t.Fatalf("the page opened by the notification was rung for %s, want %s", m.CallID, id)
	}
	check(t, page.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
	try(f.terminal.WaitFor(ctx, protocol.TypeAccept)).must(t)
	// The parent's other browsers stop ringing.
	if _, msg := nextPush(t, ctx, ps, b, srv); msg["type"] != "answered" || msg["call_id"] != id {
		t.Fatalf("push payload %v after the accept, want answered for call %s", msg, id)
	}
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonHangup}))
	try(page.WaitFor(ctx, protocol.TypeHangup)).must(t)
	check(t, page.Close())
	try(f.terminal.WaitFor(ctx, protocol.TypePresence)).must(t)

	// Missed: the child gives up; "ring", then "missed" with the call's
	// start and the long TTL.
	id = protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t)
	if _, msg := nextPush(t, ctx, ps, b, srv); msg["type"] != "ring" || msg["call_id"] != id {
		t.Fatalf("push payload %v, want a ring for call %s", msg, id)
	}
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonCancel}))
	r, msg = nextPush(t, ctx, ps, b, srv)
	if msg["type"] != "missed" || msg["call_id"] != id {
		t.Fatalf("push payload %v, want missed for call %s", msg, id)
	}
	if got, want := r.header.Get("TTL"), strconv.Itoa(int(srv.Config.Push.MissedTTL/time.Second)); got != want {
		t.Errorf("missed push TTL %s, want %s", got, want)
	}
	// Two rings, answered and missed: the answered call was not pushed as
	// missed (its push would have come before this one).
	eventually(t, ctx, "PushSent reaches 4", func() bool { return srv.Metrics().PushSent == 4 })
}

// TestPushGoneRemovesSubscription: a push service that answers 404 or 410
// (RFC 8030 section 7.3) for a subscription gets nothing more: the server
// forgets it. Control: 500 keeps it (retried).
func TestPushGoneRemovesSubscription(t *testing.T) {
	for _, tc := range []struct {
		status int
		kept   bool
	}{{http.StatusGone, false}, {http.StatusNotFound, false}, {http.StatusInternalServerError, true}} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			ctx := testCtx(t)
			ps := newPushService(t)
			ps.status = func(int) int { return tc.status }
			srv := pushServer(t, ps, nil)
			f := newFamily(t, ctx, srv)
			b := newBrowser(t, ps)
			subscribe(t, ctx, srv, f.parent, b)
			id := protocol.NewID()
			check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
			try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t)
			nextPush(t, ctx, ps, b, srv)
			if !tc.kept {
				eventually(t, ctx, "the gone subscription removed", func() bool {
					subs, err := srv.Registry().PushSubscriptions(f.creds.ParentID)
					return err == nil && len(subs) == 0 && srv.Metrics().PushSubscriptionsRemoved == 1
				})
				return
			}
			nextPush(t, ctx, ps, b, srv) // retried after the 500
			subs, err := srv.Registry().PushSubscriptions(f.creds.ParentID)
			if err != nil || len(subs) != 1 || srv.Metrics().PushSubscriptionsRemoved != 0 {
				t.Fatalf("after HTTP 500: %d subscriptions (%v), %d removed; want it kept", len(subs), err, srv.Metrics().PushSubscriptionsRemoved)
			}
		})
	}
}

// TestPushNeverDelaysRing: a push service that hangs, with one worker and
// a queue of one, so that the sending is stuck and full. Every ring still
// reaches the terminal (ringing) and the parent's open page (ring) while
// the push service holds the first request; what does not fit is dropped
// and counted.
func TestPushNeverDelaysRing(t *testing.T) {
	ctx := testCtx(t)
	ps := newPushService(t)
	ps.hold = make(chan struct{})
	srv := pushServer(t, ps, func(c *rendezvous.Config) {
		c.Push.Workers, c.Push.QueueSize, c.Push.Timeout = 1, 1, time.Minute
	})
	f := newFamily(t, ctx, srv)
	b := newBrowser(t, ps)
	subscribe(t, ctx, srv, f.parent, b)
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
			case <-ps.arrived: // the push service now holds the first push
			case <-ctx.Done():
				t.Fatal("the first push never reached the push service")
			}
		}
		check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonCancel}))
		try(f.parent.WaitFor(ctx, protocol.TypeHangup)).must(t)
	}
	select {
	case <-ps.got:
		t.Fatal("the push service answered while it was held")
	default:
	}
	if m := srv.Metrics(); m.PushDropped == 0 || m.PushSent != 0 {
		t.Fatalf("metrics %+v: want pushes dropped (queue full) and none sent yet", m)
	}
	close(ps.hold)
}

// TestNotifySettings: what the server takes and refuses on a parent's
// socket, and what it says back.
func TestNotifySettings(t *testing.T) {
	ctx := testCtx(t)
	ps := newPushService(t)
	srv := pushServer(t, ps, func(c *rendezvous.Config) { c.Limits.Notify.Burst = 100 })
	f := newFamily(t, ctx, srv)
	b := newBrowser(t, ps)

	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeNotifyStatus}))
	st := try(f.parent.Expect(ctx, protocol.TypeNotifyStatus)).must(t)
	if st.VAPIDKey != srv.VAPIDPublicKey() || st.SMS == nil || *st.SMS || st.PhoneHint != "" {
		t.Fatalf("notify_status = %+v, want the VAPID key, no SMS (no notifier)", st)
	}
	other := b.subscribe()
	other.Endpoint = "https://push.evil.example/x"
	check(t, f.parent.Send(ctx, other))
	try(f.parent.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t)
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypePhoneSet, Phone: "+8613812345678", Consent: boolp(true)}))
	try(f.parent.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t)
	check(t, f.parent.SendRaw(ctx, []byte(`{"type":"notify_status","vapid_key":"`+srv.VAPIDPublicKey()+`"}`)))
	try(f.parent.ExpectError(ctx, protocol.ErrCodeBadMessage)).must(t)
	check(t, f.terminal.Send(ctx, b.subscribe()))
	try(f.terminal.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t)

	subscribe(t, ctx, srv, f.parent, b)
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypePushUnsubscribe, Endpoint: b.endpoint}))
	if st := try(f.parent.Expect(ctx, protocol.TypeNotifyStatus)).must(t); st.Subscribed == nil || *st.Subscribed {
		t.Fatalf("notify_status after push_unsubscribe = %+v", st)
	}
	if subs, err := srv.Registry().PushSubscriptions(f.creds.ParentID); err != nil || len(subs) != 0 {
		t.Fatalf("%d subscriptions after push_unsubscribe (%v)", len(subs), err)
	}

	// The server keeps the newest five of a parent's browsers; the key
	// survives a restart.
	for range rendezvous.MaxPushSubscriptions + 2 {
		subscribe(t, ctx, srv, f.parent, newBrowser(t, ps))
	}
	if subs, err := srv.Registry().PushSubscriptions(f.creds.ParentID); err != nil || len(subs) != rendezvous.MaxPushSubscriptions {
		t.Fatalf("%d subscriptions kept (%v), want %d", len(subs), err, rendezvous.MaxPushSubscriptions)
	}
	key := srv.VAPIDPublicKey()
	check(t, srv.Close())
	again := rt.NewServer(t, func(c *rendezvous.Config) { *c = srv.Config })
	if again.VAPIDPublicKey() != key {
		t.Fatal("the VAPID key changed across a restart: every subscription would be dead")
	}
}

func boolp(b bool) *bool { return &b }
