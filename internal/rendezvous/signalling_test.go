package rendezvous_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// result lets a test unwrap (value, error) in one expression: try(f()).must(t).
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// family is a terminal paired with a parent, both connected.
type family struct {
	key      *ecdsa.PrivateKey
	secret   pairing.Secret
	terminal *rt.Client
	parent   *rt.Client
	creds    rt.Credentials
}

func newFamily(t *testing.T, ctx context.Context, srv *rt.Server) *family {
	t.Helper()
	f := &family{secret: pairing.NewSecret()}
	f.key, _ = rt.NewKey()
	f.terminal = try(rt.DialTerminal(ctx, srv.WSURL, f.key)).must(t)
	t.Cleanup(func() { f.terminal.Close() })
	f.creds = try(rt.Pair(ctx, srv.WSURL, f.terminal, f.secret)).must(t)
	p, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	p.Key = f.creds.Key
	f.parent = p
	t.Cleanup(func() { p.Close() })
	pres := try(f.terminal.Expect(ctx, protocol.TypePresence)).must(t)
	if !*pres.PeerOnline {
		t.Fatal("terminal got presence offline when its parent connected")
	}
	return f
}

func TestTerminalLogin(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	key, id := rt.NewKey()
	c := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
	defer c.Close()
	w := c.Welcome
	if w.Role != protocol.RoleTerminal || w.DeviceID != id || w.Paired == nil || *w.Paired || *w.PeerOnline {
		t.Fatalf("welcome = %+v, want an unpaired terminal %s", w, id)
	}
	if _, err := srv.Registry().Device(id); err != nil {
		t.Fatalf("first login did not register the device: %v", err)
	}
}

func TestLoginFailures(t *testing.T) {
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.HelloTimeout = 300 * time.Millisecond })
	key, _ := rt.NewKey()
	other, _ := rt.NewKey()
	cert, otherCert := srv.IssueDevice(t, key), srv.IssueDevice(t, other)
	tests := []struct {
		name  string
		hello func(t *testing.T, nonce string) []byte // nil: send nothing
	}{
		{"wrong signature", func(t *testing.T, nonce string) []byte {
			m := try(protocol.SignLogin(key, cert, "not-the-nonce", "x")).must(t)
			return try(protocol.Encode(m)).must(t)
		}},
		{"id not matching key", func(t *testing.T, nonce string) []byte {
			m := try(protocol.SignLogin(key, cert, nonce, "x")).must(t)
			m.DeviceID = rt.DeviceID(other)
			return try(protocol.Encode(m)).must(t)
		}},
		{"signature by another key", func(t *testing.T, nonce string) []byte {
			m := try(protocol.SignLogin(key, cert, nonce, "x")).must(t)
			o := try(protocol.SignLogin(other, otherCert, nonce, "x")).must(t)
			m.Signature = o.Signature
			return try(protocol.Encode(m)).must(t)
		}},
		{"parent with bad token", func(t *testing.T, nonce string) []byte {
			return try(protocol.Encode(protocol.Message{Type: protocol.TypeHello, Role: protocol.RoleParent, ParentID: protocol.NewID(), Token: protocol.NewNonce()})).must(t)
		}},
		{"not a hello", func(t *testing.T, nonce string) []byte {
			return try(protocol.Encode(protocol.Message{Type: protocol.TypeCallLog})).must(t)
		}},
		{"malformed", func(t *testing.T, nonce string) []byte { return []byte(`{"type":"hello","role":"terminal",`) }},
		{"no hello within deadline", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			c := try(rt.Dial(ctx, srv.WSURL)).must(t)
			defer c.Conn.CloseNow()
			if tc.hello != nil {
				check(t, c.SendRaw(ctx, tc.hello(t, c.Challenge.Nonce)))
			}
			e := try(c.ExpectError(ctx, protocol.ErrCodeAuthFailed)).must(t)
			t.Logf("auth_failed: %s", e.Text)
			if code := try(c.WaitClosed(ctx)).must(t); code != rendezvous.CloseAuthFailed {
				t.Fatalf("close status = %v, want %v", code, rendezvous.CloseAuthFailed)
			}
		})
	}
}

func TestParentBadToken(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	wrong := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	_, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, wrong)
	if err == nil || !strings.Contains(err.Error(), protocol.ErrCodeAuthFailed) {
		t.Fatalf("parent login with a wrong token: err = %v, want auth_failed", err)
	}
	// The right token still works: failure changed nothing.
	p, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	p.Close()
}

