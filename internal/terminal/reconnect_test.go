package terminal_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/speaker/speakertest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/terminaltest"
)

// TestReconnectBackoffResetsOnLogin: a unit that spent minutes failing to
// reach the server (its backoff at the maximum), then logged in, is back
// within 3×MinBackoff of each of several restarts that come less than a
// minute apart. The backoff used to start over only after a connection had
// lived a minute, so each of these returns took up to MaxBackoff (30 s).
func TestReconnectBackoffResetsOnLogin(t *testing.T) {
	const (
		minBackoff = 500 * time.Millisecond
		restarts   = 5
		lifetime   = 10 * time.Second // between restarts: well under a minute
	)
	synctest.Test(t, func(t *testing.T) {
		srv := runUnreachable(t, minBackoff, 30*time.Second, nil)

		time.Sleep(3 * time.Minute) // the server is down: the backoff grows to its maximum
		srv.Refuse(nil)
		waitLogins(t, srv, 1, time.Minute)
		for i := range restarts {
			time.Sleep(lifetime)
			srv.Conn().Close() // the server restarts
			lost := time.Now()
			waitLogins(t, srv, i+2, time.Minute)
			if back := time.Since(lost); back > 3*minBackoff {
				t.Fatalf("restart %d: back after %v, want within 3×MinBackoff = %v (the backoff did not start over at the login)", i+1, back, 3*minBackoff)
			}
		}
	})
}

// runUnreachable runs a paired terminal (in the test's bubble, until the
// test ends) whose server refuses it until the test says otherwise
// (srv.Refuse(nil)); news is its Deps.NetChanged.
func runUnreachable(t *testing.T, minBackoff, maxBackoff time.Duration, news <-chan struct{}) *terminaltest.Server {
	t.Helper()
	p, err := terminaltest.NewParent()
	if err != nil {
		t.Fatal(err)
	}
	srv := terminaltest.NewServer(true, true)
	srv.Refuse(errors.New("server down"))
	term, err := terminal.New(terminal.Config{LoopbackOnly: true, MinBackoff: minBackoff, MaxBackoff: maxBackoff},
		terminal.Deps{Store: newStore(t, p), Buttons: make(chan device.ButtonEvent), LEDs: &terminaltest.LEDs{},
			Speaker: &speakertest.Speaker{}, Dial: srv.Dial, NetChanged: news})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); term.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv
}

// waitLogins sleeps (in the bubble) until srv has had n logins, at most
// limit.
func waitLogins(t *testing.T, srv *terminaltest.Server, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for srv.Logins() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d logins after %v, want %d", srv.Logins(), limit, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReconnectOnNetworkNews: a unit that cannot reach the server waits
// out its backoff (here at least 20 s) — unless it hears that the network
// changed (Deps.NetChanged: a DHCP lease after its Wi-Fi joined), when it
// dials within a second. The control, in the same run: with no news the
// login comes only at the end of the backoff.
func TestReconnectOnNetworkNews(t *testing.T) {
	const minBackoff = 20 * time.Second
	for _, tc := range []struct {
		name   string
		news   bool
		lo, hi time.Duration // the login's time after the server came back
	}{
		{"news", true, 0, time.Second},
		{"no news", false, minBackoff - 2*time.Second, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				news := make(chan struct{}, 1)
				srv := runUnreachable(t, minBackoff, time.Minute, news)

				time.Sleep(time.Second) // the first dial failed: ≥ 20 s to the next
				srv.Refuse(nil)
				back := time.Now()
				if tc.news {
					news <- struct{}{}
				}
				waitLogins(t, srv, 1, 2*time.Minute)
				if d := time.Since(back); d < tc.lo || d > tc.hi {
					t.Fatalf("logged in %v after the network came back, want %v..%v", d, tc.lo, tc.hi)
				}
			})
		})
	}
}
