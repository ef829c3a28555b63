package rendezvous_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/coder/websocket"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// The attacks of the outside review's admission finding, replayed from
// loopback addresses: sockets that never say hello from many networks,
// forged X-Forwarded-For under the shipped example configuration, pairing
// sockets held open, and a stranger's wrong pairing proofs. Each test
// counts the real logins or pairings that still get through.

// parent is a stored pairing's parent login.
type parent struct{ id, token string }

// newParents stores n pairings directly (each with a device of its own) and
// returns their parents' logins.
func newParents(t *testing.T, srv *rt.Server, n int) []parent {
	t.Helper()
	out := make([]parent, n)
	now := time.Now()
	for i := range out {
		dev, pid, token := protocol.NewID(), protocol.NewID(), protocol.NewID()
		if _, err := srv.Registry().RegisterDevice(dev, []byte("key-"+dev), "", now); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(token))
		check(t, srv.Registry().CreatePairing(dev, pid, sum[:], "", now))
		out[i] = parent{pid, token}
	}
	return out
}

// login logs p in from src and reports whether it got its welcome.
func (p parent) login(ctx context.Context, wsURL string, src *source) error {
	c, err := rt.DialVia(ctx, wsURL, src.client)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.LoginParent(ctx, p.id, p.token)
	return err
}

// hold upgrades a socket from src that never says hello and keeps it open
// until the test ends; it reports the HTTP status.
func hold(t *testing.T, ctx context.Context, wsURL string, src *source, header http.Header) int {
	t.Helper()
	conn, resp, _ := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		HTTPClient: src.client, HTTPHeader: header, Subprotocols: []string{protocol.Subprotocol},
	})
	if conn != nil {
		t.Cleanup(func() { conn.CloseNow() })
	}
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// TestPendingStarvation: strangers from 60 networks hold every pending slot
// with sockets that never say hello (the review: 9 of 18 parent logins
// refused with 503). Parents on a network of their own still log in, every
// one of them, each displacing a stranger, while the strangers take their
// slots back between the logins; a newcomer from the busiest network is
// still refused (the control: the pool is really full).
func TestPendingStarvation(t *testing.T) {
	const strangers, rounds, parents, pool = 60, 5, 18, 200
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.HelloTimeout = time.Minute // the strangers' sockets outlive the test
		c.Limits.PendingMax = pool   // production per-address and per-prefix caps
		c.Limits.ConnectsPerIP = never(1000)
	})
	srcs := make([]*source, strangers)
	for i := range srcs {
		srcs[i] = newSource(fmt.Sprintf("127.0.%d.1", 10+i)) // a /24 each
	}
	for range rounds {
		for _, s := range srcs {
			hold(t, ctx, srv.WSURL, s, nil)
		}
	}
	if st := srv.AdmissionStats(); st.Pending != pool {
		t.Fatalf("after the strangers: %+v, want all %d pending slots taken", st, pool)
	}
	ps := newParents(t, srv, parents)
	admitted := 0
	for i, p := range ps {
		// Parents behind one carrier's NAT: one /24 for all of them.
		if err := p.login(ctx, srv.WSURL, newSource(fmt.Sprintf("127.0.200.%d", i+1))); err != nil {
			t.Logf("parent %d: %v", i, err)
		} else {
			admitted++
		}
		for _, s := range srcs[i%6*10 : i%6*10+10] { // the strangers refill
			hold(t, ctx, srv.WSURL, s, nil)
		}
	}
	st := srv.AdmissionStats()
	if admitted != parents {
		t.Errorf("real parent logins admitted: %d/%d while %d strangers held the pending pool; want all", admitted, parents, pool)
	}
	if st.Pending != pool {
		t.Errorf("pending after the parents: %d, want the pool full again (%d)", st.Pending, pool)
	}
	// Control: a newcomer from a network that already holds the most is
	// refused, not let in past the cap.
	busiest := newSource("127.0.10.2")
	refused := false
	for range 10 {
		if hold(t, ctx, srv.WSURL, busiest, nil) == http.StatusServiceUnavailable {
			refused = true
			break
		}
	}
	if !refused {
		t.Errorf("a newcomer from the busiest network was never refused: %+v", srv.AdmissionStats())
	}
	t.Logf("real parent logins admitted: %d/%d while %d strangers from %d networks held the pending pool; stats %+v", admitted, parents, pool, strangers, srv.AdmissionStats())
}