func TestPairing(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	w := f.parent.Welcome
	if w.ParentID != f.creds.ParentID || w.DeviceID != f.creds.DeviceID || !*w.Paired || !*w.PeerOnline {
		t.Fatalf("parent welcome = %+v", w)
	}
	if got := try(srv.Registry().ParentOf(f.creds.DeviceID)).must(t); got != f.creds.ParentID {
		t.Fatalf("stored pairing = %s, want %s", got, f.creds.ParentID)
	}
	p := try(srv.Registry().Parent(f.creds.ParentID)).must(t)
	if strings.Contains(string(p.TokenHash), f.creds.Token) || len(p.TokenHash) != 32 {
		t.Fatalf("store keeps %d bytes for the token, want its 32-byte SHA-256", len(p.TokenHash))
	}
	// A terminal reconnecting after pairing is told it is paired.
	f.terminal.Close()
	term := try(rt.DialTerminal(ctx, srv.WSURL, f.key)).must(t)
	defer term.Close()
	if !*term.Welcome.Paired || !*term.Welcome.PeerOnline {
		t.Fatalf("paired terminal welcome = %+v", term.Welcome)
	}
}

func TestPairingWrongProof(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	key, dev := rt.NewKey()
	term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
	defer term.Close()
	page := try(rt.DialPairing(ctx, srv.WSURL)).must(t)
	defer page.Close()
	check(t, page.Send(ctx, pairRequest(t, pairing.NewSecret(), dev)))
	if _, _, err := term.AnswerPair(ctx, pairing.NewSecret()); err == nil {
		t.Fatal("terminal accepted a proof made with another secret")
	}
	e := try(page.ExpectError(ctx, protocol.ErrCodePairRejected)).must(t)
	if e.Text != "bad_secret" || e.PairID == "" {
		t.Fatalf("page error = %+v, want pair_rejected bad_secret with pair_id", e)
	}
	if _, err := srv.Registry().ParentOf(dev); err == nil {
		t.Fatal("a rejected pairing was stored")
	}
}

func TestPairingSecondParent(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	page := try(rt.DialPairing(ctx, srv.WSURL)).must(t)
	defer page.Close()
	check(t, page.Send(ctx, pairRequest(t, f.secret, f.creds.DeviceID))) // even with the right secret
	try(page.ExpectError(ctx, protocol.ErrCodeAlreadyPaired)).must(t)
	check(t, f.terminal.Barrier(ctx)) // the terminal never saw the request
	if got := try(srv.Registry().ParentOf(f.creds.DeviceID)).must(t); got != f.creds.ParentID {
		t.Fatalf("pairing changed to %s", got)
	}
}

func TestPairingUnknownAndOffline(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	key, dev := rt.NewKey()
	term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t) // registers
	term.Close()
	page := try(rt.DialPairing(ctx, srv.WSURL)).must(t)
	defer page.Close()
	for _, tc := range []struct{ dev, code string }{
		{protocol.NewID(), protocol.ErrCodeUnknownDevice},
		{dev, protocol.ErrCodeDeviceOffline},
	} {
		check(t, page.Send(ctx, pairRequest(t, pairing.NewSecret(), tc.dev)))
		try(page.ExpectError(ctx, tc.code)).must(t)
	}
}

func TestPairingRateLimits(t *testing.T) {
	tests := []struct {
		name      string
		perDevice int
		perIP     int
		sameDev   bool
	}{
		{"per device", 5, 1000, true},
		{"per ip", 1000, 5, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			srv := rt.NewServer(t, func(c *rendezvous.Config) {
				c.PairRequestsPerMinutePerDevice, c.PairRequestsPerMinutePerIP = tc.perDevice, tc.perIP
				c.Limits.PairFailuresPerSource = 1000 // TestStrangerCannotSpendPairWindow
			})
			key, dev := rt.NewKey()
			term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
			defer term.Close()
			page := try(rt.DialPairing(ctx, srv.WSURL)).must(t)
			defer page.Close()
			if tc.sameDev {
				// The terminal rejects every request (wrong secret), so the
				// next one is not refused as "already waiting".
				go func() {
					for {
						_, _, err := term.AnswerPair(ctx, pairing.NewSecret())
						if !errors.Is(err, rt.ErrUnexpected) {
							return
						}
					}
				}()
			}
			allowedCount := 0
			for range 8 {
				target := dev
				if !tc.sameDev {
					target = protocol.NewID() // unknown devices still count against the address
				}
				check(t, page.Send(ctx, pairRequest(t, pairing.NewSecret(), target)))
				e := try(page.Expect(ctx, protocol.TypeError)).must(t)
				switch e.Code {
				case protocol.ErrCodeRateLimited:
				case protocol.ErrCodePairRejected, protocol.ErrCodeUnknownDevice:
					allowedCount++
				default:
					t.Fatalf("unexpected error %s: %s", e.Code, e.Text)
				}
			}
			if allowedCount != 5 {
				t.Fatalf("%d of 8 pairing attempts got through, want 5", allowedCount)
			}
		})
	}
}

func TestPresence(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	// A second tab does not change presence; closing one of two does not either.
	tab, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	tab.Close()
	check(t, f.terminal.Barrier(ctx))
	f.parent.Close()
	if p := try(f.terminal.Expect(ctx, protocol.TypePresence)).must(t); *p.PeerOnline {
		t.Fatal("terminal was told its parent is online when the last tab closed")
	}
	p, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	defer p.Close()
	try(f.terminal.Expect(ctx, protocol.TypePresence)).must(t)
	f.terminal.Close()
	if m := try(p.Expect(ctx, protocol.TypePresence)).must(t); *m.PeerOnline {
		t.Fatal("parent was told the terminal is online when it left")
	}
	term := try(rt.DialTerminal(ctx, srv.WSURL, f.key)).must(t)
	defer term.Close()
	if m := try(p.Expect(ctx, protocol.TypePresence)).must(t); !*m.PeerOnline {
		t.Fatal("parent was not told the terminal came back")
	}
}

