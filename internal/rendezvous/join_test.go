package rendezvous_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// openStore opens the bbolt registry in cfg's data directory, for a
// server on a wrapper of it (serveOn).
func openStore(t *testing.T, cfg rendezvous.Config) *rendezvous.Store {
	t.Helper()
	st, err := rendezvous.OpenStore(cfg.DataDir + "/" + rendezvous.RegistryFile)
	check(t, err)
	return st
}

// serveOn serves a server on reg until the test ends and returns its
// WebSocket URL.
func serveOn(t *testing.T, cfg rendezvous.Config, reg rendezvous.Registry) string {
	t.Helper()
	srv, err := rendezvous.NewWithRegistry(cfg, slog.New(slog.DiscardHandler), reg)
	check(t, err)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

// slowRegistry answers ParentOf (or, with slowHas, HasCall instead) after
// a pause and counts how many of those calls are under way at once, as a
// NATS cluster's round trips would be.
type slowRegistry struct {
	rendezvous.Registry
	pause          time.Duration
	slowHas        atomic.Bool
	inFlight, most atomic.Int32
}

func (r *slowRegistry) ParentOf(id string) (string, error) {
	if r.slowHas.Load() {
		return r.Registry.ParentOf(id)
	}
	r.wait()
	return r.Registry.ParentOf(id)
}

func (r *slowRegistry) HasCall(parentID, callID string) (bool, error) {
	if r.slowHas.Load() {
		r.wait()
	}
	return r.Registry.HasCall(parentID, callID)
}

func (r *slowRegistry) wait() {
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for {
		m := r.most.Load()
		if n <= m || r.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(r.pause)
}

// TestJoinReadsOutsideTheLock: a terminal's login reads its pairing from
// the registry before the hub's lock is taken, so that logins wait on the
// registry side by side, not one behind the other (on NATS each read is a
// round trip). Under the lock, at most one read would be under way.
func TestJoinReadsOutsideTheLock(t *testing.T) {
	cfg := rt.TestConfig(t)
	cfg.TURN.Listen = ""
	st := openStore(t, cfg)
	reg := &slowRegistry{Registry: st, pause: 200 * time.Millisecond}
	wsURL := serveOn(t, cfg, reg)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			key, _ := rt.NewKey()
			c, err := rt.DialTerminal(ctx, wsURL, key)
			if err != nil {
				t.Error(err)
				return
			}
			c.Close()
		})
	}
	wg.Wait()
	if most := reg.most.Load(); most < 2 {
		t.Fatalf("at most %d pairing read under way at once across 8 logins: the reads wait on each other", most)
	}
	t.Logf("up to %d of 8 logins' pairing reads under way at once", reg.most.Load())
}

// TestRingReadsOutsideTheLock: a ring reads what it needs of the registry
// (is the call ID used, can the parent be woken) before the hub's lock, so
// that eight families ringing at once wait on the registry side by side.
// Under the lock, at most one read would be under way.
func TestRingReadsOutsideTheLock(t *testing.T) {
	cfg := rt.TestConfig(t)
	cfg.TURN.Listen = ""
	cfg.PairRequestsPerMinutePerIP = 100 // eight pairings from 127.0.0.1
	st := openStore(t, cfg)
	reg := &slowRegistry{Registry: st, pause: 200 * time.Millisecond}
	wsURL := serveOn(t, cfg, reg)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var terms []*rt.Client
	for range 8 {
		key, _ := rt.NewKey()
		term := try(rt.DialTerminal(ctx, wsURL, key)).must(t)
		defer term.Close()
		try(rt.Pair(ctx, wsURL, term, pairing.NewSecret())).must(t)
		terms = append(terms, term)
	}
	reg.slowHas.Store(true)
	var wg sync.WaitGroup
	for _, term := range terms {
		wg.Go(func() {
			id := protocol.NewID()
			if err := term.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}); err != nil {
				t.Error(err)
				return
			}
			// No parent online and none to wake: ended at once, logged.
			if m, err := term.WaitFor(ctx, protocol.TypeHangup); err != nil || m.CallID != id || m.Reason != protocol.ReasonUnavailable {
				t.Errorf("the ring of %s ended with %+v (%v), want unavailable", id, m, err)
			}
		})
	}
	wg.Wait()
	if most := reg.most.Load(); most < 2 {
		t.Fatalf("at most %d call-ID read under way at once across 8 rings: the reads wait on each other", most)
	}
	t.Logf("up to %d of 8 rings' call-ID reads under way at once", reg.most.Load())
}

// commitBetween reads one parent as a page logging in mid-commit would:
// its first Parent read finds the pairing still pending (not a parent
// yet), and by the PendingParent read after it the terminal has
// committed (no longer pending).
type commitBetween struct {
	rendezvous.Registry
	parentID string
	armed    atomic.Bool
}

