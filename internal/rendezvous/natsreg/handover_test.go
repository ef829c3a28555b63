package natsreg_test

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// callingFamily is a terminal logged in on termURL, paired through
// pageURL, its parent logged in there, and the child's call answered.
func callingFamily(t *testing.T, ctx context.Context, termURL, pageURL string) (key *ecdsa.PrivateKey, term, parent *rt.Client, cred rt.Credentials, callID string) {
	t.Helper()
	key, _ = rt.NewKey()
	term = get[*rt.Client](t)(rt.DialTerminal(ctx, termURL, key))
	cred = get[rt.Credentials](t)(rt.Pair(ctx, pageURL, term, pairing.NewSecret()))
	parent = dialParent(t, ctx, pageURL, cred)
	return key, term, parent, cred, answered(t, ctx, term, parent)
}

// answered rings from the terminal and has the parent accept: a call in
// progress. It returns the call's ID.
func answered(t *testing.T, ctx context.Context, term, parent *rt.Client) string {
	t.Helper()
	id := protocol.NewID()
	ok(t, term.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	get[protocol.Message](t)(parent.WaitFor(ctx, protocol.TypeRing))
	ok(t, parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
	get[protocol.Message](t)(term.WaitFor(ctx, protocol.TypeAccept))
	return id
}

// awaitResumed reads c until a resumed for callID: an error message is
// the resume refused, a closed socket is a client to log in again (nil,
// nil).
func awaitResumed(ctx context.Context, c *rt.Client, callID string) (*protocol.Message, error) {
	for {
		m, err := c.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, nil // closed: log in again
		}
		switch {
		case m.Type == protocol.TypeError && m.RefType == protocol.TypeResume:
			return nil, fmt.Errorf("resume of %s refused: %s (%s)", callID, m.Code, m.Text)
		case m.Type == protocol.TypeResumed && m.CallID == callID:
			return &m, nil
		}
	}
}

// resumeTerminal logs a terminal in on url and resumes callID, as a unit
// does after its link dropped: a socket the server closes (1013, try
// again) logs in and resumes again.
func resumeTerminal(ctx context.Context, url string, key *ecdsa.PrivateKey, callID string) (*rt.Client, protocol.Message, error) {
	for {
		c, err := rt.DialTerminal(ctx, url, key)
		if err == nil {
			if err = c.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: callID}); err == nil {
				m, err := awaitResumed(ctx, c, callID)
				if m != nil || err != nil {
					return c, deref(m), err
				}
			}
			c.Close()
		}
		if ctx.Err() != nil {
			return nil, protocol.Message{}, fmt.Errorf("the terminal's resume on %s: %w", url, ctx.Err())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// resumeParent logs the parent in on url and resumes callID, as the page
// does after each welcome, until the call has both sides again.
func resumeParent(ctx context.Context, url string, cred rt.Credentials, callID string) (*rt.Client, error) {
	for {
		p, _, err := rt.DialParent(ctx, url, cred.ParentID, cred.Token)
		if err == nil {
			p.Key = cred.Key
			if err = p.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: callID}); err == nil {
				m, err := awaitResumed(ctx, p, callID)
				if err != nil {
					return nil, err
				}
				if m != nil && m.PeerOnline != nil && *m.PeerOnline {
					return p, nil
				}
			}
			p.Close()
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the parent's resume on %s: %w", url, ctx.Err())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// refusedResume sends resume for callID on c and reads until the answer:
// nil for unknown_call.
func refusedResume(ctx context.Context, c *rt.Client, callID string) error {
	if err := c.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: callID}); err != nil {
		return err
	}
	for {
		m, err := c.Recv(ctx)
		switch {
		case err != nil:
			return err
		case m.Type == protocol.TypeResumed:
			return fmt.Errorf("resumed call %s", m.CallID)
		case m.Type == protocol.TypeError && m.RefType == protocol.TypeResume && m.Code == protocol.ErrCodeUnknownCall:
			return nil
		case m.Type == protocol.TypeError && m.RefType == protocol.TypeResume:
			return fmt.Errorf("resume refused with %s, want %s", m.Code, protocol.ErrCodeUnknownCall)
		}
	}
}

func deref(m *protocol.Message) protocol.Message {
	if m == nil {
		return protocol.Message{}
	}
	return *m
}

// endResumed hangs up a resumed call and checks the parent's log: the call
// answered and ended by that hangup, once, not interrupted.
func endResumed(ctx context.Context, term, parent *rt.Client, callID string) error {
	if err := term.Send(ctx, protocol.Message{Type: protocol.TypeOffer, CallID: callID, SDP: "v=0\r\no=restart\r\n", Restart: 1}); err != nil {
		return err
	}
	if m, err := parent.WaitFor(ctx, protocol.TypeOffer); err != nil || m.Restart != 1 {
		return fmt.Errorf("the restart offer did not reach the parent (%v)", err)
	}
	if err := term.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: callID, Reason: protocol.ReasonHangup}); err != nil {
		return err
	}
	m, err := parent.WaitFor(ctx, protocol.TypeCallLog)
	if err != nil {
		return fmt.Errorf("the call's end: %w", err)
	}
	n := 0
	for _, r := range m.Calls {
		if r.CallID != callID {
			continue
		}
		n++
		if r.Outcome != protocol.OutcomeAnswered || r.EndedAt.IsZero() {
			return fmt.Errorf("the resumed call is logged %s, ended %v; want answered and ended", r.Outcome, r.EndedAt)
		}
	}
	if n != 1 {
		return fmt.Errorf("the resumed call is %d times in the log, want once", n)
	}
	return nil
}

