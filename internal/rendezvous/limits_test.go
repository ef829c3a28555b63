package rendezvous_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// source dials the server from one loopback address. Linux routes all of
// 127.0.0.0/8 to lo, so each source is a distinct client IP to the server
// without any traffic leaving the machine (or the test's network namespace).
type source struct {
	ip     string
	client *http.Client
}

func newSource(ip string) *source {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	return &source{ip: ip, client: &http.Client{Transport: tr}}
}

// dial upgrades a WebSocket without logging in. status is the HTTP status
// of the answer (101 when the upgrade happened), 0 if there was none.
func (s *source) dial(ctx context.Context, wsURL string) (conn *websocket.Conn, status int, err error) {
	conn, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		HTTPClient: s.client, Subprotocols: []string{protocol.Subprotocol},
	})
	if resp != nil {
		status = resp.StatusCode
	}
	return conn, status, err
}

// mustDial dials and fails the test unless the answer is want (101: the
// socket is returned and closed at the end of the test).
func (s *source) mustDial(t *testing.T, ctx context.Context, wsURL string, want int) *websocket.Conn {
	t.Helper()
	conn, status, err := s.dial(ctx, wsURL)
	if status != want {
		t.Fatalf("dial from %s: status %d (%v), want %d", s.ip, status, err, want)
	}
	if conn != nil {
		t.Cleanup(func() { conn.CloseNow() })
	}
	return conn
}

// pairingPage logs in as a pairing page from s (a page has no credentials
// to build) and returns what the server sent after the challenge: up to the
// socket's close, or up to the answer to a probe pair_request sent after the
// welcome (left out), which proves nothing else was queued.
func (s *source) pairingPage(t *testing.T, ctx context.Context, wsURL string) []protocol.Message {
	t.Helper()
	conn := s.mustDial(t, ctx, wsURL, http.StatusSwitchingProtocols)
	read := func() (protocol.Message, error) {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return protocol.Message{}, err
		}
		return protocol.Decode(data)
	}
	if m, err := read(); err != nil || m.Type != protocol.TypeChallenge {
		t.Fatalf("page from %s: %+v, %v; want the challenge", s.ip, m, err)
	}
	hello, _ := protocol.Encode(protocol.Message{Type: protocol.TypeHello, Role: protocol.RolePairing})
	check(t, conn.Write(ctx, websocket.MessageText, hello))
	var got []protocol.Message
	for {
		m, err := read()
		if err != nil {
			return got // closed
		}
		got = append(got, m)
		if m.Type == protocol.TypeWelcome {
			// A page may send only pair_request; one for an unknown device
			// answers unknown_device, after anything queued before it.
			req, _ := protocol.Encode(protocol.Message{Type: protocol.TypePairRequest, DeviceID: protocol.NewID(), Nonce: "bm9uY2U", EphemeralKey: "RXA", Proof: "cHJvb2Y"})
			if conn.Write(ctx, websocket.MessageText, req) != nil {
				return got
			}
		}
		if m.Code == protocol.ErrCodeUnknownDevice {
			return got[:len(got)-1]
		}
	}
}

// noLimits is a configuration whose limits stay out of the way, for tests
// that exercise one limit at a time.
func noLimits(c *rendezvous.Config) {
	l := &c.Limits
	l.PendingMax, l.PendingPerIP, l.PendingPerPrefix = 100_000, 100_000, 100_000
	l.PairingMax, l.PairingPerIP, l.PairingPerPrefix = 100_000, 100_000, 100_000
	l.PairFailuresPerSource = 100_000
	for _, r := range []*rendezvous.Rate{&l.ConnectsPerIP, &l.LoginsPerIdentity, &l.SDP, &l.Candidates, &l.Rings, &l.CallLog, &l.Resumes} {
		*r = rendezvous.Rate{Burst: 100_000, PerMinute: 100_000}
	}
}

// never is a rate that does not refill, so a test's outcome cannot depend
// on how long it took.
func never(burst int) rendezvous.Rate { return rendezvous.Rate{Burst: burst} }