func (r *commitBetween) Parent(id string) (rendezvous.Parent, error) {
	// armed first: its Store, after parentID's write, orders the read.
	if r.armed.Load() && id == r.parentID && r.armed.CompareAndSwap(true, false) {
		return rendezvous.Parent{}, rendezvous.ErrNotFound
	}
	return r.Registry.Parent(id)
}

// TestParentLoginWhilePairingCommits: a page that logs in while its
// terminal commits the pairing is let in. Read between the registry's two
// reads (is it a parent? is it pending?), the pairing is neither, and the
// page was refused auth_failed and deleted its credential: the family
// paired on the terminal and the server, and not on the phone
// (TestPairingThroughNodeDeath found it on NATS, where the reads are round
// trips apart).
func TestParentLoginWhilePairingCommits(t *testing.T) {
	cfg := rt.TestConfig(t)
	cfg.TURN.Listen = ""
	st := openStore(t, cfg)
	reg := &commitBetween{Registry: st}
	wsURL := serveOn(t, cfg, reg)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	key, _ := rt.NewKey()
	term, err := rt.DialTerminal(ctx, wsURL, key)
	check(t, err)
	defer term.Close()
	cred, err := rt.Pair(ctx, wsURL, term, pairing.NewSecret())
	check(t, err)
	reg.parentID = cred.ParentID
	reg.armed.Store(true)
	p, _, err := rt.DialParent(ctx, wsURL, cred.ParentID, cred.Token)
	if err != nil {
		t.Fatalf("the page logging in while its pairing commits: %v", err)
	}
	p.Close()
	if reg.armed.Load() {
		t.Fatal("the login did not read the parent")
	}
}

// gatedLog holds every read of one parent's call log (not the marking
// read of a page's request or login) until open is closed, as a slow
// registry would; read is closed when the first such read is under way.
type gatedLog struct {
	rendezvous.Registry
	parentID   atomic.Pointer[string]
	read, open chan struct{}
	readOnce   sync.Once
	openOnce   sync.Once
}

func (g *gatedLog) CallLog(parentID string, markSeen bool) ([]protocol.CallRecord, error) {
	if p := g.parentID.Load(); p != nil && *p == parentID && !markSeen {
		g.readOnce.Do(func() { close(g.read) })
		<-g.open
	}
	return g.Registry.CallLog(parentID, markSeen)
}

func (g *gatedLog) release() { g.openOnce.Do(func() { close(g.open) }) }

// TestCallLogPushReadsOutsideTheLock: the log pushed at a call's end is
// read outside the hub's lock (on NATS a round trip) and without holding
// the call log's commits back, and still reaches the page in its place.
// While one family's read is held, another family calls from ring to
// hangup and gets its log; the held family's next ring, queued behind the
// log, reaches its page only after the log, which holds the call that
// ended (and, read later, may show the new one ringing).
func TestCallLogPushReadsOutsideTheLock(t *testing.T) {
	cfg := rt.TestConfig(t)
	cfg.TURN.Listen = ""
	cfg.PairRequestsPerMinutePerIP = 100
	reg := &gatedLog{Registry: openStore(t, cfg), read: make(chan struct{}), open: make(chan struct{})}
	wsURL := serveOn(t, cfg, reg)
	t.Cleanup(reg.release) // before the server closes: it waits for the read
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	type fam struct{ term, parent *rt.Client }
	var fams []fam
	for range 2 {
		key, _ := rt.NewKey()
		term := try(rt.DialTerminal(ctx, wsURL, key)).must(t)
		defer term.Close()
		cred := try(rt.Pair(ctx, wsURL, term, pairing.NewSecret())).must(t)
		p, _, err := rt.DialParent(ctx, wsURL, cred.ParentID, cred.Token)
		check(t, err)
		defer p.Close()
		p.Key = cred.Key
		fams = append(fams, fam{term, p})
		reg.parentID.CompareAndSwap(nil, &cred.ParentID) // the first family's reads are held
	}
	a, b := fams[0], fams[1]

	// A's child calls; the parent declines: the log's read is held.
	first := protocol.NewID()
	check(t, a.term.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: first}))
	try(a.parent.WaitFor(ctx, protocol.TypeRing)).must(t)
	check(t, a.parent.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: first, Reason: protocol.ReasonDecline}))
	select {
	case <-reg.read:
	case <-ctx.Done():
		t.Fatal("the declined call's log was never read")
	}
	// Meanwhile family B calls through, and its page gets its log.
	call := protocol.NewID()
	check(t, b.term.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: call}))
	try(b.parent.WaitFor(ctx, protocol.TypeRing)).must(t)
	check(t, b.parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: call}))
	try(b.term.WaitFor(ctx, protocol.TypeAccept)).must(t)
	check(t, b.term.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: call, Reason: protocol.ReasonHangup}))
	if m := try(b.parent.WaitFor(ctx, protocol.TypeCallLog)).must(t); len(m.Calls) == 0 || m.Calls[0].CallID != call {
		t.Fatalf("family B's log while A's read is held: %+v, want its call first", m.Calls)
	}
	// A's child calls again: the ring waits behind the log.
	try(a.term.WaitFor(ctx, protocol.TypeHangup)).must(t)
	second := protocol.NewID()
	check(t, a.term.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: second}))
	try(a.term.WaitFor(ctx, protocol.TypeRinging)).must(t)
	reg.release()
	var got []string
	for len(got) < 2 {
		m := try(a.parent.Recv(ctx)).must(t)
		switch m.Type {
		case protocol.TypeCallLog:
			// Read after the second ring was put, it may show that one
			// ringing too.
			i := slices.IndexFunc(m.Calls, func(r protocol.CallRecord) bool { return r.CallID == first })
			if i < 0 || m.Calls[i].Outcome != protocol.OutcomeDeclined {
				t.Fatalf("family A's pushed log: %+v, want the declined call in it", m.Calls)
			}
			got = append(got, m.Type)
		case protocol.TypeRing:
			if m.CallID != second {
				t.Fatalf("ring for %s, want %s", m.CallID, second)
			}
			got = append(got, m.Type)
		}
	}
	if got[0] != protocol.TypeCallLog {
		t.Fatalf("family A's page got %v: the ring overtook the log it follows", got)
	}
}

