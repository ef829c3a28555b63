package natsreg_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// nodes starts rendezvous nodes on one embedded NATS server: each its own
// HTTP listener, hub and node name, one registry.
func nodes(t *testing.T, names ...string) []*rt.Server {
	t.Helper()
	return nodesWith(t, nil, names...)
}

// nodesWith is nodes, each configured by configure too.
func nodesWith(t *testing.T, configure func(*rendezvous.Config), names ...string) []*rt.Server {
	t.Helper()
	ns, err := natsreg.StartEmbedded(t.TempDir(), natsreg.Embed{Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	var out []*rt.Server
	for _, n := range names {
		out = append(out, rt.NewServer(t, func(c *rendezvous.Config) {
			c.NATSURL, c.NodeName = ns.URL(), n
			c.TURN.Listen = ""
			if configure != nil {
				configure(c)
			}
		}))
	}
	return out
}

func get[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dialParent logs the parent in as the server tests' families do: its key
// signs, and it takes the terminal's messages as they come.
func dialParent(t *testing.T, ctx context.Context, url string, cred rt.Credentials) *rt.Client {
	t.Helper()
	p, _, err := rt.DialParent(ctx, url, cred.ParentID, cred.Token)
	if err != nil {
		t.Fatal(err)
	}
	p.Key = cred.Key
	t.Cleanup(func() { p.Close() })
	return p
}

// call rings one way, accepts, passes an offer and an answer, hangs up,
// and returns the parent's pushed call log.
func call(t *testing.T, ctx context.Context, term, parent *rt.Client, fromTerminal bool) []protocol.CallRecord {
	t.Helper()
	id := protocol.NewID()
	caller, callee := term, parent
	if !fromTerminal {
		caller, callee = parent, term
	}
	ok(t, caller.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	if m := get[protocol.Message](t)(caller.WaitFor(ctx, protocol.TypeRinging)); m.CallID != id {
		t.Fatalf("ringing for %s, want %s", m.CallID, id)
	}
	if m := get[protocol.Message](t)(callee.WaitFor(ctx, protocol.TypeRing)); m.CallID != id {
		t.Fatalf("ring for %s, want %s", m.CallID, id)
	}
	ok(t, callee.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
	get[protocol.Message](t)(caller.WaitFor(ctx, protocol.TypeAccept))
	ok(t, term.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: "v=0\r\no=terminal\r\n"}))
	if m := get[protocol.Message](t)(parent.WaitFor(ctx, protocol.TypeOffer)); !strings.HasPrefix(m.SDP, "v=0\r\no=terminal\r\n") {
		t.Fatalf("the parent got offer %q", m.SDP)
	}
	ok(t, parent.Send(ctx, protocol.Message{Type: protocol.TypeAnswer, CallID: id, SDP: "v=0\r\no=parent\r\n"}))
	if m := get[protocol.Message](t)(term.WaitFor(ctx, protocol.TypeAnswer)); !strings.HasPrefix(m.SDP, "v=0\r\no=parent\r\n") {
		t.Fatalf("the terminal got answer %q", m.SDP)
	}
	ok(t, term.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonHangup}))
	get[protocol.Message](t)(parent.WaitFor(ctx, protocol.TypeHangup))
	calls := get[protocol.Message](t)(parent.WaitFor(ctx, protocol.TypeCallLog)).Calls
	if len(calls) == 0 || calls[0].CallID != id || calls[0].Outcome != protocol.OutcomeAnswered {
		t.Fatalf("the parent's call log after call %s: %+v", id, calls)
	}
	return calls
}

// TestRoutedFamily: a terminal on node a, its pairing page and its parent
// on node b. The page pairs through b, the parent logs in on b and is
// routed by a's hub: presence, calls both ways, the call log. The parent's
// node going away takes it out of a's hub (the terminal sees it offline),
// and it logs in on a. Then the terminal moves to b: the parent's socket
// on a is told to reconnect (4004) and is served where the terminal is.
func TestRoutedFamily(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := nodes(t, "a", "b", "c")
	a, b, c := ns[0], ns[1], ns[2]

	key, dev := rt.NewKey()
	term := get[*rt.Client](t)(rt.DialTerminal(ctx, a.WSURL, key))
	defer func() { term.Close() }()
	secret := pairing.NewSecret()
	cred := get[rt.Credentials](t)(rt.Pair(ctx, b.WSURL, term, secret))
	if p, err := a.Registry().ParentOf(dev); err != nil || p != cred.ParentID {
		t.Fatalf("after pairing through node b: parent %q (%v), want %s", p, err, cred.ParentID)
	}

	// Every node's fleet view sees the terminal online.
	for _, n := range ns {
		if !n.Online(dev) {
			t.Fatalf("node %s does not see the terminal (on a) online", n.Config.NodeName)
		}
	}

	parent := dialParent(t, ctx, b.WSURL, cred)
	if w := parent.Welcome; w.PeerOnline == nil || !*w.PeerOnline {
		t.Fatalf("the parent on node b was welcomed with its terminal (on a) offline: %+v", w)
	}
	if m := get[protocol.Message](t)(term.WaitFor(ctx, protocol.TypePresence)); !*m.PeerOnline {
		t.Fatal("the terminal on a saw its parent (on b) offline")
	}
	call(t, ctx, term, parent, true)
	if n := len(call(t, ctx, term, parent, false)); n != 2 {
		t.Fatalf("call log has %d calls after two, want 2", n)
	}
	if b.Logged("logged in (relayed)") != 0 || a.Logged("logged in (relayed)") == 0 {
		t.Fatalf("relayed logins: a %d, b %d; want the parent's on a", a.Logged("logged in (relayed)"), b.Logged("logged in (relayed)"))
	}

	// A stranger's pairing page on node c is routed by a, where the
	// terminal is, and refused there: one parent per terminal, across
	// nodes.
	page := get[*rt.PairPage](t)(rt.StartPair(ctx, c.WSURL, dev, pairing.NewSecret()))
	get[protocol.Message](t)(page.ExpectError(ctx, protocol.ErrCodeAlreadyPaired))
	page.Close()
	if p, err := c.Registry().ParentOf(dev); err != nil || p != cred.ParentID {
		t.Fatalf("after a stranger's page: parent %q (%v), want %s", p, err, cred.ParentID)
	}

	// Node b goes away: its sockets close, and a's hub lets go of the
	// parent it routed for b.
	ok(t, b.Close())
	if m := get[protocol.Message](t)(term.WaitFor(ctx, protocol.TypePresence)); *m.PeerOnline {
		t.Fatal("the terminal still sees its parent online after the parent's node closed")
	}
	parent = dialParent(t, ctx, c.WSURL, cred)
	get[protocol.Message](t)(term.WaitFor(ctx, protocol.TypePresence))
	call(t, ctx, term, parent, true)

	// The terminal moves to node c (its link to a broke): the parent, on
	// c but routed by a, reconnects and is served on c.
	term.Close()
	term = get[*rt.Client](t)(rt.DialTerminal(ctx, c.WSURL, key))
	if code := get[websocket.StatusCode](t)(parent.WaitClosed(ctx)); code != rendezvous.CloseMoved {
		t.Fatalf("the parent's socket closed with %v, want %v", code, rendezvous.CloseMoved)
	}
	parent = dialParent(t, ctx, c.WSURL, cred)
	if w := parent.Welcome; !*w.PeerOnline {
		t.Fatal("the parent, back on c, was welcomed with its terminal (on c) offline")
	}
	if n := len(call(t, ctx, term, parent, false)); n != 4 {
		t.Fatalf("call log has %d calls after four on three nodes, want 4", n)
	}

	// Offline on every node once it leaves.
	term.Close()
	for _, n := range []*rt.Server{a, c} {
		deadline := time.Now().Add(10 * time.Second)
		for n.Online(dev) {
			if time.Now().After(deadline) {
				t.Fatalf("node %s still sees the terminal online 10 s after it left", n.Config.NodeName)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestDenyListAcrossNodes: a unit put on the cluster's deny list (as
// `rendezvous revoke` does with nats_url) is dropped by the node it is on
// and refused by every other; taken off, it logs in again.
func TestDenyListAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := nodes(t, "a", "b")
	a, b := ns[0], ns[1]
	reg, err := natsreg.Connect(a.Config.NATSURL, natsreg.Options{Name: "revoke"})
	ok(t, err)
	defer reg.Close()

	key, dev := rt.NewKey()
	term := get[*rt.Client](t)(rt.DialTerminal(ctx, a.WSURL, key))
	defer term.Close()
	if n := get[int](t)(reg.Revoke([]string{dev}, "stolen")); n != 1 {
		t.Fatalf("Revoke added %d, want 1", n)
	}
	if n := get[int](t)(reg.Revoke([]string{dev}, "again")); n != 0 {
		t.Fatalf("a second Revoke added %d, want 0", n)
	}
	if code := get[websocket.StatusCode](t)(term.WaitClosed(ctx)); code != rendezvous.CloseAuthFailed {
		t.Fatalf("the revoked unit's socket on a closed with %v, want %v", code, rendezvous.CloseAuthFailed)
	}
	for _, n := range ns {
		c, err := rt.DialTerminal(ctx, n.WSURL, key)
		var re *rt.RefusedError
		if err == nil {
			c.Close()
		}
		if !errors.As(err, &re) || re.Code != protocol.ErrCodeAuthFailed {
			t.Fatalf("node %s let the revoked unit log in: %v", n.Config.NodeName, err)
		}
	}
	if l := get[map[string]string](t)(reg.DenyList()); l[dev] != "stolen" || len(l) != 1 {
		t.Fatalf("deny list %v, want %s stolen", l, dev)
	}

	if n := get[int](t)(reg.Unrevoke([]string{dev})); n != 1 {
		t.Fatalf("Unrevoke removed %d, want 1", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := rt.DialTerminal(ctx, b.WSURL, key)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the unit taken off the deny list still cannot log in on b: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAuditStream: the cluster's audit log holds what every node audits —
// a pairing made through node b for a terminal on a, the terminal's
// factory reset — in order, once each (an append retried after a lost
// acknowledgement is stored once).
func TestAuditStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := nodes(t, "a", "b")
	a, b := ns[0], ns[1]
	reg, err := natsreg.Connect(a.Config.NATSURL, natsreg.Options{Name: "audit"})
	ok(t, err)
	defer reg.Close()

	key, dev := rt.NewKey()
	term := get[*rt.Client](t)(rt.DialTerminal(ctx, a.WSURL, key))
	defer term.Close()
	cred := get[rt.Credentials](t)(rt.Pair(ctx, b.WSURL, term, pairing.NewSecret()))
	ok(t, term.Send(ctx, protocol.Message{Type: protocol.TypeUnpair}))

	want := []rendezvous.AuditEntry{
		{Event: rendezvous.AuditPaired, DeviceID: dev, ParentID: cred.ParentID},
		{Event: rendezvous.AuditFactoryReset, DeviceID: dev, ParentID: cred.ParentID},
	}
	var got []rendezvous.AuditEntry
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("the cluster's audit log after a pairing and a reset: %+v", got)
		}
		time.Sleep(50 * time.Millisecond)
		got = get[[]rendezvous.AuditEntry](t)(reg.ReadAudit())
	}
	for i, w := range want {
		if g := got[i]; g.Event != w.Event || g.DeviceID != w.DeviceID || g.ParentID != w.ParentID || g.Time.IsZero() {
			t.Fatalf("audit entry %d = %+v, want %+v", i, g, w)
		}
	}
	ok(t, reg.AppendAudit(got[1]))
	if n := len(get[[]rendezvous.AuditEntry](t)(reg.ReadAudit())); n != len(want) {
		t.Fatalf("an entry appended again is stored again: %d entries, want %d", n, len(want))
	}
}

// forwardLog is a ClusterReceiver that keeps what is forwarded to it.
type forwardLog struct{ got chan []byte }

func (f forwardLog) Opened(rendezvous.RelayOpen) error              { return nil }
func (f forwardLog) Forwarded(_, _ string, data []byte)             { f.got <- data }
func (f forwardLog) Released(_, _ string)                           {}
func (f forwardLog) Delivered(_, _ string, _ rendezvous.RelayFrame) {}
func (f forwardLog) HomeChanged(_, _, _ string)                     {}
func (f forwardLog) NodeGone(string)                                {}
func (f forwardLog) GiveUpCall(_, _ string) error                   { return nil }

// TestForwardAckedSaysTheHomeIsGone: a pairing page's messages go to its
// terminal's node acknowledged (Router.ForwardAcked), so one sent to a
// node that no longer serves is refused at once with ErrNodeGone, where a
// plain Forward is lost without a word until the node is declared gone.
func TestForwardAckedSaysTheHomeIsGone(t *testing.T) {
	ns, err := natsreg.StartEmbedded(t.TempDir(), natsreg.Embed{Log: testLog()})
	ok(t, err)
	t.Cleanup(ns.Shutdown)
	connect := func(node string) *natsreg.Registry {
		r, err := natsreg.Connect(ns.URL(), natsreg.Options{Node: node})
		ok(t, err)
		t.Cleanup(func() { r.Close() })
		return r
	}
	homeReg := connect("home")
	home, edge := homeReg.Router(), connect("edge").Router()
	fl := forwardLog{got: make(chan []byte, 4)}
	_, err = home.Serve(fl)
	ok(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	ok(t, edge.ForwardAcked(ctx, "home", "sid", []byte("confirm")))
	select {
	case data := <-fl.got:
		if string(data) != "confirm" {
			t.Fatalf("home got %q, want the confirm", data)
		}
	case <-ctx.Done():
		t.Fatal("the acknowledged message never reached its home")
	}

	// The home's connection goes, as a killed node's does. Until the NATS
	// server has dropped its interest a forward may still be delivered to
	// the closing connection and get no answer (a timeout, also an error);
	// after that, each is refused at once as gone.
	ok(t, homeReg.Close())
	start := time.Now()
	for {
		actx, acancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err = edge.ForwardAcked(actx, "home", "sid", []byte("confirm"))
		acancel()
		if errors.Is(err, rendezvous.ErrNodeGone) {
			break
		}
		if err == nil {
			t.Fatal("a forward to a home whose connection closed was acknowledged")
		}
		if ctx.Err() != nil {
			t.Fatalf("forwards to a home that serves no more never said it is gone: %v", err)
		}
	}
	t.Logf("refused as gone %v after the close: %v", time.Since(start).Round(time.Millisecond), err)
}

// TestAcceptToDeadNode: the terminal is on node a, a process; its parent
// on node b, routed by a's hub, which b has just started and not yet heard
// a heartbeat of. The child rings, and a is killed (SIGKILL).
//   - accept: the parent answers. The accept cannot reach the call's node,
//     and the parent's socket is closed (4004) as it is sent, so the page
//     comes back through a live node at once, instead of showing a call
//     that never opens. The log line says the close came from the forward.
//   - idle: the parent sends nothing. b declares a gone once it has been
//     silent for five seconds, though b never heard its heartbeat (a
//     answered b's relay: that counts as heard), and closes the socket
//     (4004). Before, a node b had never heard was never gone, and the
//     parent's socket hung on a dead node for good.
func TestAcceptToDeadNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a rendezvous process")
	}
	for _, tc := range []struct {
		name, logged string
		accept       bool
	}{
		{"accept", "cluster: could not pass a message on to the terminal's node", true},
		{"idle", "cluster: a node is gone", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			ns, err := natsreg.StartEmbedded(t.TempDir(), natsreg.Embed{Log: testLog()})
			ok(t, err)
			t.Cleanup(ns.Shutdown)
			aURL, killA := startRendezvous(t, rendezvousSpec{NATSURL: ns.URL(), Node: "a", Dir: t.TempDir(), CAFile: rt.TestCAFile(t)})
			b := rt.NewServer(t, func(c *rendezvous.Config) {
				c.NATSURL, c.NodeName = ns.URL(), "b"
				c.TURN.Listen = ""
			})

			key, _ := rt.NewKey()
			term := get[*rt.Client](t)(rt.DialTerminal(ctx, aURL, key))
			defer term.Close()
			cred := get[rt.Credentials](t)(rt.Pair(ctx, b.WSURL, term, pairing.NewSecret()))
			parent := dialParent(t, ctx, b.WSURL, cred)
			if w := parent.Welcome; !*w.PeerOnline {
				t.Fatal("the parent on b was welcomed with its terminal (on a) offline")
			}
			id := protocol.NewID()
			ok(t, term.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
			if m := get[protocol.Message](t)(parent.WaitFor(ctx, protocol.TypeRing)); m.CallID != id {
				t.Fatalf("ring for %s, want %s", m.CallID, id)
			}

			killA()
			waitDown(t, ctx, aURL)
			killed := time.Now()
			if tc.accept {
				ok(t, parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
			}
			if code := get[websocket.StatusCode](t)(parent.WaitClosed(ctx)); code != rendezvous.CloseMoved {
				t.Fatalf("the parent's socket closed with %v, want %v", code, rendezvous.CloseMoved)
			}
			t.Logf("the parent's socket closed %v after the kill", time.Since(killed).Round(time.Millisecond))
			if n := b.Logged(tc.logged); n != 1 {
				t.Fatalf("b logged %q %d times, want once: the close came from elsewhere", tc.logged, n)
			}
		})
	}
}

// waitDown returns once nothing listens at a WebSocket URL's address: its
// process is gone.
func waitDown(t *testing.T, ctx context.Context, wsURL string) {
	t.Helper()
	addr := strings.TrimSuffix(strings.TrimPrefix(wsURL, "ws://"), "/ws")
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if ctx.Err() != nil {
			t.Fatalf("%s still listens", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