func TestTerminalReplaced(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	second := try(rt.DialTerminal(ctx, srv.WSURL, f.key)).must(t)
	defer second.Close()
	if code := try(f.terminal.WaitClosed(ctx)).must(t); code != rendezvous.CloseReplaced {
		t.Fatalf("old terminal socket closed with %v, want %v", code, rendezvous.CloseReplaced)
	}
	// The parent reaches the new socket.
	id := protocol.NewID()
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	if r := try(second.Expect(ctx, protocol.TypeRing)).must(t); r.CallID != id {
		t.Fatalf("ring for %s, want %s", r.CallID, id)
	}
}

// call rings from one side, accepts on the other and checks the relay of
// offer, answer and candidates both ways.
func TestCalls(t *testing.T) {
	for _, fromTerminal := range []bool{true, false} {
		name := map[bool]string{true: "terminal rings parent", false: "parent rings terminal"}[fromTerminal]
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			srv := rt.NewServer(t, nil)
			f := newFamily(t, ctx, srv)
			caller, callee := f.terminal, f.parent
			if !fromTerminal {
				caller, callee = f.parent, f.terminal
			}
			id := protocol.NewID()
			sent := protocol.Message{Type: protocol.TypeRing, CallID: id}
			check(t, caller.Sign(&sent))
			check(t, caller.Send(ctx, sent))
			ringing := try(caller.Expect(ctx, protocol.TypeRinging)).must(t)
			ring := try(callee.Expect(ctx, protocol.TypeRing)).must(t)
			// The caller's signature reaches the callee unchanged; the
			// server cannot make one of its own.
			if ring.Signature != sent.Signature || ring.SignedAt != sent.SignedAt || ring.Nonce != sent.Nonce || ringing.Signature != "" {
				t.Fatalf("ring carries signature %q at %q nonce %q, sent %q at %q nonce %q; ringing carries %q", ring.Signature, ring.SignedAt, ring.Nonce, sent.Signature, sent.SignedAt, sent.Nonce, ringing.Signature)
			}
			for _, m := range []protocol.Message{ringing, ring} {
				if m.CallID != id || len(m.ICEServers) != 1 || m.ICEServers[0].Username == "" || m.ICETransportPolicy != "all" {
					t.Fatalf("%s = %+v, want call %s with TURN credentials", m.Type, m, id)
				}
				if want := ":" + id + "/" + m.Type + "/udp"; !strings.HasSuffix(m.ICEServers[0].Username, want) {
					t.Fatalf("TURN username %q is not <expiry>:<call_id>/<type>/udp", m.ICEServers[0].Username)
				}
			}
			check(t, callee.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
			if m := try(caller.Expect(ctx, protocol.TypeAccept)).must(t); m.Signature == "" {
				t.Fatal("accept relayed without the callee's signature")
			}

			sdp := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:" + rt.TestFingerprint + "\r\n"
			check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp}))
			if m := try(f.parent.Expect(ctx, protocol.TypeOffer)).must(t); m.SDP != sdp {
				t.Fatalf("offer relayed as %q", m.SDP)
			}
			check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeAnswer, CallID: id, SDP: sdp + "s=answer\r\n"}))
			if m := try(f.terminal.Expect(ctx, protocol.TypeAnswer)).must(t); m.SDP != sdp+"s=answer\r\n" {
				t.Fatalf("answer relayed as %q", m.SDP)
			}
			for _, pair := range [][2]*rt.Client{{f.terminal, f.parent}, {f.parent, f.terminal}} {
				cand := &protocol.Candidate{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"}
				check(t, pair[0].Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
				if m := try(pair[1].Expect(ctx, protocol.TypeCandidate)).must(t); m.Candidate.Candidate != cand.Candidate {
					t.Fatalf("candidate relayed as %+v", m.Candidate)
				}
			}
			// The parent may not offer; the terminal may not answer.
			check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp}))
			try(f.parent.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t)

			check(t, caller.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonHangup}))
			if m := try(callee.Expect(ctx, protocol.TypeHangup)).must(t); m.Reason != protocol.ReasonHangup {
				t.Fatalf("hangup relayed with reason %s", m.Reason)
			}
			log := try(f.parent.WaitFor(ctx, protocol.TypeCallLog)).must(t)
			if len(log.Calls) != 1 || log.Calls[0].CallID != id || log.Calls[0].Outcome != protocol.OutcomeAnswered ||
				log.Calls[0].AnsweredAt.IsZero() || log.Calls[0].EndedAt.IsZero() {
				t.Fatalf("call log after the call = %+v", log.Calls)
			}
			// The call is over: nothing more is relayed.
			check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp}))
			try(f.terminal.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
		})
	}
}

