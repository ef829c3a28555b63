package rendezvous_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// redial logs one side of f in again on srv (the terminal with its key, the
// parent with its credential), as a side whose socket dropped does.
func (f *family) redial(t *testing.T, ctx context.Context, srv *rt.Server, terminal bool) *rt.Client {
	t.Helper()
	if terminal {
		c := try(rt.DialTerminal(ctx, srv.WSURL, f.key)).must(t)
		t.Cleanup(func() { c.Close() })
		f.terminal = c
		return c
	}
	c, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	c.Key = f.creds.Key
	t.Cleanup(func() { c.Close() })
	f.parent = c
	return c
}

// expectResumed waits for c's resumed of call id and checks what it says.
func expectResumed(t *testing.T, ctx context.Context, c *rt.Client, id string, both bool) {
	t.Helper()
	m := try(c.WaitFor(ctx, protocol.TypeResumed)).must(t)
	if m.CallID != id || m.PeerOnline == nil || *m.PeerOnline != both {
		t.Fatalf("resumed %s peer_online %v, want %s %v", m.CallID, m.PeerOnline, id, both)
	}
}

// relays checks that the call's two sockets reach each other again.
func relays(t *testing.T, ctx context.Context, f *family, id string) {
	t.Helper()
	cand := &protocol.Candidate{Candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host"}
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
	if m := try(f.parent.WaitFor(ctx, protocol.TypeCandidate)).must(t); m.CallID != id {
		t.Fatalf("candidate for %s, want %s", m.CallID, id)
	}
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeCandidate, CallID: id, Candidate: cand}))
	if m := try(f.terminal.WaitFor(ctx, protocol.TypeCandidate)).must(t); m.CallID != id {
		t.Fatalf("candidate for %s, want %s", m.CallID, id)
	}
}

// lastOutcome is the outcome of call id in the parent's log as a fresh
// login of the parent sees it.
func lastOutcome(t *testing.T, ctx context.Context, srv *rt.Server, f *family, id string) protocol.CallRecord {
	t.Helper()
	p, log, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	p.Close()
	for _, r := range log {
		if r.CallID == id {
			return r
		}
	}
	t.Fatalf("call %s is not in the log", id)
	return protocol.CallRecord{}
}

// TestResumeAfterSocketLoss: the socket of either side of an answered call
// closes and a new one of the same side resumes it; the other side is not
// hung up, and the call goes on (relay) and ends as answered. Before
// resuming existed, the other side got hangup peer_left at once.
func TestResumeAfterSocketLoss(t *testing.T) {
	for _, side := range []string{"terminal", "parent"} {
		t.Run(side, func(t *testing.T) {
			ctx := testCtx(t)
			srv := rt.NewServer(t, nil)
			f := newFamily(t, ctx, srv)
			id := startCall(t, ctx, f)
			stays := f.parent
			if side == "terminal" {
				f.terminal.Close()
			} else {
				stays = f.terminal
				f.parent.Close()
			}
			// The server has seen the socket go (the other side is told)
			// before the new one resumes: on a loaded machine its reader
			// may see the close after the new login.
			if m := try(stays.WaitFor(ctx, protocol.TypePresence)).must(t); *m.PeerOnline {
				t.Fatal("presence online when the socket closed")
			}
			back := f.redial(t, ctx, srv, side == "terminal")
			check(t, back.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: id}))
			expectResumed(t, ctx, back, id, true)
			expectResumed(t, ctx, stays, id, true)
			relays(t, ctx, f, id)
			check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonHangup}))
			try(f.parent.WaitFor(ctx, protocol.TypeHangup)).must(t)
			if r := lastOutcome(t, ctx, srv, f, id); r.Outcome != protocol.OutcomeAnswered || r.EndedAt.IsZero() {
				t.Fatalf("resumed call logged %s (ended %v), want answered", r.Outcome, r.EndedAt)
			}
		})
	}
}