func TestPendingCaps(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		noLimits(c)
		c.Limits.PendingMax, c.Limits.PendingPerIP = 5, 2
	})
	a, b, c, d := newSource("127.0.0.2"), newSource("127.0.0.3"), newSource("127.0.0.4"), newSource("127.0.0.5")

	// Per address: two sockets that have not logged in, the third is 429.
	first := a.mustDial(t, ctx, srv.WSURL, http.StatusSwitchingProtocols)
	a.mustDial(t, ctx, srv.WSURL, http.StatusSwitchingProtocols)
	a.mustDial(t, ctx, srv.WSURL, http.StatusTooManyRequests)
	// Other addresses are not affected until all of them together hold five.
	b.mustDial(t, ctx, srv.WSURL, http.StatusSwitchingProtocols)
	b.mustDial(t, ctx, srv.WSURL, http.StatusSwitchingProtocols)
	c.mustDial(t, ctx, srv.WSURL, http.StatusSwitchingProtocols)
	d.mustDial(t, ctx, srv.WSURL, http.StatusServiceUnavailable)
	if st := srv.AdmissionStats(); st.Pending != 5 || st.RefusedPerIP != 1 || st.RefusedTotal != 1 || st.Admitted != 5 {
		t.Fatalf("stats = %+v, want 5 pending and admitted, 1 refused per IP, 1 in total", st)
	}

	// A socket that closes gives its slot back.
	first.CloseNow()
	waitFor(t, ctx, func() bool { return srv.AdmissionStats().Pending == 4 }, "the closed socket's slot to be released")
	d.mustDial(t, ctx, srv.WSURL, http.StatusSwitchingProtocols)
}

func TestLoginReleasesPendingSlot(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		noLimits(c)
		c.Limits.PendingMax, c.Limits.PendingPerIP = 10, 2
	})
	// Five terminals from one address log in one after another: each stops
	// counting against the per-address cap of two once it is logged in.
	for range 5 {
		key, _ := rt.NewKey()
		term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
		defer term.Close()
	}
	if st := srv.AdmissionStats(); st.Pending != 0 || st.Admitted != 5 {
		t.Fatalf("after five logins: %+v, want 0 pending", st)
	}
}

// TestPairingPool: a pairing page has no credentials, so its login moves it
// from the pending pool to the pairing pool, where it counts until it
// closes: pages cannot bypass the caps, and do not fill the pending pool
// that terminals and parents need.
func TestPairingPool(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		noLimits(c)
		c.Limits.PendingMax, c.Limits.PendingPerIP = 10, 2
		c.Limits.PairingMax, c.Limits.PairingPerIP = 3, 2
	})
	a, b := newSource("127.0.0.11"), newSource("127.0.0.12")
	pages := []*rt.Client{
		try(rt.DialPairing(ctx, srv.WSURL)).must(t),
		try(rt.DialPairing(ctx, srv.WSURL)).must(t),
	}
	for _, p := range pages {
		defer p.Close()
	}
	// A third page from the same address gets in (pending has room) but its
	// hello is refused: no welcome.
	third := try(rt.Dial(ctx, srv.WSURL)).must(t)
	defer third.Conn.CloseNow()
	check(t, third.Send(ctx, protocol.Message{Type: protocol.TypeHello, Role: protocol.RolePairing}))
	if e := try(third.ExpectError(ctx, protocol.ErrCodeRateLimited)).must(t); e.RefType != protocol.TypeHello {
		t.Fatalf("third page: %+v, want rate_limited for its hello", e)
	}
	if code := try(third.WaitClosed(ctx)).must(t); code != websocket.StatusTryAgainLater {
		t.Fatalf("third page closed with %v, want 1013", code)
	}
	// The two pages do not hold pending slots: two more sockets from their
	// address still get in, and a terminal logs in.
	key, _ := rt.NewKey()
	try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t).Close()
	// The total: one more page from another address fits, the next does not.
	if got := a.pairingPage(t, ctx, srv.WSURL); len(got) != 1 || got[0].Type != protocol.TypeWelcome {
		t.Fatalf("page from %s: %+v, want a welcome only", a.ip, got)
	}
	if got := b.pairingPage(t, ctx, srv.WSURL); len(got) != 1 || got[0].Code != protocol.ErrCodeRateLimited {
		t.Fatalf("page from %s over the total: %+v, want rate_limited and no welcome", b.ip, got)
	}
	st := srv.AdmissionStats()
	if st.Pairing != 3 || st.PairingRefused != 2 {
		t.Fatalf("stats = %+v, want 3 pages in the pairing pool and 2 refused", st)
	}
	waitFor(t, ctx, func() bool { return srv.AdmissionStats().Pending == 0 }, "the refused page's pending slot to be released")
}

