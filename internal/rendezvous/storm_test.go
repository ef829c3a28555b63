package rendezvous_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

const (
	stormFamilies = 1000
	stormRounds   = 3
	stormParallel = 128 // logins in flight at once ("all at once", bounded for CI)
)

// household is one terminal paired with its own parent, as the storm test
// keeps them.
type household struct {
	key      *ecdsa.PrivateKey
	deviceID string
	parentID string
	token    string
	terminal *rt.Client
	parent   *rt.Client
	replaced []*rt.Client // earlier terminal sockets left for a new login to replace
}

// TestReconnectStorm: 1,000 terminals, each paired with its own parent, all
// reconnect at once, several rounds in random order — half of each round's
// old sockets dropped without a close, the other half left open for the new
// login to replace. Afterwards every parent rings at once, and the test
// checks exhaustively that each ring reached exactly its own family's
// terminal and no other, that presence is right on both sides, that each
// replaced socket was closed with 4002, and that each parent's call log
// holds exactly its own call.
func TestReconnectStorm(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		noLimits(c) // a thousand logins from 127.0.0.1 at once
		// The storm fits inside the production login rate per identity.
		c.Limits.LoginsPerIdentity = rendezvous.DefaultLimits().LoginsPerIdentity
	})
	fams := make([]*household, stormFamilies)
	for i := range fams {
		key, dev := rt.NewKey()
		fams[i] = &household{key: key, deviceID: dev}
	}
	start := time.Now()

	// Register every terminal (its first login), then pair it with its own
	// parent in the store, as a completed pairing leaves it.
	check(t, parallel(ctx, len(fams), func(i int) error {
		c, err := rt.DialTerminal(ctx, srv.WSURL, fams[i].key)
		if err != nil {
			return err
		}
		// Registered once logged in; no close handshake is needed, and a
		// thousand of them on a loaded machine can outlast its 5 s limit.
		return c.Conn.CloseNow()
	}))
	for _, f := range fams {
		f.parentID, f.token = protocol.NewID(), protocol.NewNonce()
		sum := sha256.Sum256([]byte(f.token))
		check(t, srv.Registry().CreatePairing(f.deviceID, f.parentID, sum[:], "", time.Now()))
	}
	check(t, parallel(ctx, len(fams), func(i int) error {
		p, calls, err := rt.DialParent(ctx, srv.WSURL, fams[i].parentID, fams[i].token)
		if err != nil {
			return err
		}
		t.Cleanup(func() { p.Conn.CloseNow() })
		if len(calls) != 0 {
			return fmt.Errorf("family %d: new parent's call log has %d entries", i, len(calls))
		}
		fams[i].parent = p
		return nil
	}))
	t.Logf("%d families registered, paired and their parents online in %v", len(fams), time.Since(start).Round(time.Millisecond))

	for round := range stormRounds {
		start := time.Now()
		order := rand.Perm(len(fams))
		check(t, parallel(ctx, len(order), func(k int) error {
			f := fams[order[k]]
			if old := f.terminal; old != nil {
				if k%2 == 0 {
					old.Conn.CloseNow() // power cut: no close frame
				} else {
					f.replaced = append(f.replaced, old) // the new login replaces it
				}
			}
			c, err := rt.DialTerminal(ctx, srv.WSURL, f.key)
			if err != nil {
				return fmt.Errorf("family %d round %d: %w", order[k], round, err)
			}
			w := c.Welcome
			if w.DeviceID != f.deviceID || w.Paired == nil || !*w.Paired || w.PeerOnline == nil || !*w.PeerOnline {
				return fmt.Errorf("family %d round %d: terminal welcome %+v, want its own ID, paired, parent online", order[k], round, w)
			}
			f.terminal = c
			return nil
		}))
		t.Logf("round %d: %d terminals reconnected in %v", round+1, len(fams), time.Since(start).Round(time.Millisecond))
	}
	for _, f := range fams {
		t.Cleanup(func() { f.terminal.Conn.CloseNow() })
	}

	// Every replaced socket was told so.
	check(t, parallel(ctx, len(fams), func(i int) error {
		for _, old := range fams[i].replaced {
			code, err := old.WaitClosed(ctx)
			if err != nil {
				return err
			}
			if code != rendezvous.CloseReplaced {
				return fmt.Errorf("family %d: replaced terminal socket closed with %v, want 4002", i, code)
			}
		}
		return nil
	}))

	// Every parent rings at once.
	callIDs := make([]string, len(fams))
	for i := range callIDs {
		callIDs[i] = protocol.NewID()
	}
	check(t, parallel(ctx, len(fams), func(i int) error {
		return fams[i].parent.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: callIDs[i]})
	}))
	check(t, parallel(ctx, len(fams), func(i int) error {
		f := fams[i]
		// The parent: presence changes from the storm, then ringing. The
		// last presence must say the terminal is online.
		online := *f.parent.Welcome.PeerOnline
		for {
			m, err := f.parent.Recv(ctx)
			if err != nil {
				return fmt.Errorf("family %d parent: %w", i, err)
			}
			if m.Type == protocol.TypePresence {
				online = *m.PeerOnline
				continue
			}
			if m.Type != protocol.TypeRinging || m.CallID != callIDs[i] {
				return fmt.Errorf("family %d parent: got %s for call %s before its ringing for %s", i, m.Type, m.CallID, callIDs[i])
			}
			break
		}
		if !online {
			return fmt.Errorf("family %d parent: last presence says the terminal is offline", i)
		}
		// The terminal: its own parent's ring, as the very next message.
		m, err := f.terminal.Expect(ctx, protocol.TypeRing)
		if err != nil {
			return fmt.Errorf("family %d terminal: %w", i, err)
		}
		if m.CallID != callIDs[i] {
			owner := -1
			for j, id := range callIDs {
				if id == m.CallID {
					owner = j
				}
			}
			return fmt.Errorf("family %d terminal got the ring of family %d", i, owner)
		}
		if err := f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: m.CallID, Reason: protocol.ReasonDecline}); err != nil {
			return err
		}
		if m, err := f.parent.Expect(ctx, protocol.TypeHangup); err != nil || m.CallID != callIDs[i] || m.Reason != protocol.ReasonDecline {
			return fmt.Errorf("family %d parent: hangup %+v, %v; want its call declined", i, m, err)
		}
		// The pushed call log holds exactly this family's one call.
		log, err := f.parent.Expect(ctx, protocol.TypeCallLog)
		if err != nil {
			return fmt.Errorf("family %d parent: %w", i, err)
		}
		if len(log.Calls) != 1 || log.Calls[0].CallID != callIDs[i] || log.Calls[0].Outcome != protocol.OutcomeDeclined {
			return fmt.Errorf("family %d parent: call log %+v, want only its declined call %s", i, log.Calls, callIDs[i])
		}
		// Nothing else is queued for either side.
		if err := f.terminal.Barrier(ctx); err != nil {
			return fmt.Errorf("family %d terminal: %w", i, err)
		}
		if err := f.parent.Barrier(ctx); err != nil {
			return fmt.Errorf("family %d parent: %w", i, err)
		}
		return nil
	}))
	// And the store agrees: one call per pairing, and the pairings unchanged.
	for i, f := range fams {
		if p := try(srv.Registry().ParentOf(f.deviceID)).must(t); p != f.parentID {
			t.Fatalf("family %d: stored parent %s, want %s", i, p, f.parentID)
		}
		calls := try(srv.Registry().CallLog(f.parentID, false)).must(t)
		if len(calls) != 1 || calls[0].CallID != callIDs[i] {
			t.Fatalf("family %d: stored call log %+v, want only %s", i, calls, callIDs[i])
		}
	}
	t.Logf("storm: %d families, %d rounds: every ring reached its own terminal only; server %+v", len(fams), stormRounds, srv.AdmissionStats())
}

// parallel runs fn(0..n-1) with at most stormParallel at once and returns
// the first error.
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	sem := make(chan struct{}, stormParallel)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	return first
}
