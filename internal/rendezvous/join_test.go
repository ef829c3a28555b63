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
)

// slowRegistry answers ParentOf after a pause and counts how many of its
// calls are under way at once, as a NATS cluster's round trips would be.
type slowRegistry struct {
	rendezvous.Registry
	pause          time.Duration
	inFlight, most atomic.Int32
}

func (r *slowRegistry) ParentOf(id string) (string, error) {
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for {
		m := r.most.Load()
		if n <= m || r.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(r.pause)
	return r.Registry.ParentOf(id)
}

// TestJoinReadsOutsideTheLock: a terminal's login reads its pairing from
// the registry before the hub's lock is taken, so that logins wait on the
// registry side by side, not one behind the other (on NATS each read is a
// round trip). Under the lock, at most one read would be under way.
func TestJoinReadsOutsideTheLock(t *testing.T) {
	cfg := rt.TestConfig(t)
	cfg.TURN.Listen = ""
	st, err := rendezvous.OpenStore(cfg.DataDir + "/" + rendezvous.RegistryFile)
	check(t, err)
	reg := &slowRegistry{Registry: st, pause: 200 * time.Millisecond}
	srv, err := rendezvous.NewWithRegistry(cfg, slog.New(slog.DiscardHandler), reg)
	check(t, err)
	hs := httptest.NewServer(srv.Handler())
	defer func() { hs.Close(); srv.Close() }()
	wsURL := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"

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