func TestConnectRatePerIP(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		noLimits(c)
		c.Limits.ConnectsPerIP = never(3)
	})
	a, b := newSource("127.0.0.6"), newSource("127.0.0.7")
	for range 3 {
		a.mustDial(t, ctx, srv.WSURL, http.StatusSwitchingProtocols).CloseNow()
	}
	// Nothing is pending any more, but the address has used its connects.
	a.mustDial(t, ctx, srv.WSURL, http.StatusTooManyRequests)
	b.mustDial(t, ctx, srv.WSURL, http.StatusSwitchingProtocols)
	if st := srv.AdmissionStats(); st.RefusedRate != 1 {
		t.Fatalf("stats = %+v, want 1 refused by rate", st)
	}
}

// TestConnectRateCountsFailedLogins: a connection that logs in with a
// credential (a terminal's device certificate, a parent's token) gives its
// address's connect token back; one that proves nothing — a failed login, a
// pairing page, a socket that never logs in — keeps it spent. So six
// terminals log in in a row from an address whose whole budget is three
// connects, and after them the address still has its three for anything
// else.
func TestConnectRateCountsFailedLogins(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		noLimits(c)
		c.Limits.ConnectsPerIP = never(3)
	})
	a := newSource("127.0.0.8")

	for i := range 6 {
		key, _ := rt.NewKey()
		cert, err := rt.TestCA().Issue(&key.PublicKey)
		check(t, err)
		term, err := rt.DialTerminalVia(ctx, srv.WSURL, a.client, key, cert)
		if err != nil {
			t.Fatalf("terminal %d from one address: %v", i+1, err)
		}
		term.Close()
	}
	// A failed login (a certificate from no programme CA), a pairing page
	// and a bare socket each spend one of the three.
	key, _ := rt.NewKey()
	if _, err := rt.DialTerminalVia(ctx, srv.WSURL, a.client, key, nil); err == nil {
		t.Fatal("a terminal without a device certificate logged in")
	}
	if got := a.pairingPage(t, ctx, srv.WSURL); len(got) == 0 || got[0].Type != protocol.TypeWelcome {
		t.Fatalf("pairing page: %+v, want a welcome", got)
	}
	a.mustDial(t, ctx, srv.WSURL, http.StatusSwitchingProtocols).CloseNow()
	a.mustDial(t, ctx, srv.WSURL, http.StatusTooManyRequests)
	// Nor does a login from another address refill this one.
	key, _ = rt.NewKey()
	try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t).Close()
	a.mustDial(t, ctx, srv.WSURL, http.StatusTooManyRequests)
	if st := srv.AdmissionStats(); st.RefusedRate != 2 {
		t.Fatalf("stats = %+v, want 2 refused by rate", st)
	}
}

