package webapp_test

import (
	"context"
	"testing"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// shortLinkTimers makes the page's link check quick (signal.js: QUIET_MS,
// PROBE_TIMEOUT_MS), and nothing else, as TestOutgoingNoAnswer shortens its
// ring timer.
const shortLinkTimers = `{
	const st = window.setTimeout;
	const short = { 25000: 300, 8000: 600 };
	window.setTimeout = (fn, ms, ...args) => st(fn, short[ms] || ms, ...args);
}`

// notOnline checks that the page, its own socket down, claims nothing of
// the terminal: not online, "connecting to the server", a banner.
func notOnline(t *testing.T, ctx context.Context, when string) {
	t.Helper()
	waitFor(t, ctx, `window.tuanju.health === 'connecting' && window.tuanju.online === false && !window.tuanju.connected`)
	waitText(t, ctx, "#presence-text", "Connecting to the server")
	waitText(t, ctx, "#home-note", "does not know how the terminal is")
	if eval[bool](t, ctx, `document.getElementById('presence').classList.contains('online')`) {
		t.Errorf("%s: the presence dot still says online", when)
	}
}

// TestOwnReconnectClaimsNothing: while the page's own socket is down — the
// server closed it, the link died without a word (no pong to its ping), the
// browser went offline — it does not say the terminal is online; it says it
// is connecting, until a welcome says again how the terminal is.
func TestOwnReconnectClaimsNothing(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx, c, cred := parentPage(t, f, shortLinkTimers)
	welcome := func(c *pageConn) {
		c.send(protocol.Message{Type: protocol.TypeWelcome, Role: protocol.RoleParent, ParentID: cred.ParentID, DeviceID: cred.DeviceID,
			Paired: ptr(true), PeerOnline: ptr(true), Health: protocol.HealthReady})
		waitFor(t, ctx, `window.tuanju.health === 'ready' && window.tuanju.online === true`)
		waitText(t, ctx, "#presence-text", "ready")
	}
	welcome(c) // a second welcome on the same socket: as after a login
	if !eval[bool](t, ctx, `document.getElementById('home-note').hidden`) {
		t.Error("a note shows beside a terminal that is ready")
	}

	t.Run("the server closes the socket", func(t *testing.T) {
		c.ws.CloseNow()
		next := f.accept(t) // the page is back, but not welcomed yet
		notOnline(t, ctx, "reconnecting")
		c = next
		welcome(c)
	})

	t.Run("the link dies without a word", func(t *testing.T) {
		c.deaf.Store(true) // pings go unanswered, nothing is closed
		next := f.accept(t)
		if c.pings.Load() == 0 {
			t.Error("the page dropped its socket without asking the server first")
		}
		notOnline(t, ctx, "after the unanswered ping")
		c = next
		welcome(c)
		// A live link is not dropped: pings are answered, and the page
		// stays with its socket.
		// Three pings answered (each 300 ms of quiet apart here) prove
		// the page went on with this socket; the bound only stops a hang.
		deadline := time.Now().Add(15 * time.Second)
		for c.pings.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if c.pings.Load() < 3 {
			t.Fatalf("the page pinged %d times in 15 s of silence, want it to check its link", c.pings.Load())
		}
		select {
		case other := <-f.conns:
			t.Fatalf("the page dropped a socket whose pings were answered (new hello %+v)", other.hello)
		default:
		}
		if !eval[bool](t, ctx, `window.tuanju.online === true`) {
			t.Error("a live link lost its terminal")
		}
	})

	t.Run("the browser goes offline", func(t *testing.T) {
		// The event a phone's radio going off fires.
		eval[bool](t, ctx, `window.dispatchEvent(new Event('offline'))`)
		next := f.accept(t)
		notOnline(t, ctx, "offline")
		c = next
		welcome(c)
	})
}