// TestResumeGraceOver: a side that never comes back ends the call after
// the grace: the other side is told peer_left, and the log says
// interrupted, ended when the side left.
func TestResumeGraceOver(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.ResumeGrace = 300 * time.Millisecond })
	f := newFamily(t, ctx, srv)
	id := startCall(t, ctx, f)
	f.terminal.Close()
	m := try(f.parent.WaitFor(ctx, protocol.TypeHangup)).must(t)
	if m.CallID != id || m.Reason != protocol.ReasonPeerLeft {
		t.Fatalf("hangup %s %s, want %s peer_left", m.CallID, m.Reason, id)
	}
	r := lastOutcome(t, ctx, srv, f, id)
	if r.Outcome != protocol.OutcomeInterrupted || r.EndedAt.IsZero() {
		t.Fatalf("call logged %s ended %v, want interrupted with an end", r.Outcome, r.EndedAt)
	}
	// Too late: the call is gone.
	back := f.redial(t, ctx, srv, true)
	check(t, back.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: id}))
	try(back.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
}

// TestForgedResume: while a call waits for its terminal, nobody but that
// terminal can take its place — not another family's terminal or parent,
// not a second tab of the call's own parent while the parent side is there
// — and a call that does not wait cannot be resumed at all. 0 of 4 forged
// resumes accepted; the real terminal's resume (control) is.
func TestForgedResume(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	a, b := newFamily(t, ctx, srv), newFamily(t, ctx, srv)
	id := startCall(t, ctx, a)

	// Both sides there: nothing to resume, not even for the call's own.
	check(t, a.terminal.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: id}))
	try(a.terminal.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)

	a.terminal.Close()
	if m := try(a.parent.WaitFor(ctx, protocol.TypePresence)).must(t); *m.PeerOnline {
		t.Fatal("presence online when the terminal's socket closed")
	}
	tab, _, err := rt.DialParent(ctx, srv.WSURL, a.creds.ParentID, a.creds.Token)
	check(t, err)
	defer tab.Close()
	forged := 1 // the call's own terminal above, while both sides were there
	for _, c := range []*rt.Client{b.terminal, b.parent, tab} {
		check(t, c.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: id}))
		e := try(c.ExpectError(ctx, protocol.ErrCodeUnknownCall)).must(t)
		if e.CallID != id {
			t.Fatalf("error for %s, want %s", e.CallID, id)
		}
		forged++
	}
	t.Logf("0 of %d forged resumes accepted", forged)
	// The waiting call's parent heard nothing of it.
	check(t, a.parent.Barrier(ctx))

	back := a.redial(t, ctx, srv, true)
	check(t, back.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: id}))
	expectResumed(t, ctx, back, id, true)
	relays(t, ctx, a, id)
}

// TestResumeAcrossRestart: a server shut down cleanly mid-call, started
// again on its data, takes the answered call back when both sides resume
// it; the log has it answered again, and a call nobody resumes stays
// interrupted. Before, the shutdown ended the call (peer_left).
func TestResumeAcrossRestart(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	kept, lost := newFamily(t, ctx, srv), newFamily(t, ctx, srv)
	id := startCall(t, ctx, kept)
	lostID := startCall(t, ctx, lost)
	dir := srv.Config.DataDir
	check(t, srv.Close())

	next := rt.NewServer(t, func(c *rendezvous.Config) {
		c.DataDir = dir
		c.ResumeGrace = 2 * time.Second
	})
	term := kept.redial(t, ctx, next, true)
	check(t, term.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: id}))
	expectResumed(t, ctx, term, id, false)
	par := kept.redial(t, ctx, next, false)
	check(t, par.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: id}))
	expectResumed(t, ctx, par, id, true)
	expectResumed(t, ctx, term, id, true)
	relays(t, ctx, kept, id)
	if r := lastOutcome(t, ctx, next, kept, id); r.Outcome != protocol.OutcomeAnswered || !r.EndedAt.IsZero() {
		t.Fatalf("resumed call logged %s ended %v, want answered and open", r.Outcome, r.EndedAt)
	}
	// The other family's call: nobody came back; the grace ends it.
	eventually(t, ctx, "the unresumed call is forgotten", func() bool {
		c, _ := rt.DialTerminal(ctx, next.WSURL, lost.key)
		if c == nil {
			return false
		}
		defer c.Close()
		check(t, c.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: lostID}))
		_, err := c.ExpectError(ctx, protocol.ErrCodeUnknownCall)
		return err == nil
	})
	if r := lastOutcome(t, ctx, next, lost, lostID); r.Outcome != protocol.OutcomeInterrupted {
		t.Fatalf("unresumed call logged %s, want interrupted", r.Outcome)
	}
}