func TestCandidateLimit(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	id := startCall(t, ctx, f)
	cand := &protocol.Candidate{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"}
	for range protocol.MaxCandidates {
		check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
	}
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
	try(f.terminal.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t)
	for i := range protocol.MaxCandidates {
		if _, err := f.parent.Expect(ctx, protocol.TypeCandidate); err != nil {
			t.Fatalf("candidate %d: %v", i, err)
		}
	}
	check(t, f.parent.Barrier(ctx)) // the 51st was not relayed
}

// startCall rings the parent from the terminal and accepts.
func startCall(t *testing.T, ctx context.Context, f *family) string {
	t.Helper()
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t)
	try(f.parent.Expect(ctx, protocol.TypeRing)).must(t)
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
	try(f.terminal.Expect(ctx, protocol.TypeAccept)).must(t)
	return id
}

func TestAnsweredElsewhere(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.ResumeGrace = 200 * time.Millisecond })
	f := newFamily(t, ctx, srv)
	tab, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	defer tab.Close()
	tab.Key = f.creds.Key // another tab of the same parent: the same key
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	try(f.parent.Expect(ctx, protocol.TypeRing)).must(t)
	try(tab.Expect(ctx, protocol.TypeRing)).must(t)
	check(t, tab.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
	if m := try(f.parent.Expect(ctx, protocol.TypeHangup)).must(t); m.Reason != protocol.ReasonAnsweredElsewhere {
		t.Fatalf("other tab got hangup %s", m.Reason)
	}
	// The other tab is not bound to the call.
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeAnswer, CallID: id, SDP: "v=0\r\n"}))
	try(f.parent.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
	// The accepting tab leaving (and not resuming within the grace) ends
	// the call for the terminal.
	try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t)
	try(f.terminal.Expect(ctx, protocol.TypeAccept)).must(t)
	tab.Close()
	if m := try(f.terminal.Expect(ctx, protocol.TypeHangup)).must(t); m.Reason != protocol.ReasonPeerLeft {
		t.Fatalf("terminal got hangup %s, want peer_left", m.Reason)
	}
}