// TestCallFollowsTerminal: a call in progress follows its terminal from
// node to node. First the terminal's link to a drops and the parent's
// page reconnects to b, where it is served alone: its resume waits there.
// The terminal logs in on b and resumes; b takes the call from a, and the
// parent's resume is bound. Then the terminal moves back to a, with the
// parent's socket moved after it: a takes the call from b, whichever side
// resumes first. The call ends as answered, once in the log. A stranger's
// resume of the call on either node is unknown_call.
func TestCallFollowsTerminal(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := nodes(t, "a", "b")
	a, b := ns[0], ns[1]

	key, term, parent, cred, id := callingFamily(t, ctx, a.WSURL, b.WSURL)
	dev := rt.DeviceID(key)

	// A stranger: another family, on both nodes.
	skey, _ := rt.NewKey()
	sterm := get[*rt.Client](t)(rt.DialTerminal(ctx, b.WSURL, skey))
	defer sterm.Close()
	scred := get[rt.Credentials](t)(rt.Pair(ctx, a.WSURL, sterm, pairing.NewSecret()))
	for _, n := range ns {
		sp := dialParent(t, ctx, n.WSURL, scred)
		if err := refusedResume(ctx, sp, id); err != nil {
			t.Fatalf("a stranger's resume of the call on %s: %v", n.Config.NodeName, err)
		}
	}
	if err := refusedResume(ctx, sterm, id); err != nil {
		t.Fatalf("a stranger's terminal resuming the call: %v", err)
	}

	// The terminal's link to a drops; so does the parent's, and its page
	// comes back on b, which finds the terminal on no node and serves it.
	term.Close()
	for b.Online(dev) {
		if ctx.Err() != nil {
			t.Fatal("node b still sees the terminal online after it left a")
		}
		time.Sleep(20 * time.Millisecond)
	}
	parent.Close()
	ok(t, a.WaitLogged(ctx, "call waits for a side to resume", 2))
	p := dialParent(t, ctx, b.WSURL, cred)
	ok(t, p.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: id}))
	ok(t, b.WaitLogged(ctx, "cluster: the parent's resume waits for its terminal to take the call here", 1))
	term, _, err := resumeTerminal(ctx, b.WSURL, key, id)
	ok(t, err)
	if m := get[protocol.Message](t)(p.WaitFor(ctx, protocol.TypeResumed)); !*m.PeerOnline {
		t.Fatal("the parent's held resume on b: the terminal is not in the call")
	}
	if a.Logged("cluster: gave the call up to its terminal's node") != 1 || b.Logged("cluster: took the call from its node") != 1 {
		t.Fatal("the call did not move from a to b")
	}

	// Back to a, the parent's socket (on b, beside the terminal) moved
	// after it: both resume at once.
	term.Close()
	ok(t, b.WaitLogged(ctx, "call waits for a side to resume", 1))
	errs := make(chan error, 1)
	go func() {
		if _, err := p.WaitClosed(ctx); err != nil {
			errs <- err
			return
		}
		// Its own error: err is the terminal's, set meanwhile below.
		np, perr := resumeParent(ctx, b.WSURL, cred, id)
		p = np // read only after errs
		errs <- perr
	}()
	term, _, err = resumeTerminal(ctx, a.WSURL, key, id)
	ok(t, err)
	defer func() { term.Close() }()
	ok(t, <-errs)
	defer p.Close()
	if b.Logged("cluster: gave the call up to its terminal's node") != 1 || a.Logged("cluster: took the call from its node") != 1 {
		t.Fatal("the call did not move back from b to a")
	}
	ok(t, endResumed(ctx, term, p, id))
}

