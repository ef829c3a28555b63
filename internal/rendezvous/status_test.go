package rendezvous_test

import (
	"slices"
	"testing"
	"time"

	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestTerminalHealthReachesParent: what the terminal says of its own health
// reaches its parent's sockets in a presence (once per change), a tab that
// opens later has it in its welcome, and it goes with the terminal: offline
// has no health, and a new login has none until it reports.
func TestTerminalHealthReachesParent(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)

	report := func(health string, faults ...string) protocol.Message {
		m := protocol.Message{Type: protocol.TypeStatus, Health: health}
		if len(faults) > 0 {
			m.Faults = faults
		}
		check(t, f.terminal.Send(ctx, m))
		return m
	}
	wantPresence := func(c *rt.Client, health string, faults ...string) {
		t.Helper()
		m := try(c.Expect(ctx, protocol.TypePresence)).must(t)
		if !*m.PeerOnline || m.Health != health || !slices.Equal(m.Faults, faults) {
			t.Fatalf("presence %+v, want online, health %q, faults %v", m, health, faults)
		}
	}

	report(protocol.HealthReady)
	wantPresence(f.parent, protocol.HealthReady)
	report(protocol.HealthReady) // no change: nothing
	report(protocol.HealthNeedsRepair, protocol.FaultCamera)
	wantPresence(f.parent, protocol.HealthNeedsRepair, protocol.FaultCamera)
	check(t, f.parent.Barrier(ctx)) // the repeated "ready" sent nothing

	// A tab opened now learns it from its welcome.
	tab, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	defer tab.Close()
	if w := tab.Welcome; !*w.PeerOnline || w.Health != protocol.HealthNeedsRepair || !slices.Equal(w.Faults, []string{protocol.FaultCamera}) {
		t.Fatalf("a new tab's welcome %+v, want the terminal's needs_repair (camera)", w)
	}
	report(protocol.HealthNeedsRepair, protocol.FaultCamera, protocol.FaultButton)
	wantPresence(f.parent, protocol.HealthNeedsRepair, protocol.FaultCamera, protocol.FaultButton)
	wantPresence(tab, protocol.HealthNeedsRepair, protocol.FaultCamera, protocol.FaultButton)

	// Gone: offline says nothing of health; back: nothing until it says.
	f.terminal.Close()
	if m := try(f.parent.Expect(ctx, protocol.TypePresence)).must(t); *m.PeerOnline || m.Health != "" || m.Faults != nil {
		t.Fatalf("presence %+v when the terminal left, want offline without health", m)
	}
	term := try(rt.DialTerminal(ctx, srv.WSURL, f.key)).must(t)
	defer term.Close()
	wantPresence(f.parent, "")
	check(t, term.Send(ctx, protocol.Message{Type: protocol.TypeStatus, Health: protocol.HealthInCall}))
	wantPresence(f.parent, protocol.HealthInCall)

	// Only a terminal reports health, and only a bad report is refused.
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeStatus, Health: protocol.HealthReady}))
	if e := try(f.parent.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t); e.RefType != protocol.TypeStatus {
		t.Fatalf("a parent's status got %+v, want not_allowed", e)
	}
	check(t, term.SendRaw(ctx, []byte(`{"type":"status","health":"needs_repair","faults":["camera missing since 18:00"]}`)))
	try(term.ExpectError(ctx, protocol.ErrCodeBadMessage)).must(t)
	check(t, f.parent.Barrier(ctx)) // the refused reports reached no one
}

// TestPing: a page proves its own link with ping; the server answers pong.
// A terminal has WebSocket pings and no need of it.
func TestPing(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypePing}))
	try(f.parent.Expect(ctx, protocol.TypePong)).must(t)
	page := try(rt.DialPairing(ctx, srv.WSURL)).must(t)
	defer page.Close()
	check(t, page.Send(ctx, protocol.Message{Type: protocol.TypePing}))
	try(page.Expect(ctx, protocol.TypePong)).must(t)
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypePing}))
	try(f.terminal.ExpectError(ctx, protocol.ErrCodeNotAllowed)).must(t)
}