// TestPreparedCall: a tab rung by the terminal may prepare the call
// (docs/protocol.md, "Preparing a call"): its prepare reaches the terminal,
// and offer, answer and candidates then go between the terminal and that
// tab alone while the call rings — no other tab gets them or may send them,
// a second prepare is refused, and a thief's (the parent's login, another
// key) is refused without taking the call's one prepared tab. The accept
// then binds the call as before; when another tab accepts, the prepared
// one is told "answered elsewhere" and the offer goes to the accepting tab.
func TestPreparedCall(t *testing.T) {
	for _, acceptedBy := range []string{"prepared tab", "other tab"} {
		t.Run(acceptedBy, func(t *testing.T) {
			ctx := testCtx(t)
			srv := rt.NewServer(t, nil)
			f := newFamily(t, ctx, srv)
			tab, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
			check(t, err)
			defer tab.Close()
			tab.Key = f.creds.Key
			thief, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
			check(t, err)
			defer thief.Close() // its own key, not the parent's

			id := protocol.NewID()
			sdp := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:" + rt.TestFingerprint + "\r\n"
			// Before any ring, a prepare is for no call.
			check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypePrepare, CallID: id}))
			try(f.parent.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)

			check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
			try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t)
			for _, c := range []*rt.Client{f.parent, tab, thief} {
				try(c.WaitFor(ctx, protocol.TypeRing)).must(t)
			}
			// Nothing is relayed before a prepare.
			check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp}))
			try(f.terminal.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)

			check(t, thief.Send(ctx, protocol.Message{Type: protocol.TypePrepare, CallID: id}))
			if e := try(thief.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t); e.RefType != protocol.TypePrepare {
				t.Fatalf("thief's prepare: error for %s", e.RefType)
			}
			prep := protocol.Message{Type: protocol.TypePrepare, CallID: id}
			check(t, f.parent.Sign(&prep))
			check(t, f.parent.Send(ctx, prep))
			if m := try(f.terminal.Expect(ctx, protocol.TypePrepare)).must(t); m.Nonce != prep.Nonce || m.Signature != prep.Signature {
				t.Fatalf("prepare relayed as %+v, sent %+v", m, prep)
			}
			check(t, tab.Send(ctx, protocol.Message{Type: protocol.TypePrepare, CallID: id}))
			try(tab.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t)

			// Offer, answer and candidates: the terminal and the prepared tab.
			check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp}))
			if m := try(f.parent.Expect(ctx, protocol.TypeOffer)).must(t); m.SDP != sdp {
				t.Fatalf("offer relayed as %q", m.SDP)
			}
			check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeAnswer, CallID: id, SDP: sdp + "s=answer\r\n"}))
			try(f.terminal.Expect(ctx, protocol.TypeAnswer)).must(t)
			cand := &protocol.Candidate{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"}
			for _, pair := range [][2]*rt.Client{{f.terminal, f.parent}, {f.parent, f.terminal}} {
				check(t, pair[0].Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
				try(pair[1].Expect(ctx, protocol.TypeCandidate)).must(t)
			}
			// The other tabs may send none of it, and got none of it.
			for _, c := range []*rt.Client{tab, thief} {
				check(t, c.Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
				try(c.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
				check(t, c.Barrier(ctx))
			}
			// No ICE restart before the call is answered.
			check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp, Restart: 1}))
			try(f.terminal.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
			check(t, f.terminal.Barrier(ctx))

			accepter, other := f.parent, tab
			if acceptedBy == "other tab" {
				accepter, other = tab, f.parent
			}
			check(t, accepter.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
			acc := try(f.terminal.Expect(ctx, protocol.TypeAccept)).must(t)
			if (acc.Nonce == prep.Nonce) != (accepter == f.parent) {
				t.Fatalf("accept's nonce %q, the prepare's %q: the prepared tab's accept brings the prepare's", acc.Nonce, prep.Nonce)
			}
			if m := try(other.WaitFor(ctx, protocol.TypeHangup)).must(t); m.Reason != protocol.ReasonAnsweredElsewhere {
				t.Fatalf("the tab that did not accept got hangup %s", m.Reason)
			}
			// From now on the call is bound to the accepting tab.
			check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
			try(accepter.WaitFor(ctx, protocol.TypeCandidate)).must(t)
			check(t, other.Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
			try(other.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
		})
	}
}

// TestPreparedOwnCall: the parent prepares the call it rang (a prepare
// with no nonce). Only the socket that rang may: another tab of the
// parent's gets unknown_call, the terminal not_allowed. The terminal's offer, which
// brings its accept nonce, goes to that socket alone, and its answer and
// candidates back, before the child answers; the socket may prepare again
// (its prepared connection failed). The terminal's accept then binds the
// call as before, and a prepare after it is for no ringing call.
func TestPreparedOwnCall(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	tab, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	defer tab.Close()
	tab.Key = f.creds.Key
	id := protocol.NewID()
	sdp := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:" + rt.TestFingerprint + "\r\n"

	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	try(f.parent.Expect(ctx, protocol.TypeRinging)).must(t)
	try(f.terminal.WaitFor(ctx, protocol.TypeRing)).must(t)
	nonce := pairing.NewNonce()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp, Nonce: nonce}))
	try(f.terminal.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t) // not prepared

	for _, c := range []struct {
		from *rt.Client
		code string
	}{{tab, protocol.ErrCodeUnknownCall}, {f.terminal, protocol.ErrCodeNotAllowed}} {
		m := protocol.Message{Type: protocol.TypePrepare, CallID: id, SignedAt: "2026-12-07T00:00:00Z", Signature: "c2ln"}
		check(t, c.from.Send(ctx, m))
		if e := try(c.from.ExpectError(ctx, c.code)).must(t); e.RefType != protocol.TypePrepare {
			t.Fatalf("prepare from a socket that did not ring: error for %s", e.RefType)
		}
	}
	prep := protocol.Message{Type: protocol.TypePrepare, CallID: id}
	check(t, f.parent.Sign(&prep))
	if prep.Nonce != "" {
		t.Fatalf("the caller's prepare carries nonce %q", prep.Nonce)
	}
	check(t, f.parent.Send(ctx, prep))
	if m := try(f.terminal.Expect(ctx, protocol.TypePrepare)).must(t); m.Nonce != "" || m.Signature != prep.Signature {
		t.Fatalf("prepare relayed as %+v, sent %+v", m, prep)
	}

	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp, Nonce: nonce}))
	if m := try(f.parent.Expect(ctx, protocol.TypeOffer)).must(t); m.SDP != sdp || m.Nonce != nonce {
		t.Fatalf("offer relayed as %+v", m)
	}
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeAnswer, CallID: id, SDP: sdp + "s=answer\r\n"}))
	try(f.terminal.Expect(ctx, protocol.TypeAnswer)).must(t)
	cand := &protocol.Candidate{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"}
	for _, pair := range [][2]*rt.Client{{f.terminal, f.parent}, {f.parent, f.terminal}} {
		check(t, pair[0].Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
		try(pair[1].Expect(ctx, protocol.TypeCandidate)).must(t)
	}
	check(t, tab.Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
	try(tab.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
	for _, c := range []*rt.Client{tab, f.terminal} {
		check(t, c.Barrier(ctx)) // the tab got none of it either
	}

	// Prepared again: the terminal makes a fresh offer.
	again := protocol.Message{Type: protocol.TypePrepare, CallID: id}
	check(t, f.parent.Sign(&again))
	check(t, f.parent.Send(ctx, again))
	try(f.terminal.Expect(ctx, protocol.TypePrepare)).must(t)

	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id, Nonce: nonce}))
	if m := try(f.parent.Expect(ctx, protocol.TypeAccept)).must(t); m.Nonce != nonce {
		t.Fatalf("accept relayed with nonce %q, sent %q", m.Nonce, nonce)
	}
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
	try(f.parent.Expect(ctx, protocol.TypeCandidate)).must(t)
	late := protocol.Message{Type: protocol.TypePrepare, CallID: id}
	check(t, f.parent.Sign(&late))
	check(t, f.parent.Send(ctx, late))
	try(f.parent.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
}

// TestStolenTokenCannotAnswer: someone with the parent's server login but
// not the parent's key (a stolen token) cannot answer the child's ring:
// the server checks the accept against the key the parent paired with, so
// the real phone keeps ringing (no "answered elsewhere") and the terminal
// never hears of it. A forged, a replayed (earlier call's nonce) and an
// unsigned-by-anyone accept are each refused; the real phone then answers.
func TestStolenTokenCannotAnswer(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	thief, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	defer thief.Close() // thief.Key is a key of its own, not the parent's

	// An accept the real parent signed for an earlier call: right key,
	// wrong ring nonce once moved to a new call.
	old := startCall(t, ctx, f)
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: old, Reason: protocol.ReasonHangup}))
	try(f.parent.WaitFor(ctx, protocol.TypeHangup)).must(t)
	try(thief.WaitFor(ctx, protocol.TypeHangup)).must(t)

	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t)
	try(f.parent.WaitFor(ctx, protocol.TypeRing)).must(t)
	ring := try(thief.WaitFor(ctx, protocol.TypeRing)).must(t)

	replayed := protocol.Message{Type: protocol.TypeAccept, CallID: id, Nonce: pairing.NewNonce()}
	b := pairing.Binding{CallID: id, RingNonce: pairing.NewNonce(), AcceptNonce: replayed.Nonce}
	sig := try(pairing.SignCall(f.creds.Key, protocol.TypeAccept, b, "", time.Now())).must(t)
	replayed.SignedAt, replayed.Signature = sig.SignedAt, sig.Signature
	accepts := []protocol.Message{
		{Type: protocol.TypeAccept, CallID: id}, // signed by the thief's own key
		replayed,
	}
	for i, m := range accepts {
		check(t, thief.Send(ctx, m))
		if e := try(thief.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t); e.RefType != protocol.TypeAccept {
			t.Fatalf("accept %d: error for %s", i, e.RefType)
		}
	}
	// Nothing reached the terminal or the real phone: a barrier, then no
	// accept and no "answered elsewhere" queued before it.
	check(t, f.parent.Barrier(ctx))
	check(t, f.terminal.Barrier(ctx))
	// The real phone still answers the ring it is showing.
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: ring.CallID}))
	if m := try(f.terminal.Expect(ctx, protocol.TypeAccept)).must(t); m.CallID != id {
		t.Fatalf("terminal got accept for %s, want %s", m.CallID, id)
	}
	if m := try(thief.WaitFor(ctx, protocol.TypeHangup)).must(t); m.Reason != protocol.ReasonAnsweredElsewhere {
		t.Fatalf("thief got hangup %s, want answered_elsewhere", m.Reason)
	}
	t.Logf("stolen token: %d of %d accepts taken by the server; the real phone answered", 0, len(accepts))
}