// exampleConfig is cmd/rendezvous's shipped example, decoded as the server
// binary decodes it, with what a loopback test needs on top: a data
// directory, the test CA, no TURN listeners.
func exampleConfig(t *testing.T) rendezvous.Config {
	t.Helper()
	cfg := rendezvous.DefaultConfig()
	md, err := toml.DecodeFile("../../cmd/rendezvous/rendezvous.example.toml", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Fatalf("example has unknown keys %v", und)
	}
	cfg.DataDir = t.TempDir()
	cfg.DeviceCAFiles = []string{rt.TestCAFile(t)}
	cfg.TURN.Listen, cfg.TURN.TCPListen, cfg.TURN.TLSListen = "", "", ""
	return cfg
}

// TestForgedForwardedForExample: one host sends X-Forwarded-For headers it
// made up, against the shipped example configuration (the review: 42 of 42
// real logins refused, as every made-up address got a budget of its own).
// The header must count for nothing: the host gets its one address's
// pending slots, and every real parent logs in.
func TestForgedForwardedForExample(t *testing.T) {
	const forged, parents, pool = 80, 42, 60
	ctx := testCtx(t)
	ex := exampleConfig(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		*c = ex
		c.HelloTimeout = time.Minute
		c.Limits.PendingMax = pool // scaled down from 1,000 to keep the test small
	})
	attacker := newSource("127.0.0.1")
	upgraded := 0
	for i := range forged {
		h := http.Header{"X-Forwarded-For": {fmt.Sprintf("203.0.%d.%d", 113+i/250, i%250+1)}}
		if hold(t, ctx, srv.WSURL, attacker, h) == http.StatusSwitchingProtocols {
			upgraded++
		}
	}
	if want := ex.Limits.PendingPerIP; upgraded != want {
		t.Errorf("sockets upgraded with %d forged X-Forwarded-For headers: %d, want the one address's %d", forged, upgraded, want)
	}
	admitted := 0
	for i, p := range newParents(t, srv, parents) {
		if err := p.login(ctx, srv.WSURL, newSource(fmt.Sprintf("127.0.3.%d", i+1))); err == nil {
			admitted++
		}
	}
	if admitted != parents {
		t.Errorf("real parent logins admitted: %d/%d after %d forged headers; want all", admitted, parents, forged)
	}
	t.Logf("forged X-Forwarded-For: %d sockets for %d made-up addresses; real parent logins %d/%d", upgraded, forged, admitted, parents)
}

// pairingPage logs a page in from src and reports whether it got its
// welcome (the page is closed at the end of the test).
func pairingPageFrom(t *testing.T, ctx context.Context, wsURL string, src *source) (*rt.Client, error) {
	t.Helper()
	c, err := rt.DialVia(ctx, wsURL, src.client)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LoginPairing(ctx)
}

// TestPairingPoolStarvation: strangers from 45 networks hold every slot of
// the pairing pool (the review: 0 of 15 real pairing pages admitted, with
// no time limit). Real pairings from one network still complete, every
// one, each page displacing a stranger's while the strangers take the
// slots back between them; the pool stays at its cap.
func TestPairingPoolStarvation(t *testing.T) {
	const strangers, pairings, pool = 45, 15, 45
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		noLimits(c)
		c.Limits.PairingMax, c.Limits.PairingPerIP, c.Limits.PairingPerPrefix = pool, 5, 20
	})
	for round := range 2 {
		for i := range strangers {
			pairingPageFrom(t, ctx, srv.WSURL, newSource(fmt.Sprintf("127.0.%d.%d", 30+i, round+1)))
		}
	}
	if st := srv.AdmissionStats(); st.Pairing != pool {
		t.Fatalf("after the strangers: %+v, want the pairing pool full (%d)", st, pool)
	}
	// settled waits for the server to have handled the closes the test's
	// clients only started: a page the test closed gives its slot back, and
	// one refused ("too many pairing pages") leaves the pending pool, once
	// the server has its socket's close, after the client saw the refusal.
	settled := func(what string, ok func(rendezvous.AdmissionStats) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for st := srv.AdmissionStats(); !ok(st); st = srv.AdmissionStats() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: admission %+v after 10 s", what, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	done := 0
	for i := range pairings {
		key, _ := rt.NewKey()
		term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
		defer term.Close()
		secret := pairing.NewSecret()
		page, err := pairingPageFrom(t, ctx, srv.WSURL, newSource(fmt.Sprintf("127.0.201.%d", i+1)))
		if err != nil {
			t.Logf("pairing page %d: %v", i, err)
			continue
		}
		pp := try(page.RequestPair(ctx, term.Welcome.DeviceID, secret)).must(t)
		errc := make(chan error, 1)
		go func() { _, _, err := term.AnswerPair(ctx, secret); errc <- err }()
		_, err = pp.Finish(ctx)
		if terr := <-errc; err == nil && terr == nil {
			done++
		} else {
			t.Logf("pairing %d: page %v, terminal %v", i, err, terr)
		}
		page.Close() // the real page goes on as a parent
		settled("the real page's close", func(st rendezvous.AdmissionStats) bool { return st.Pairing == pool-1 })
		for j := range 2 { // the strangers refill
			pairingPageFrom(t, ctx, srv.WSURL, newSource(fmt.Sprintf("127.0.%d.%d", 30+(2*i+j)%strangers, 3+i)))
		}
	}
	settled("the strangers' refused pages", func(st rendezvous.AdmissionStats) bool { return st.Pending == 0 })
	st := srv.AdmissionStats()
	if done != pairings {
		t.Errorf("real pairings completed: %d/%d while %d strangers held the pairing pool; want all", done, pairings, pool)
	}
	if st.Pairing != pool || st.PairingEvicted < pairings {
		t.Errorf("pairing pool at %d after the pairings, %d pages displaced; want it full (%d) again and at least %d displaced", st.Pairing, st.PairingEvicted, pool, pairings)
	}
	t.Logf("real pairings completed: %d/%d while strangers from %d networks held all %d pairing slots; stats %+v", done, pairings, strangers, pool, st)
}

