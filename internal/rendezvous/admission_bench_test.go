package rendezvous_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
)

// BenchmarkTerminalLogin: one terminal login, end to end over loopback
// (upgrade, challenge, signed hello, verify, record, welcome), the work a
// reconnect storm multiplies.
func BenchmarkTerminalLogin(b *testing.B) {
	srv := rt.NewServer(b, func(c *rendezvous.Config) {
		c.Limits.ConnectsPerIP = rendezvous.Rate{Burst: 1 << 30, PerMinute: 1 << 30}
		c.Limits.LoginsPerIdentity = rendezvous.Rate{Burst: 1 << 30, PerMinute: 1 << 30}
	})
	key, _ := rt.NewKey()
	ctx := context.Background()
	for b.Loop() {
		c, err := rt.DialTerminal(ctx, srv.WSURL, key)
		if err != nil {
			b.Fatal(err)
		}
		c.Conn.CloseNow()
	}
}

// BenchmarkRefusedUpgrade: what a flood connection costs once its address
// is over its connect rate: a TCP connection and an HTTP 429, no upgrade.
func BenchmarkRefusedUpgrade(b *testing.B) {
	srv := rt.NewServer(b, func(c *rendezvous.Config) {
		c.Limits.ConnectsPerIP = rendezvous.Rate{Burst: 1}
	})
	src := newSource("127.0.0.9")
	ctx := context.Background()
	if c, status, _ := src.dial(ctx, srv.WSURL); status != http.StatusSwitchingProtocols {
		b.Fatalf("first dial: %d", status)
	} else {
		c.CloseNow()
	}
	for b.Loop() {
		if _, status, _ := src.dial(ctx, srv.WSURL); status != http.StatusTooManyRequests {
			b.Fatalf("dial over the rate: status %d, want 429", status)
		}
	}
}