// TestRingEndsWaitingCall: a terminal that comes back without its call (it
// restarted) and rings is not told busy by the call waiting for it; that
// call ends (interrupted) and the parent's old call screen is told.
func TestRingEndsWaitingCall(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	old := startCall(t, ctx, f)
	f.terminal.Close()
	f.redial(t, ctx, srv, true)
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	try(f.terminal.Expect(ctx, protocol.TypeRinging)).must(t)
	if m := try(f.parent.WaitFor(ctx, protocol.TypeHangup)).must(t); m.CallID != old {
		t.Fatalf("hangup for %s, want the old call %s", m.CallID, old)
	}
	if m := try(f.parent.WaitFor(ctx, protocol.TypeRing)).must(t); m.CallID != id {
		t.Fatalf("ring for %s, want %s", m.CallID, id)
	}
	if r := lastOutcome(t, ctx, srv, f, old); r.Outcome != protocol.OutcomeInterrupted {
		t.Fatalf("old call logged %s, want interrupted", r.Outcome)
	}
}

// frozenConn is a connection whose network goes silent on freeze, as a
// phone's Wi-Fi socket does when the phone walks out of range: nothing it
// writes (a pong, a close) arrives any more, and nothing reaches it.
type frozenConn struct {
	net.Conn
	frozen chan struct{}
	once   sync.Once
	closed chan struct{}
	cOnce  sync.Once
}

func (c *frozenConn) freeze() { c.once.Do(func() { close(c.frozen) }) }

func (c *frozenConn) silent() bool {
	select {
	case <-c.frozen:
		return true
	default:
		return false
	}
}

func (c *frozenConn) Write(b []byte) (int, error) {
	if c.silent() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Write(b)
}

func (c *frozenConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.silent() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return n, err
}

func (c *frozenConn) Close() error {
	c.cOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestResumeFromNewNetwork: the parent's phone moves from Wi-Fi to 4G in a
// call. Its Wi-Fi socket goes silent without closing, and the phone resumes
// the call from a new socket before the server has noticed (its ping loop
// would, PingInterval and PongTimeout later, by when the call is lost).
// The server pings the old socket, hears nothing, and hands the call to the
// new one: resumed, the terminal told, the call relayed again. Before, the
// resume was refused (unknown_call) while the dead socket held the call.
// The other-tab case (the old socket answers) stays refused:
// TestForgedResume.
func TestResumeFromNewNetwork(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.PongTimeout = 2 * time.Second })
	f := newFamily(t, ctx, srv)
	var wifi *frozenConn
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		wifi = &frozenConn{Conn: c, frozen: make(chan struct{}), closed: make(chan struct{})}
		return wifi, nil
	}}}
	// The parent's page on Wi-Fi (the family's first socket closed: one tab).
	f.parent.Close()
	try(f.terminal.WaitFor(ctx, protocol.TypePresence)).must(t)
	p := try(rt.DialVia(ctx, srv.WSURL, hc)).must(t)
	t.Cleanup(func() { p.Conn.CloseNow() })
	try(p.LoginParent(ctx, f.creds.ParentID, f.creds.Token)).must(t)
	p.Key = f.creds.Key
	f.parent = p
	if m := try(f.terminal.WaitFor(ctx, protocol.TypePresence)).must(t); !*m.PeerOnline {
		t.Fatal("presence offline when the parent logged in")
	}
	id := startCall(t, ctx, f)

	wifi.freeze()
	back := f.redial(t, ctx, srv, false) // on 4G
	check(t, back.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: id}))
	expectResumed(t, ctx, back, id, true)
	expectResumed(t, ctx, f.terminal, id, true)
	relays(t, ctx, f, id)
}