func TestLoginRatePerIdentity(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		noLimits(c)
		c.Limits.LoginsPerIdentity = never(3)
	})
	f := newFamily(t, ctx, srv) // one login each for the terminal and the parent

	// The terminal: two more logins (each replacing the last), then refused.
	for range 2 {
		f.terminal = try(rt.DialTerminal(ctx, srv.WSURL, f.key)).must(t)
		t.Cleanup(func() { f.terminal.Close() })
	}
	if _, err := rt.DialTerminal(ctx, srv.WSURL, f.key); !isRefusal(err, protocol.ErrCodeRateLimited) {
		t.Fatalf("fourth terminal login: %v, want rate_limited", err)
	}
	// The parent likewise.
	for range 2 {
		p, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
		check(t, err)
		defer p.Close()
	}
	if _, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token); !isRefusal(err, protocol.ErrCodeRateLimited) {
		t.Fatalf("fourth parent login: %v, want rate_limited", err)
	}
	// Another terminal is not affected, and the refused logins changed
	// nothing: the family's live sockets still reach each other.
	other, _ := rt.NewKey()
	try(rt.DialTerminal(ctx, srv.WSURL, other)).must(t).Close()
	check(t, f.terminal.Barrier(ctx))
	if st := srv.AdmissionStats(); st.LoginsRefused != 2 {
		t.Fatalf("stats = %+v, want 2 logins refused", st)
	}
}

// TestLoginRateCloses checks the close code a rate-limited login gets.
func TestLoginRateCloses(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		noLimits(c)
		c.Limits.LoginsPerIdentity = never(1)
	})
	key, _ := rt.NewKey()
	try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t).Close()
	c := try(rt.Dial(ctx, srv.WSURL)).must(t)
	defer c.Conn.CloseNow()
	hello := try(rt.TerminalHello(key, c.Challenge.Nonce)).must(t)
	check(t, c.Send(ctx, hello))
	if e := try(c.ExpectError(ctx, protocol.ErrCodeRateLimited)).must(t); e.RefType != protocol.TypeHello {
		t.Fatalf("error = %+v, want ref_type hello", e)
	}
	if code := try(c.WaitClosed(ctx)).must(t); code != websocket.StatusTryAgainLater {
		t.Fatalf("close status = %v, want 1013", code)
	}
}

func isRefusal(err error, code string) bool {
	return errors.Is(err, rt.ErrUnexpected) && strings.Contains(err.Error(), code)
}