// TestPairingLifetime: a pairing page that stays is told and closed (1013)
// once pairing_lifetime is up, and gives its slot back; a terminal logged
// in as long is not touched (the control).
func TestPairingLifetime(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.PairTimeout = time.Second
		c.Limits.PairingLifetime = 2 * time.Second
	})
	key, _ := rt.NewKey()
	term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
	defer term.Close()
	page := try(rt.DialPairing(ctx, srv.WSURL)).must(t)
	defer page.Close()
	if e := try(page.ExpectError(ctx, protocol.ErrCodeRateLimited)).must(t); e.Text == "" {
		t.Errorf("lifetime error without a text: %+v", e)
	}
	if code := try(page.WaitClosed(ctx)).must(t); code != websocket.StatusTryAgainLater {
		t.Fatalf("page closed with %v, want 1013", code)
	}
	waitFor(t, ctx, func() bool { return srv.AdmissionStats().Pairing == 0 }, "the page's pairing slot to be released")
	check(t, term.Barrier(ctx)) // the terminal is still connected
}

// windowTerminal plays a terminal's side of pairing with the pairing
// window of internal/terminal as it was before it counted per source: 20
// wrong proofs from anyone close it,
// after which every request is refused "not_pairable". It pairs with the
// first request that carries secret's proof while the window is open and
// reports the wrong proofs it saw.
func windowTerminal(ctx context.Context, term *rt.Client, secret pairing.Secret) (wrong int, err error) {
	const maxFailures = 20 // terminal.DefaultPairWindowFailures
	dev := term.Welcome.DeviceID
	for {
		req, err := term.WaitFor(ctx, protocol.TypePairRequest)
		if err != nil {
			return wrong, err
		}
		reject := func(reason string) error {
			return term.Send(ctx, protocol.Message{Type: protocol.TypePairReject, PairID: req.PairID, Reason: reason})
		}
		r := pairing.Request{DeviceID: req.DeviceID, Nonce: req.Nonce, EphemeralKey: req.EphemeralKey, Proof: req.Proof}
		switch {
		case wrong >= maxFailures:
			err = reject("not_pairable")
		case pairing.VerifyRequest(secret, dev, r) != nil:
			wrong++
			err = reject("bad_secret")
		default:
			h, acc, err := pairing.AcceptRequest(secret, term.Key, rt.TestFingerprint, req.PairID, r)
			if err != nil {
				return wrong, err
			}
			err = term.Send(ctx, protocol.Message{Type: protocol.TypePairAccept, PairID: req.PairID, EphemeralKey: acc.EphemeralKey,
				PublicKey: acc.PublicKey, Fingerprint: acc.Fingerprint, Signature: acc.Signature, Proof: acc.Proof})
			if err != nil {
				return wrong, err
			}
			conf, err := term.WaitFor(ctx, protocol.TypePairConfirm)
			if err != nil {
				return wrong, err
			}
			if _, err := h.VerifyConfirm(pairing.Confirm{PublicKey: conf.PublicKey, Signature: conf.Signature, Proof: conf.Proof}); err != nil {
				return wrong, err
			}
			if err := term.Send(ctx, protocol.Message{Type: protocol.TypePairComplete, PairID: req.PairID}); err != nil {
				return wrong, err
			}
			_, err = term.WaitFor(ctx, protocol.TypePaired)
			return wrong, err
		}
		if err != nil {
			return wrong, err
		}
	}
}

