package rendezvous_test

import (
	"context"
	"crypto/ecdsa"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/backoff"
	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
)

const (
	cgnatUnits = 1000
	cgnatAddr  = "127.0.0.77" // the carrier's one public address
	// cgnatGuard bounds the test's wait for every unit: a hang guard,
	// not the figure (BenchmarkCGNATRestart measures that; the issue asks
	// for every unit back within a minute). Before the connect-rate refund
	// the units took some eight minutes, so the guard still tells the two
	// apart on a loaded machine, where a minute is not enough.
	cgnatGuard = 240 * time.Second
)

// cgnatUnit is one terminal behind the carrier-grade NAT, reduced to its
// connection policy: log in with its device certificate, and when the
// socket ends, reconnect with the terminal's backoff (internal/backoff,
// with terminald's bounds), starting over at each login.
type cgnatUnit struct {
	key  *ecdsa.PrivateKey
	cert []byte
	up   atomic.Bool
	at   atomic.Int64 // when it last logged in (UnixNano)
}

// TestCGNATRestart: 1,000 terminals behind one address log in under the
// production limits, the server restarts, and every one of them comes back
// (within cgnatGuard). With the connect rate counting every connection
// (burst 60, 120 a minute per address) this took some eight minutes; it
// now counts only connections that do not log in with a credential
// (admission.go), so a flood from one address is held as before
// (TestFloodWhileCalling, TestConnectRatePerIP, TestConnectRateCountsFailedLogins).
func TestCGNATRestart(t *testing.T) {
	first, back := cgnatRestart(t)
	t.Logf("first start: all %d units behind %s in within %v; after a restart all back within %v", cgnatUnits, cgnatAddr, first, back)
}

// BenchmarkCGNATRestart is TestCGNATRestart's figure: seconds until the
// last of 1,000 units behind one address is back after a server restart
// (s-back), and after the first start (s-first). The issue's bound is 60 s.
func BenchmarkCGNATRestart(b *testing.B) {
	var first, back time.Duration
	for range b.N {
		first, back = cgnatRestart(b)
	}
	b.ReportMetric(first.Seconds(), "s-first")
	b.ReportMetric(back.Seconds(), "s-back")
}

// cgnatRestart runs the 1,000 units through a first start and a restart
// and returns how long after each the last of them logged in.
func cgnatRestart(t testing.TB) (first, back time.Duration) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*cgnatGuard+time.Minute)
	defer cancel()
	dir := t.TempDir()
	configure := func(c *rendezvous.Config) { c.DataDir = dir; c.TURN.Secret = "" }
	srv := rt.NewServer(t, configure)
	var url atomic.Value // the server's address as the units resolve it
	url.Store(srv.WSURL)

	src := newSource(cgnatAddr)
	units := make([]*cgnatUnit, cgnatUnits)
	for i := range units {
		key, _ := rt.NewKey()
		cert, err := rt.TestCA().Issue(&key.PublicKey)
		check(t, err)
		units[i] = &cgnatUnit{key: key, cert: cert}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// The clock starts before the first unit does. Taken after the loop
	// below, it let a unit that logged in while this goroutine waited to be
	// scheduled again (a loaded machine, -race) count as never in: it stays
	// connected, so it never logs in again, and the test gave up at 999 of
	// 1,000 with the server holding all 1,000 (two loaded runs did).
	start := time.Now()
	for _, u := range units {
		wg.Go(func() {
			b := backoff.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
			for ctx.Err() == nil {
				dctx, dcancel := context.WithTimeout(ctx, 15*time.Second)
				c, err := rt.DialTerminalVia(dctx, url.Load().(string), src.client, u.key, u.cert)
				dcancel()
				if err == nil {
					b.Reset()
					u.at.Store(time.Now().UnixNano())
					u.up.Store(true)
					c.WaitClosed(ctx)
					u.up.Store(false)
					c.Close()
				}
				select {
				case <-time.After(b.Next()):
				case <-ctx.Done():
				}
			}
		})
	}
	allUp := func(since time.Time) (int, time.Duration) {
		n, last := 0, time.Duration(0)
		for _, u := range units {
			if u.up.Load() && u.at.Load() >= since.UnixNano() {
				n++
				last = max(last, time.Duration(u.at.Load()-since.UnixNano()))
			}
		}
		return n, last
	}
	wait := func(since time.Time, what string) time.Duration {
		t.Helper()
		for {
			n, last := allUp(since)
			if n == cgnatUnits {
				return last
			}
			if time.Since(since) > cgnatGuard {
				t.Fatalf("%s: %d of %d units logged in after %v (server: %+v)", what, n, cgnatUnits, cgnatGuard, srv.AdmissionStats())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	first = wait(start, "first start")
	t.Logf("first start: %d units behind %s logged in within %v (server: %+v)", cgnatUnits, cgnatAddr, first.Round(10*time.Millisecond), srv.AdmissionStats())

	check(t, srv.Close())
	// Down for a moment, as a restart is: the units' dials fail meanwhile.
	time.Sleep(2 * time.Second)
	srv = rt.NewServer(t, configure)
	restarted := time.Now()
	url.Store(srv.WSURL)
	back = wait(restarted, "after the restart")
	t.Logf("after a restart: %d units behind %s all back within %v (server: %+v)", cgnatUnits, cgnatAddr, back.Round(10*time.Millisecond), srv.AdmissionStats())
	return first, back
}