func TestMessageRates(t *testing.T) {
	cand := &protocol.Candidate{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"}
	tests := []struct {
		name  string
		set   func(l *rendezvous.LimitsConfig, burst int)
		burst int
		// send sends one message of the limited kind on the family's
		// sockets; relayed is the type the other side then receives ("" if
		// the answer comes back to the sender).
		send func(ctx context.Context, f *family, call string) (from *rt.Client, to *rt.Client, m protocol.Message)
		// refusedAs: the sender gets this error for each message within
		// the burst, instead of to getting the message.
		refusedAs string
	}{
		{"offer", func(l *rendezvous.LimitsConfig, n int) { l.SDP = never(n) }, 2,
			func(ctx context.Context, f *family, call string) (*rt.Client, *rt.Client, protocol.Message) {
				return f.terminal, f.parent, protocol.Message{Type: protocol.TypeOffer, CallID: call, SDP: "v=0\r\n"}
			}, ""},
		{"answer", func(l *rendezvous.LimitsConfig, n int) { l.SDP = never(n) }, 3,
			func(ctx context.Context, f *family, call string) (*rt.Client, *rt.Client, protocol.Message) {
				return f.parent, f.terminal, protocol.Message{Type: protocol.TypeAnswer, CallID: call, SDP: "v=0\r\n"}
			}, ""},
		{"candidate", func(l *rendezvous.LimitsConfig, n int) { l.Candidates = never(n) }, protocol.MaxCandidates,
			func(ctx context.Context, f *family, call string) (*rt.Client, *rt.Client, protocol.Message) {
				return f.parent, f.terminal, protocol.Message{Type: protocol.TypeCandidate, CallID: call, Candidate: cand}
			}, ""},
		{"call_log", func(l *rendezvous.LimitsConfig, n int) { l.CallLog = never(n) }, 4,
			func(ctx context.Context, f *family, call string) (*rt.Client, *rt.Client, protocol.Message) {
				return f.parent, f.parent, protocol.Message{Type: protocol.TypeCallLog}
			}, ""},
		// Both sides are there: a resume is refused, and costs a token.
		{"resume", func(l *rendezvous.LimitsConfig, n int) { l.Resumes = never(n) }, 3,
			func(ctx context.Context, f *family, call string) (*rt.Client, *rt.Client, protocol.Message) {
				return f.parent, f.parent, protocol.Message{Type: protocol.TypeResume, CallID: call}
			}, protocol.ErrCodeUnknownCall},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			srv := rt.NewServer(t, func(c *rendezvous.Config) {
				noLimits(c)
				tc.set(&c.Limits, tc.burst)
				c.Limits.RateLimitedMax = 3
			})
			f := newFamily(t, ctx, srv)
			call := startCall(t, ctx, f)
			from, to, m := tc.send(ctx, f, call)
			for i := range tc.burst {
				check(t, from.Send(ctx, m))
				var err error
				if tc.refusedAs != "" {
					_, err = from.ExpectError(ctx, tc.refusedAs)
				} else {
					_, err = to.Expect(ctx, m.Type)
				}
				if err != nil {
					t.Fatalf("%s %d of a burst of %d: %v", m.Type, i+1, tc.burst, err)
				}
			}
			for i := range 3 {
				check(t, from.Send(ctx, m))
				e := try(from.ExpectError(ctx, protocol.ErrCodeRateLimited)).must(t)
				if e.RefType != m.Type || e.CallID != m.CallID {
					t.Fatalf("refusal %d = %+v, want ref_type %s call %q", i+1, e, m.Type, m.CallID)
				}
			}
			// The third refusal closed the socket; nothing over the limit
			// reached the other side.
			if code := try(from.WaitClosed(ctx)).must(t); code != websocket.StatusPolicyViolation {
				t.Fatalf("close status after 3 refusals = %v, want 1008", code)
			}
			if to != from {
				if m := try(to.Expect(ctx, protocol.TypeHangup)).must(t); m.Reason != protocol.ReasonPeerLeft {
					t.Fatalf("other side got hangup %s, want peer_left (and nothing over the limit before it)", m.Reason)
				}
			}
			if st := srv.AdmissionStats(); st.MessagesRefused != 3 {
				t.Fatalf("stats = %+v, want 3 messages refused", st)
			}
		})
	}
}

// TestRingRate: rings are limited per socket too; a refused ring starts no
// call and the terminal hears nothing.
func TestRingRate(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		noLimits(c)
		c.Limits.Rings = never(2)
	})
	f := newFamily(t, ctx, srv)
	for range 2 {
		id := protocol.NewID()
		check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
		try(f.parent.Expect(ctx, protocol.TypeRinging)).must(t)
		try(f.terminal.Expect(ctx, protocol.TypeRing)).must(t)
		check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonCancel}))
		try(f.terminal.Expect(ctx, protocol.TypeHangup)).must(t)
		try(f.parent.Expect(ctx, protocol.TypeCallLog)).must(t)
	}
	id := protocol.NewID()
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	if e := try(f.parent.ExpectError(ctx, protocol.ErrCodeRateLimited)).must(t); e.CallID != id || e.RefType != protocol.TypeRing {
		t.Fatalf("third ring: %+v, want rate_limited for it", e)
	}
	check(t, f.terminal.Barrier(ctx))
	if used := try(srv.Registry().HasCall(f.creds.ParentID, id)).must(t); used {
		t.Fatal("a rate-limited ring was logged")
	}
}

func TestLimitsConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(l *rendezvous.LimitsConfig)
	}{
		{"per IP above total", func(l *rendezvous.LimitsConfig) { l.PendingPerIP = l.PendingMax + 1 }},
		{"no pending", func(l *rendezvous.LimitsConfig) { l.PendingMax = 0 }},
		{"pairing per IP above total", func(l *rendezvous.LimitsConfig) { l.PairingPerIP = l.PairingMax + 1 }},
		{"per IP above per prefix", func(l *rendezvous.LimitsConfig) { l.PendingPerIP = l.PendingPerPrefix + 1 }},
		{"pairing per IP above per prefix", func(l *rendezvous.LimitsConfig) { l.PairingPerIP = l.PairingPerPrefix + 1 }},
		{"no pairing lifetime", func(l *rendezvous.LimitsConfig) { l.PairingLifetime = 0 }},
		{"pairing lifetime within the pair timeout", func(l *rendezvous.LimitsConfig) { l.PairingLifetime = 90 * time.Second }},
		{"no wrong proofs", func(l *rendezvous.LimitsConfig) { l.PairFailuresPerSource = 0 }},
		{"zero burst", func(l *rendezvous.LimitsConfig) { l.Rings.Burst = 0 }},
		{"negative rate", func(l *rendezvous.LimitsConfig) { l.SDP.PerMinute = -1 }},
		{"candidates below a call's", func(l *rendezvous.LimitsConfig) { l.Candidates.Burst = protocol.MaxCandidates - 1 }},
		{"no header timeout", func(l *rendezvous.LimitsConfig) { l.ReadHeaderTimeout = 0 }},
		{"tiny headers", func(l *rendezvous.LimitsConfig) { l.MaxHeaderBytes = 100 }},
		{"rate_limited_max 0", func(l *rendezvous.LimitsConfig) { l.RateLimitedMax = 0 }},
	}
	cfg := rendezvous.DefaultConfig()
	cfg.DeviceCAFiles = []string{rt.TestCAFile(t)} // the one setting with no default
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := rendezvous.DefaultConfig()
			tc.change(&c.Limits)
			if err := c.Validate(); !errors.Is(err, rendezvous.ErrBadConfig) || !strings.Contains(err.Error(), "limits") {
				t.Fatalf("Validate = %v, want ErrBadConfig naming the limit", err)
			}
		})
	}
}

// waitFor polls cond until it holds or ctx ends: for effects the server
// applies after a socket closes, which no message announces.
func waitFor(t *testing.T, ctx context.Context, cond func() bool, what string) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestPairRequestSourceTag: every pair_request the server relays names the
// page's network with an opaque tag (the terminal counts wrong proofs per
// tag): the same for two addresses of one /24, different for another /24,
// never the address itself, and a page's own "source" is replaced.
func TestPairRequestSourceTag(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	key, _ := rt.NewKey()
	term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
	defer term.Close()
	dev := term.Welcome.DeviceID
	tag := func(ip, claimed string) string {
		t.Helper()
		page := try(rt.DialVia(ctx, srv.WSURL, newSource(ip).client)).must(t)
		defer page.Close()
		check(t, page.LoginPairing(ctx))
		h := try(pairing.StartParent(pairing.NewSecret(), dev)).must(t)
		r := h.Request()
		check(t, page.Send(ctx, protocol.Message{Type: protocol.TypePairRequest, DeviceID: dev, Nonce: r.Nonce,
			EphemeralKey: r.EphemeralKey, Proof: r.Proof, Source: claimed}))
		req := try(term.WaitFor(ctx, protocol.TypePairRequest)).must(t)
		check(t, term.Send(ctx, protocol.Message{Type: protocol.TypePairReject, PairID: req.PairID, Reason: "not_pairable"}))
		try(page.ExpectError(ctx, protocol.ErrCodePairRejected)).must(t)
		return req.Source
	}
	a1, a2 := tag("127.0.0.1", ""), tag("127.0.0.9", "Zm9yZ2Vk")
	b := tag("127.0.3.1", "")
	if a1 == "" || a1 != a2 {
		t.Errorf("one network's requests tagged %q and %q, want one non-empty tag (a page's own claim replaced)", a1, a2)
	}
	if b == a1 {
		t.Errorf("two networks share tag %q", b)
	}
	for _, s := range []string{a1, b} {
		if strings.Contains(s, "127") {
			t.Errorf("tag %q shows the address", s)
		}
	}
}