// TestCallFollowsTerminalAfterRestart: the terminal's node stops and
// starts again under its name (a service manager's restart) while a call
// is in progress; the terminal comes back on the other node. The
// restarted node holds the call it restored and gives it up; the call goes
// on and ends as answered, once in the log.
func TestCallFollowsTerminalAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := nodes(t, "a", "b")
	a, b := ns[0], ns[1]

	key, _, _, cred, id := callingFamily(t, ctx, b.WSURL, a.WSURL)

	ok(t, b.Close())
	b = rt.NewServer(t, func(c *rendezvous.Config) {
		c.NATSURL, c.NodeName = a.Config.NATSURL, "b"
		c.TURN.Listen = ""
	})
	ok(t, b.WaitLogged(ctx, "call left open by the last run waits to be resumed", 1))
	term, _, err := resumeTerminal(ctx, a.WSURL, key, id)
	ok(t, err)
	defer term.Close()
	p, err := resumeParent(ctx, a.WSURL, cred, id)
	ok(t, err)
	defer p.Close()
	if b.Logged("cluster: gave the call up to its terminal's node") != 1 || a.Logged("cluster: took the call from its node") != 1 {
		t.Fatal("the restarted node did not give the call up")
	}
	ok(t, endResumed(ctx, term, p, id))
}

// TestGoneNodesCallsClosed: a call whose node went away and that nobody
// resumed is ended in the log (interrupted) by the nodes left, after the
// resume grace; the family calls again.
func TestGoneNodesCallsClosed(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := nodesWith(t, func(c *rendezvous.Config) { c.ResumeGrace = 2 * time.Second }, "a", "b")
	a, b := ns[0], ns[1]

	key, _, parent, cred, id := callingFamily(t, ctx, b.WSURL, a.WSURL)
	ok(t, b.Close()) // leaves the call open in the log, as a node that dies does
	ok(t, a.WaitLogged(ctx, "cluster: ended the calls a gone node held and nobody resumed", 1))

	parent.Close()
	parent, calls, err := rt.DialParent(ctx, a.WSURL, cred.ParentID, cred.Token)
	ok(t, err)
	defer parent.Close()
	var rec *protocol.CallRecord
	for _, r := range calls {
		if r.CallID == id {
			rec = &r
		}
	}
	if rec == nil || rec.Outcome != protocol.OutcomeInterrupted || rec.EndedAt.IsZero() {
		t.Fatalf("the gone node's call in the log: %+v, want interrupted and ended", rec)
	}
	// Nothing is left to take: the terminal's resume is unknown_call.
	term := get[*rt.Client](t)(rt.DialTerminal(ctx, a.WSURL, key))
	defer term.Close()
	if err := refusedResume(ctx, term, id); err != nil {
		t.Fatalf("the terminal's resume of the call the log has ended: %v", err)
	}
}

// TestUnheardNodesCallsClosed: a node that goes while every other node is
// restarting is never heard by the nodes that run next, so none sees it go;
// its open calls are ended all the same, by a node that has not heard it at
// two looks a resume grace and a third apart (sweepUnheard).
func TestUnheardNodesCallsClosed(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns, err := natsreg.StartEmbedded(t.TempDir(), natsreg.Embed{Log: testLog()})
	ok(t, err)
	t.Cleanup(ns.Shutdown)
	node := func(name string) *rt.Server {
		return rt.NewServer(t, func(c *rendezvous.Config) {
			c.NATSURL, c.NodeName, c.TURN.Listen, c.ResumeGrace = ns.URL(), name, "", 2*time.Second
		})
	}
	a, b := node("a"), node("b")
	_, _, parent, cred, id := callingFamily(t, ctx, b.WSURL, a.WSURL)
	// b dies with the call open, and a goes before it could see b gone.
	ok(t, b.Close())
	ok(t, a.Close())
	parent.Close()

	c := node("c") // never heard b
	ok(t, c.WaitLogged(ctx, "cluster: ended the calls of a node not heard since this one started", 1))
	p, calls, err := rt.DialParent(ctx, c.WSURL, cred.ParentID, cred.Token)
	ok(t, err)
	defer p.Close()
	i := slices.IndexFunc(calls, func(r protocol.CallRecord) bool { return r.CallID == id })
	if i < 0 || calls[i].Outcome != protocol.OutcomeInterrupted || calls[i].EndedAt.IsZero() {
		t.Fatalf("the unheard node's call in the log: %+v, want interrupted and ended", calls)
	}
}
