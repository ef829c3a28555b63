package terminal

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tuanju/tuanju/internal/backoff"
	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// connectLoop keeps one signalling connection up, reconnecting with backoff
// and jitter (internal/backoff). It runs beside the loop and tells it
// everything by events: connUp, received, connDown, dialFailed.
//
// The backoff starts over at every successful login: a server restarted
// twice a few seconds apart gets its units back within a second or two of
// each restart, not after the longest wait the first one built up.
func (t *Terminal) connectLoop(ctx context.Context) {
	b := backoff.Backoff{Min: t.cfg.MinBackoff, Max: t.cfg.MaxBackoff}
	netNews := t.d.NetChanged
	for ctx.Err() == nil {
		c, err := t.dial(ctx)
		if err != nil {
			wait := b.Next()
			t.post(ctx, dialFailed{err})
			if errors.Is(err, ErrAuthFailed) {
				// Reachable but refused: most likely this unit's device
				// certificate (expired, or from a program CA the server
				// does not trust). Retrying cannot fix that, but a server
				// being reconfigured can, so keep trying, slowly; the
				// health check shows needs-repair meanwhile.
				t.log.Error("the rendezvous server refused this unit's login: check its device certificate (terminald identity show)", "err", err, "retry_in", wait.Round(time.Millisecond))
			} else {
				t.log.Warn("cannot reach the rendezvous server", "err", err, "retry_in", wait.Round(time.Millisecond))
			}
			waitRetry(ctx, t.log, wait, &netNews)
			continue
		}
		b.Reset()
		t.post(ctx, connUp{c})
		for {
			m, rerr := c.Receive(ctx)
			if rerr != nil {
				err = rerr
				break
			}
			t.post(ctx, received{c, m})
		}
		c.Close()
		t.post(ctx, connDown{c})
		if ctx.Err() != nil {
			return
		}
		wait := b.Next()
		t.log.Warn("signalling connection lost", "err", err, "retry_in", wait.Round(time.Millisecond))
		waitRetry(ctx, t.log, wait, &netNews)
	}
}

// netSettle is how long after news of a network change the terminal
// dials: the news comes in a burst (a DHCP lease is an address, then the
// default route), and a dial between the two fails for want of the route.
const netSettle = 250 * time.Millisecond

// waitRetry waits out a reconnect's backoff, or less: news that the
// network changed (Deps.NetChanged, *news; nil once that ends) ends the
// wait netSettle later, so a unit whose Wi-Fi or cable just came back is
// online within a second rather than at the end of a backoff grown to
// half a minute while it was away.
func waitRetry(ctx context.Context, log *slog.Logger, wait time.Duration, news *<-chan struct{}) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		case _, ok := <-*news:
			if !ok {
				*news = nil // the watch ended: backoff alone
				continue
			}
			if wait > netSettle {
				log.Info("the network changed: reconnecting now")
				timer.Reset(netSettle)
				wait = netSettle
			}
		}
	}
}

// connected takes a new connection into use: the server's welcome, then a
// factory reset the server has not heard of, then the machine.
func (t *Terminal) connected(c ServerConn) {
	t.conn = c
	t.refused = false
	t.reported = nil // the new connection is told at the end of this turn
	w := c.Welcome()
	serverPaired := w.Paired != nil && *w.Paired
	t.peerOnline = w.PeerOnline != nil && *w.PeerOnline
	t.setClock(w.ServerTime)
	// parent_id: the parent the unit itself holds (the boot test compares
	// it with the server's after each power cut).
	t.log.Info("connected to the rendezvous server", "paired", t.m.Paired, "parent_id", t.parentID, "server_paired", serverPaired, "parent_online", t.peerOnline)
	// A reset the server has not heard of goes first, before anything
	// can reach the old parent; then any other difference in the pairing
	// is settled, the terminal's store deciding (trust.go).
	t.sendUnpair()
	t.reconcilePairing(w)
	t.step(call.Connected{Paired: t.m.Paired})
}

// send sends m on the current connection, or drops it (logged) when there
// is none.
func (t *Terminal) send(m protocol.Message) {
	if t.conn == nil {
		t.log.Warn("not connected; message dropped", "type", m.Type)
		return
	}
	t.conn.Send(m)
}