// TestPairingTwoPhones: a second phone asking to pair a terminal while the
// first one's request waits for the child's press is told that another
// phone is pairing (pair_busy), not that it tried too often; once the first
// is done, the terminal is paired and a late request is already_paired.
func TestPairingTwoPhones(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	key, dev := rt.NewKey()
	term := try(rt.DialTerminal(ctx, srv.WSURL, key)).must(t)
	defer term.Close()
	secret := pairing.NewSecret()

	first := try(rt.StartPair(ctx, srv.WSURL, dev, secret)).must(t)
	defer first.Close()
	// The server has taken the first request once it answers what followed.
	check(t, first.Send(ctx, protocol.Message{Type: protocol.TypePing}))
	try(first.Expect(ctx, protocol.TypePong)).must(t)
	second := try(rt.DialPairing(ctx, srv.WSURL)).must(t)
	defer second.Close()
	for range 3 { // however often it retries
		check(t, second.Send(ctx, pairRequest(t, secret, dev)))
		if e := try(second.ExpectError(ctx, protocol.ErrCodePairBusy)).must(t); e.RefType != protocol.TypePairRequest || e.Text == "" {
			t.Fatalf("second phone got %+v, want pair_busy for its pair_request", e)
		}
	}
	done := make(chan error, 1)
	go func() { _, _, err := term.AnswerPair(ctx, secret); done <- err }()
	cred := try(first.Finish(ctx)).must(t)
	check(t, <-done) // the terminal saw one request: the first phone's
	if got := try(srv.Registry().ParentOf(dev)).must(t); got != cred.ParentID {
		t.Fatalf("terminal paired with %s, want the first phone %s", got, cred.ParentID)
	}
	check(t, second.Send(ctx, pairRequest(t, secret, dev)))
	try(second.ExpectError(ctx, protocol.ErrCodeAlreadyPaired)).must(t)
}

// TestTerminalBudgetReachesParent: the terminal's data budget rides its
// status to the parent's presence (once per change), a tab opened later has
// it in its welcome, and it goes when the terminal leaves.
func TestTerminalBudgetReachesParent(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	until := time.Date(2026, 12, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	b := protocol.Budget{TotalBytes: 500_000_000, UsedBytes: 460_000_000, Limit: protocol.LimitAudioOnly, Until: until}
	send := func(b *protocol.Budget) {
		check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeStatus, Health: protocol.HealthReady, Budget: b}))
	}
	send(&b)
	m := try(f.parent.Expect(ctx, protocol.TypePresence)).must(t)
	if m.Budget == nil || m.Budget.UsedBytes != b.UsedBytes || m.Budget.Limit != protocol.LimitAudioOnly || !m.Budget.Until.Equal(until) {
		t.Fatalf("presence %+v, want the budget %+v", m, b)
	}
	send(&b) // no change: nothing
	b2 := b
	b2.UsedBytes += 1_000_000
	send(&b2)
	if m := try(f.parent.Expect(ctx, protocol.TypePresence)).must(t); m.Budget == nil || m.Budget.UsedBytes != b2.UsedBytes {
		t.Fatalf("presence %+v, want used %d", m, b2.UsedBytes)
	}
	check(t, f.parent.Barrier(ctx)) // the repeated report sent nothing

	tab, _, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	defer tab.Close()
	if w := tab.Welcome; w.Budget == nil || w.Budget.UsedBytes != b2.UsedBytes || w.Budget.TotalBytes != b.TotalBytes {
		t.Fatalf("a new tab's welcome %+v, want the budget", w)
	}
	f.terminal.Close()
	if m := try(f.parent.Expect(ctx, protocol.TypePresence)).must(t); *m.PeerOnline || m.Budget != nil {
		t.Fatalf("presence %+v when the terminal left, want offline without a budget", m)
	}
}
