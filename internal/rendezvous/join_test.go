package rendezvous_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
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