// TestStrangerCannotSpendPairWindow: a stranger who knows only a device ID
// sends wrong proofs from 12 addresses in 3 networks, 120 in all, fast
// (the per-terminal request rate is out of the way; the review needed
// about 3.5 minutes at the default). The server stops relaying a network's
// requests for that terminal after its third wrong proof, so the terminal
// sees 9 and its window stays open; the real parent then pairs.
func TestStrangerCannotSpendPairWindow(t *testing.T) {
	const networks, addrsPer, triesPer = 3, 4, 10
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.PairRequestsPerMinutePerDevice, c.PairRequestsPerMinutePerIP = 10_000, 10_000
	})
	key, _ := rt.NewKey()
	term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
	defer term.Close()
	dev := term.Welcome.DeviceID
	secret := pairing.NewSecret()
	var wrong int
	var termErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); wrong, termErr = windowTerminal(ctx, term, secret) }()

	answers := map[string]int{}
	for n := range networks {
		for a := range addrsPer {
			page := try(pairingPageFrom(t, ctx, srv.WSURL, newSource(fmt.Sprintf("127.0.%d.%d", 60+n, a+1)))).must(t)
			for range triesPer {
				try(page.RequestPair(ctx, dev, pairing.NewSecret())).must(t)
				e := try(page.Expect(ctx, protocol.TypeError)).must(t)
				answers[e.Code]++
			}
		}
	}
	parentPage := try(pairingPageFrom(t, ctx, srv.WSURL, newSource("127.0.201.1"))).must(t)
	creds, err := try(parentPage.RequestPair(ctx, dev, secret)).must(t).Finish(ctx)
	if err != nil {
		t.Errorf("the real parent's pairing after %d wrong proofs from %d networks: %v", networks*addrsPer*triesPer, networks, err)
		term.Close() // ends windowTerminal
	}
	wg.Wait()
	if err == nil && termErr != nil {
		t.Errorf("terminal side: %v", termErr)
	}
	if limit := networks * rendezvous.DefaultLimits().PairFailuresPerSource; wrong > limit {
		t.Errorf("wrong proofs relayed to the terminal: %d, want at most %d (%d per network)", wrong, limit, limit/networks)
	}
	if answers[protocol.ErrCodeRateLimited] == 0 {
		t.Errorf("the stranger was never refused by the server: %v", answers)
	}
	t.Logf("stranger's wrong proofs: %d sent, %d relayed to the terminal, answers %v; real parent paired: %v (%s)", networks*addrsPer*triesPer, wrong, answers, err == nil, creds.ParentID)
}

// TestHSTS: answers over TLS carry Strict-Transport-Security for a year;
// over plain http (a TLS proxy in front does its own) they do not.
func TestHSTS(t *testing.T) {
	srv := rt.NewServer(t, nil)
	h := srv.Handler()
	for _, tc := range []struct{ url, want string }{
		{"https://tuanju.example.org/healthz", "max-age=31536000"},
		{"https://tuanju.example.org/", "max-age=31536000"},
		{"http://tuanju.example.org/healthz", ""},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.url, nil))
		if got := w.Header().Get("Strict-Transport-Security"); got != tc.want {
			t.Errorf("GET %s: Strict-Transport-Security %q, want %q", tc.url, got, tc.want)
		}
	}
}

// TestRefusedPairingPageLeavesAtOnce: a pairing page refused because the
// pool is full has left the pending pool by the time it hears so, as a
// failed login has; until 2026-12-07 it held its slot until the server had
// its close (TestPairingPoolStarvation had to wait for that).
func TestRefusedPairingPageLeavesAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		noLimits(c)
		c.Limits.PairingMax, c.Limits.PairingPerIP, c.Limits.PairingPerPrefix = 1, 1, 1
	})
	if _, err := pairingPageFrom(t, ctx, srv.WSURL, newSource("127.0.40.1")); err != nil {
		t.Fatalf("the first page: %v", err)
	}
	for i := range 5 {
		_, err := pairingPageFrom(t, ctx, srv.WSURL, newSource("127.0.40.1"))
		if err == nil {
			t.Fatalf("page %d was let into a full pool: %+v", i, srv.AdmissionStats())
		}
		if st := srv.AdmissionStats(); st.Pending != 0 || st.Pairing != 1 || st.PairingRefused != int64(i+1) {
			t.Fatalf("page %d refused (%v): admission %+v, want none pending, the first page's slot, %d refused", i, err, st, i+1)
		}
	}
}