// gatedHas holds the first HasCall of one call ID after it has read the
// registry, until open is closed: a slow registry's answer, stale by the
// time it arrives. read is closed when that read is done.
type gatedHas struct {
	rendezvous.Registry
	callID     string
	read, open chan struct{}
	held       atomic.Bool
}

func (g *gatedHas) HasCall(parentID, callID string) (bool, error) {
	used, err := g.Registry.HasCall(parentID, callID)
	if callID == g.callID && g.held.CompareAndSwap(false, true) {
		close(g.read)
		<-g.open
	}
	return used, err
}

// TestRingCallIDCheckedAcrossACommit: a ring's call ID is read outside the
// hub's lock and checked again under it. A call of the same ID that began,
// ended and was written in between is in neither look (not yet in the
// store when read, no longer waiting when checked); the ring must still be
// refused, not start a second call of that ID.
func TestRingCallIDCheckedAcrossACommit(t *testing.T) {
	cfg := rt.TestConfig(t)
	cfg.TURN.Listen = ""
	id := protocol.NewID()
	reg := &gatedHas{Registry: openStore(t, cfg), callID: id, read: make(chan struct{}), open: make(chan struct{})}
	wsURL := serveOn(t, cfg, reg)
	t.Cleanup(func() {
		select {
		case <-reg.open:
		default:
			close(reg.open)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	key, _ := rt.NewKey()
	term := try(rt.DialTerminal(ctx, wsURL, key)).must(t)
	defer term.Close()
	cred := try(rt.Pair(ctx, wsURL, term, pairing.NewSecret())).must(t)
	var pages [2]*rt.Client
	for i := range pages {
		p, _, err := rt.DialParent(ctx, wsURL, cred.ParentID, cred.Token)
		check(t, err)
		defer p.Close()
		p.Key = cred.Key
		pages[i] = p
	}

	// One page rings the child with the ID; its look at the log is held.
	check(t, pages[0].Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	select {
	case <-reg.read:
	case <-ctx.Done():
		t.Fatal("the page's ring never read the log")
	}
	// Meanwhile the child calls with the same ID; the other page declines,
	// and the call is written.
	check(t, term.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	try(pages[1].WaitFor(ctx, protocol.TypeRing)).must(t)
	check(t, pages[1].Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonDecline}))
	try(term.WaitFor(ctx, protocol.TypeHangup)).must(t)
	for written := false; !written; {
		// The ringing record is written first; wait for the declined one.
		logged := try(reg.Registry.CallLog(cred.ParentID, false)).must(t)
		written = slices.ContainsFunc(logged, func(r protocol.CallRecord) bool {
			return r.CallID == id && r.Outcome == protocol.OutcomeDeclined
		})
		if !written {
			time.Sleep(5 * time.Millisecond)
		}
	}
	// The held look answers "not used", stale: the ring must be refused.
	close(reg.open)
	for {
		m := try(pages[0].Recv(ctx)).must(t)
		if m.Type == protocol.TypeRinging && m.CallID == id {
			t.Fatal("a second call of a call ID already in the log started")
		}
		if m.Type == protocol.TypeError && m.Code == protocol.ErrCodeNotAllowed {
			break
		}
	}
	check(t, term.Barrier(ctx))
}