func TestUnpairedRing(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	key, _ := rt.NewKey()
	term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
	defer term.Close()
	check(t, term.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: protocol.NewID()}))
	try(term.ExpectError(ctx, protocol.ErrCodeNotPaired)).must(t)
}

// TestStrangerCannotReachCall: a second family can never inject into, answer,
// or end the first family's call, even knowing its call ID.
func TestStrangerCannotReachCall(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	a := newFamily(t, ctx, srv)
	b := newFamily(t, ctx, srv)
	id := protocol.NewID()
	check(t, a.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	try(a.terminal.Expect(ctx, protocol.TypeRinging)).must(t)
	try(a.parent.Expect(ctx, protocol.TypeRing)).must(t)

	cand := &protocol.Candidate{Candidate: "candidate:1 1 udp 1 192.0.2.1 9 typ host"}
	attempts := []protocol.Message{
		{Type: protocol.TypeAccept, CallID: id},
		{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonDecline},
		{Type: protocol.TypeOffer, CallID: id, SDP: "v=0\r\n"},
		{Type: protocol.TypeAnswer, CallID: id, SDP: "v=0\r\n"},
		{Type: protocol.TypeCandidate, CallID: id, Candidate: cand},
	}
	for _, stranger := range []*rt.Client{b.terminal, b.parent} {
		for _, m := range attempts {
			if m.Type == protocol.TypeOffer && stranger == b.parent || m.Type == protocol.TypeAnswer && stranger == b.terminal {
				continue // role check would answer not_allowed first; covered elsewhere
			}
			check(t, stranger.Send(ctx, m))
			e := try(stranger.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
			if e.CallID != id {
				t.Fatalf("error for call %s, want %s", e.CallID, id)
			}
		}
	}
	// Also once the call is active.
	check(t, a.parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
	try(a.terminal.Expect(ctx, protocol.TypeAccept)).must(t)
	for _, stranger := range []*rt.Client{b.terminal, b.parent} {
		check(t, stranger.Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
		try(stranger.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
	}
	check(t, b.terminal.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: "v=0\r\n"}))
	try(b.terminal.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
	check(t, b.parent.Send(ctx, protocol.Message{Type: protocol.TypeAnswer, CallID: id, SDP: "v=0\r\n"}))
	try(b.parent.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
	// A's sides received nothing from any of it.
	check(t, a.terminal.Barrier(ctx))
	check(t, a.parent.Barrier(ctx))
	// And B's own sides heard nothing of A's call.
	check(t, b.terminal.Barrier(ctx))
	check(t, b.parent.Barrier(ctx))
}

func TestBusy(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	startCall(t, ctx, f)
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: protocol.NewID()}))
	try(f.parent.ExpectError(ctx, protocol.ErrCodeBusy)).must(t)
	check(t, f.terminal.Barrier(ctx))
}

func TestBadMessages(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	id := startCall(t, ctx, f)
	bigSDP := "v=0\r\n" + strings.Repeat("a", protocol.MaxSDPBytes)
	bigOffer, _ := json.Marshal(map[string]string{"type": "offer", "call_id": id, "sdp": bigSDP[:protocol.MaxSDPBytes+1]})
	tests := []struct {
		name string
		raw  string
	}{
		{"malformed json", `{"type":"offer",`},
		{"unknown field", `{"type":"ring","call_id":"` + id + `","colour":"red"}`},
		{"unknown type", `{"type":"teleport"}`},
		{"bad id", `{"type":"ring","call_id":"NOT-AN-ID"}`},
		{"oversized sdp", string(bigOffer)},
		{"server-only field", `{"type":"ring","call_id":"` + protocol.NewID() + `","ice_transport_policy":"relay"}`},
		{"server-only reason", `{"type":"hangup","call_id":"` + id + `","reason":"peer_left"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check(t, f.terminal.SendRaw(ctx, []byte(tc.raw)))
			e := try(f.terminal.ExpectError(ctx, protocol.ErrCodeBadMessage)).must(t)
			if e.Text == "" {
				t.Fatal("bad_message without an explanation")
			}
			t.Logf("bad_message: %s", e.Text)
		})
	}
	// Nothing reached the parent and the call is still up.
	check(t, f.parent.Barrier(ctx))
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: "v=0\r\n"}))
	try(f.parent.Expect(ctx, protocol.TypeOffer)).must(t)

	// Three more bad messages make ten: the socket closes with 1008.
	for range 3 {
		check(t, f.terminal.SendRaw(ctx, []byte(`nope`)))
	}
	if code := try(f.terminal.WaitClosed(ctx)).must(t); code != websocket.StatusPolicyViolation {
		t.Fatalf("close status after ten bad messages = %v, want 1008", code)
	}
	if m := try(f.parent.Expect(ctx, protocol.TypeHangup)).must(t); m.Reason != protocol.ReasonPeerLeft {
		t.Fatalf("parent got hangup %s, want peer_left", m.Reason)
	}
}

func TestOversizedMessage(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	key, _ := rt.NewKey()
	term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
	defer term.Conn.CloseNow()
	check(t, term.SendRaw(ctx, []byte(`{"type":"call_log","x":"`+strings.Repeat("x", protocol.MaxMessageBytes)+`"}`)))
	if code := try(term.WaitClosed(ctx)).must(t); code != websocket.StatusMessageTooBig {
		t.Fatalf("close status = %v, want 1009", code)
	}
}

func TestMissedCallWhileParentOffline(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	f.parent.Close()
	try(f.terminal.Expect(ctx, protocol.TypePresence)).must(t)
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	if m := try(f.terminal.Expect(ctx, protocol.TypeHangup)).must(t); m.Reason != protocol.ReasonUnavailable || m.CallID != id {
		t.Fatalf("ringing an offline parent: %+v, want hangup unavailable", m)
	}
	p, log, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	defer p.Close()
	if len(log) != 1 || log[0].CallID != id || log[0].Outcome != protocol.OutcomeMissed || log[0].Seen ||
		log[0].Direction != protocol.DirFromTerminal {
		t.Fatalf("call log on connect = %+v, want one unseen missed call from the terminal", log)
	}
	// Asking for the log marks it seen (the answer still shows it was new).
	check(t, p.Send(ctx, protocol.Message{Type: protocol.TypeCallLog}))
	if m := try(p.Expect(ctx, protocol.TypeCallLog)).must(t); len(m.Calls) != 1 || m.Calls[0].Seen {
		t.Fatalf("first call_log answer = %+v", m.Calls)
	}
	check(t, p.Send(ctx, protocol.Message{Type: protocol.TypeCallLog}))
	if m := try(p.Expect(ctx, protocol.TypeCallLog)).must(t); len(m.Calls) != 1 || !m.Calls[0].Seen {
		t.Fatalf("second call_log answer = %+v, want it seen", m.Calls)
	}
}

func TestRingTimeout(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.RingTimeout = 200 * time.Millisecond })
	f := newFamily(t, ctx, srv)
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t)
	try(f.parent.Expect(ctx, protocol.TypeRing)).must(t)
	for _, c := range []*rt.Client{f.terminal, f.parent} {
		if m := try(c.Expect(ctx, protocol.TypeHangup)).must(t); m.Reason != protocol.ReasonNoAnswer {
			t.Fatalf("hangup reason %s, want no_answer", m.Reason)
		}
	}
	log := try(f.parent.Expect(ctx, protocol.TypeCallLog)).must(t)
	if len(log.Calls) != 1 || log.Calls[0].Outcome != protocol.OutcomeMissed {
		t.Fatalf("log after ring timeout = %+v", log.Calls)
	}
	// A late accept finds no call.
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
	try(f.parent.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
}

func TestCallOutcomes(t *testing.T) {
	tests := []struct {
		name         string
		fromTerminal bool
		byCaller     bool
		reason       string
		want         string
	}{
		{"child cancels", true, true, protocol.ReasonCancel, protocol.OutcomeMissed},
		{"parent declines child", true, false, protocol.ReasonDecline, protocol.OutcomeDeclined},
		{"parent cancels", false, true, protocol.ReasonCancel, protocol.OutcomeCancelled},
		{"child declines parent", false, false, protocol.ReasonDecline, protocol.OutcomeDeclined},
		{"caller gives up", true, true, protocol.ReasonNoAnswer, protocol.OutcomeMissed},
		{"parent's call rings out", false, true, protocol.ReasonNoAnswer, protocol.OutcomeMissed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			srv := rt.NewServer(t, nil)
			f := newFamily(t, ctx, srv)
			caller, callee := f.terminal, f.parent
			if !tc.fromTerminal {
				caller, callee = f.parent, f.terminal
			}
			id := protocol.NewID()
			check(t, caller.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
			try(caller.Expect(ctx, protocol.TypeRinging)).must(t)
			try(callee.Expect(ctx, protocol.TypeRing)).must(t)
			sender, other := caller, callee
			if !tc.byCaller {
				sender, other = callee, caller
			}
			check(t, sender.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: tc.reason}))
			if m := try(other.Expect(ctx, protocol.TypeHangup)).must(t); m.Reason != tc.reason {
				t.Fatalf("relayed reason %s, want %s", m.Reason, tc.reason)
			}
			log := try(f.parent.WaitFor(ctx, protocol.TypeCallLog)).must(t)
			if len(log.Calls) != 1 || log.Calls[0].Outcome != tc.want {
				t.Fatalf("call log = %+v, want outcome %s", log.Calls, tc.want)
			}
		})
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.DataDir = dir; c.TURN.Secret = "" })
	f := newFamily(t, ctx, srv)
	f.parent.Close()
	try(f.terminal.Expect(ctx, protocol.TypePresence)).must(t)
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	try(f.terminal.Expect(ctx, protocol.TypeHangup)).must(t)
	check(t, srv.Close())

	srv2 := rt.NewServer(t, func(c *rendezvous.Config) { c.DataDir = dir; c.TURN.Secret = "" })
	term := try(rt.DialTerminal(ctx, srv2.WSURL, f.key)).must(t)
	defer term.Close()
	if !*term.Welcome.Paired {
		t.Fatal("terminal is unpaired after a restart")
	}
	p, log, err := rt.DialParent(ctx, srv2.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	defer p.Close()
	if len(log) != 1 || log[0].CallID != id {
		t.Fatalf("call log after restart = %+v", log)
	}
}

func TestHealthzAndWebApp(t *testing.T) {
	srv := rt.NewServer(t, nil)
	for _, path := range []string{"/healthz", "/", "/pair"} {
		resp, err := srv.HTTP.Client().Get(srv.URL + path)
		check(t, err)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %d", path, resp.StatusCode)
		}
	}
}

func TestOriginCheck(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.AllowedOrigins = []string{"demo.example"} })
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"http://evil.example", false},
		{"http://demo.example", true},
		{srv.URL, true},
	} {
		c, _, err := websocket.Dial(ctx, srv.WSURL, &websocket.DialOptions{
			Subprotocols: []string{protocol.Subprotocol},
			HTTPHeader:   map[string][]string{"Origin": {tc.origin}},
		})
		if (err == nil) != tc.ok {
			t.Errorf("origin %s: err = %v, want ok=%v", tc.origin, err, tc.ok)
		}
		if c != nil {
			c.CloseNow()
		}
	}
}

// pairRequest is a page's pair_request for device, made with secret.
func pairRequest(t *testing.T, secret pairing.Secret, device string) protocol.Message {
	t.Helper()
	h, err := pairing.StartParent(secret, device)
	check(t, err)
	r := h.Request()
	return protocol.Message{Type: protocol.TypePairRequest, DeviceID: device, Nonce: r.Nonce, EphemeralKey: r.EphemeralKey, Proof: r.Proof}
}
