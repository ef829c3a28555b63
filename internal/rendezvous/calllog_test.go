package rendezvous_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// eventually polls cond until it holds or ctx ends: for state a background
// loop reaches (the call log's retry), never a sleep that hopes.
func eventually(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// call runs one whole call from the terminal: ring, the parent's accept,
// the terminal's hangup, and returns once the server has pushed the log
// that ends it (it does after writing it). It fails the test if any step
// does not reach the other side.
func (f *family) call(t *testing.T, ctx context.Context) string {
	id, _ := f.callLogged(t, ctx)
	return id
}

// callLogged is call, also returning the log the parent was pushed.
func (f *family) callLogged(t *testing.T, ctx context.Context) (string, []protocol.CallRecord) {
	t.Helper()
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	if m := try(f.terminal.Recv(ctx)).must(t); m.Type != protocol.TypeRinging || m.CallID != id {
		t.Fatalf("the terminal's ring was answered with %s %q (%s), want ringing", m.Type, m.Code, m.Text)
	}
	if m := try(f.parent.WaitFor(ctx, protocol.TypeRing)).must(t); m.CallID != id {
		t.Fatalf("the phone rang for call %s, want %s", m.CallID, id)
	}
	check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
	if m := try(f.terminal.Recv(ctx)).must(t); m.Type != protocol.TypeAccept {
		t.Fatalf("the parent's accept reached the terminal as %s %q (%s)", m.Type, m.Code, m.Text)
	}
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonHangup}))
	if m := try(f.parent.WaitFor(ctx, protocol.TypeHangup)).must(t); m.CallID != id {
		t.Fatalf("hangup for %s, want %s", m.CallID, id)
	}
	return id, try(f.parent.WaitFor(ctx, protocol.TypeCallLog)).must(t).Calls
}

// TestCallLogWriteFailureNeverStopsACall is issue 11's full disk: with every
// call-log write failing, the child's ring still reaches the phone, the call
// is answered and ends, and the failure is counted and logged at error
// level; once writes work again the held-back record is written. The
// control has a working disk. (A real full disk: TestCallOnFullDisk.)
func TestCallLogWriteFailureNeverStopsACall(t *testing.T) {
	for _, failing := range []bool{false, true} {
		name := map[bool]string{false: "writes work", true: "every call-log write fails"}[failing]
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			srv := rt.NewServer(t, nil)
			srv.RequireStore(t)
			f := newFamily(t, ctx, srv)
			if failing {
				srv.Store().FailCallLogWrites(syscall.ENOSPC)
			}
			id, log := f.callLogged(t, ctx)

			// The parent's page sees the call even while it is not on disk.
			if len(log) != 1 || log[0].CallID != id || log[0].Outcome != protocol.OutcomeAnswered {
				t.Fatalf("call log pushed after the call = %+v, want call %s answered", log, id)
			}
			// Asking for the log (which marks it seen, a write) is answered.
			check(t, f.parent.Send(ctx, protocol.Message{Type: protocol.TypeCallLog}))
			if m := try(f.parent.WaitFor(ctx, protocol.TypeCallLog)).must(t); len(m.Calls) != 1 {
				t.Fatalf("call_log request answered with %+v", m.Calls)
			}

			m := srv.Metrics()
			const logged = "call log write failed; will retry"
			if !failing {
				if m.CallLogWriteFailures != 0 || srv.Logged(logged) != 0 {
					t.Fatalf("working disk: %d failures counted, %d logged; want 0", m.CallLogWriteFailures, srv.Logged(logged))
				}
				if stored := try(srv.Registry().CallLog(f.creds.ParentID, false)).must(t); len(stored) != 1 || stored[0].CallID != id {
					t.Fatalf("stored log = %+v, want call %s", stored, id)
				}
				return
			}
			// ring, accept, end: three records written and refused, plus the
			// seen mark.
			if m.CallLogWriteFailures < 3 || srv.Logged(logged) < 3 || m.CallLogPending != 1 {
				t.Fatalf("full disk: %d failures counted, %d logged, %d waiting; want ≥ 3, ≥ 3, 1",
					m.CallLogWriteFailures, srv.Logged(logged), m.CallLogPending)
			}
			if stored := try(srv.Registry().CallLog(f.creds.ParentID, false)).must(t); len(stored) != 0 {
				t.Fatalf("the store took writes the fault refused: %+v", stored)
			}

			// The disk has room again: the next call's write succeeds and
			// the held-back record follows it.
			srv.Store().FailCallLogWrites(nil)
			second := f.call(t, ctx)
			eventually(t, ctx, "the held-back record written", func() bool {
				m := srv.Metrics()
				return m.CallLogWritesRetried >= 1 && m.CallLogPending == 0
			})
			stored := try(srv.Registry().CallLog(f.creds.ParentID, false)).must(t)
			if len(stored) != 2 || stored[1].CallID != id || stored[1].Outcome != protocol.OutcomeAnswered || stored[1].EndedAt.IsZero() ||
				stored[0].CallID != second {
				t.Fatalf("stored log after the disk recovered = %+v, want %s then %s, both ended", stored, second, id)
			}
		})
	}
}

// TestCallLogHungDiskLetsSignallingGo: a disk that hangs instead of
// failing (every call-log commit waits inside its transaction) does not
// stop signalling: the ring, the answer and the hangup each wait for the
// hung commit at most barrierPatience and then go; the hang is logged and
// counted; once the disk answers again the call's record is written. The
// control, a working disk, counts no hang. Before, every message queued
// behind a call-log put waited for its commit for ever: one hung disk
// silenced every family on the node.
func TestCallLogHungDiskLetsSignallingGo(t *testing.T) {
	for _, hang := range []bool{false, true} {
		t.Run(map[bool]string{false: "writes work", true: "the disk hangs"}[hang], func(t *testing.T) {
			ctx := testCtx(t)
			srv := rt.NewServer(t, nil)
			srv.RequireStore(t)
			f := newFamily(t, ctx, srv)
			release := make(chan struct{})
			t.Cleanup(func() {
				select {
				case <-release:
				default:
					close(release)
				}
			})
			if hang {
				srv.Store().HangCallLogWrites(release)
			}
			start := time.Now()
			id, log := f.callLogged(t, ctx)
			took := time.Since(start)
			if len(log) != 1 || log[0].CallID != id || log[0].Outcome != protocol.OutcomeAnswered {
				t.Fatalf("call log pushed after the call = %+v, want call %s answered", log, id)
			}
			const logged = "call log: a commit has hung for longer than the wait for it: messages go out without waiting"
			if m := srv.Metrics(); hang != (m.CallLogHung > 0) || hang != (srv.Logged(logged) > 0) {
				t.Fatalf("hang %v: %d hung commits counted, %d logged", hang, m.CallLogHung, srv.Logged(logged))
			}
			t.Logf("ring, answer and hangup through in %v", took.Round(10*time.Millisecond))
			if !hang {
				return
			}
			if stored := try(srv.Registry().CallLog(f.creds.ParentID, false)).must(t); len(stored) != 0 {
				t.Fatalf("the hung disk wrote %+v", stored)
			}
			srv.Store().FailCallLogWrites(nil)
			close(release)
			eventually(t, ctx, "the call's record written once the disk answers", func() bool {
				stored := try(srv.Registry().CallLog(f.creds.ParentID, false)).must(t)
				return len(stored) == 1 && stored[0].CallID == id && !stored[0].EndedAt.IsZero()
			})
		})
	}
}

// TestCallLogUnavailableOnFullDisk: a child who rings an offline parent on a
// full disk hears "unavailable" (not an error), and the parent sees the
// missed call once the log can be written.
func TestCallLogUnavailableOnFullDisk(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	f := newFamily(t, ctx, srv)
	f.parent.Close()
	try(f.terminal.Expect(ctx, protocol.TypePresence)).must(t)
	srv.RequireStore(t).FailCallLogWrites(syscall.ENOSPC)
	id := protocol.NewID()
	check(t, f.terminal.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
	if m := try(f.terminal.Recv(ctx)).must(t); m.Type != protocol.TypeHangup || m.Reason != protocol.ReasonUnavailable {
		t.Fatalf("ringing an offline parent on a full disk: %s %s %q, want hangup unavailable", m.Type, m.Reason, m.Text)
	}
	if n := srv.Metrics().CallLogWriteFailures; n < 1 {
		t.Fatalf("%d failures counted, want ≥ 1", n)
	}
	// The parent comes back while the disk is still full: the missed call
	// is in the log it is sent.
	_, log, err := rt.DialParent(ctx, srv.WSURL, f.creds.ParentID, f.creds.Token)
	check(t, err)
	if len(log) != 1 || log[0].CallID != id || log[0].Outcome != protocol.OutcomeMissed {
		t.Fatalf("parent's log on a full disk = %+v, want the missed call %s", log, id)
	}
}

// TestCallsOpenAtCrashClosedAtStart is issue 11's crash mid-call: calls that
// were ringing or answered when the server died stay open in its file; the
// next start closes them. The crash is the registry as the disk holds it at
// that moment (a consistent copy of the committed file, which is what a
// kill -9 leaves: bbolt has fsynced every commit); the control is a clean
// shutdown, which ends its calls itself.
func TestCallsOpenAtCrashClosedAtStart(t *testing.T) {
	ctx := testCtx(t)
	srv := rt.NewServer(t, nil)
	done, answered, childRings, parentRings := newFamily(t, ctx, srv), newFamily(t, ctx, srv), newFamily(t, ctx, srv), newFamily(t, ctx, srv)
	ended := done.call(t, ctx)

	ring := func(f *family, caller, callee *rt.Client) string {
		id := protocol.NewID()
		check(t, caller.Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id}))
		try(caller.Expect(ctx, protocol.TypeRinging)).must(t)
		try(callee.WaitFor(ctx, protocol.TypeRing)).must(t)
		return id
	}
	inCall := ring(answered, answered.terminal, answered.parent)
	check(t, answered.parent.Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: inCall}))
	try(answered.terminal.Expect(ctx, protocol.TypeAccept)).must(t)
	fromChild := ring(childRings, childRings.terminal, childRings.parent)
	fromParent := ring(parentRings, parentRings.parent, parentRings.terminal)

	crashed := t.TempDir()
	check(t, srv.RequireStore(t).SnapshotTo(filepath.Join(crashed, "rendezvous.db")))
	check(t, srv.Close()) // the clean shutdown: the control below

	tests := []struct {
		name   string
		dir    string
		closed uint64
		want   map[string]string // call ID → outcome after the restart
	}{
		{"after a crash", crashed, 3, map[string]string{
			ended: protocol.OutcomeAnswered, inCall: protocol.OutcomeInterrupted,
			fromChild: protocol.OutcomeMissed, fromParent: protocol.OutcomeInterrupted}},
		// The shutdown ends the ringing calls as their sockets close (which
		// of a call's two closes first decides missed or cancelled); the
		// answered one stays open for its ends to resume (resume.go), and
		// the start closes it until they do.
		{"after a clean shutdown", srv.Config.DataDir, 1, map[string]string{inCall: protocol.OutcomeInterrupted}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			next := rt.NewServer(t, func(c *rendezvous.Config) { c.DataDir = tc.dir })
			for _, f := range []*family{done, answered, childRings, parentRings} {
				p, log, err := rt.DialParent(ctx, next.WSURL, f.creds.ParentID, f.creds.Token)
				check(t, err)
				p.Close()
				if len(log) != 1 {
					t.Fatalf("parent %s sees %d calls, want 1", f.creds.ParentID, len(log))
				}
				r := log[0]
				if tc.want[r.CallID] == "" {
					if r.EndedAt.IsZero() || r.Outcome == protocol.OutcomeInterrupted {
						t.Fatalf("call %s after a clean shutdown: outcome %s, ended %v", r.CallID, r.Outcome, r.EndedAt)
					}
					continue
				}
				if r.EndedAt.IsZero() || r.Outcome != tc.want[r.CallID] {
					t.Fatalf("call %s after the restart: outcome %s, ended %v; want %s and an end", r.CallID, r.Outcome, r.EndedAt, tc.want[r.CallID])
				}
				// An interrupted call is not given minutes it may not have
				// lasted: it ends when it was last known alive.
				if r.Outcome == protocol.OutcomeInterrupted && !r.EndedAt.Equal(r.StartedAt) && !r.EndedAt.Equal(r.AnsweredAt) {
					t.Fatalf("interrupted call %s ends %v, want its start %v or answer %v", r.CallID, r.EndedAt, r.StartedAt, r.AnsweredAt)
				}
			}
			if n := next.Metrics().CallsClosedAtStart; n != tc.closed {
				t.Fatalf("closed %d calls at start, want %d", n, tc.closed)
			}
		})
	}
}

// TestMetricsEndpoint: the counters are served to the server's own machine
// and to nobody else, also not through a trusted proxy.
func TestMetricsEndpoint(t *testing.T) {
	srv := rt.NewServer(t, func(c *rendezvous.Config) { c.TrustedProxies = []string{"127.0.0.1/32"} })
	tests := []struct {
		name      string
		forwarded string // X-Forwarded-For, as a trusted proxy writes it
		status    int
	}{
		{"on the server's machine", "", http.StatusOK},
		{"from the internet through the proxy", "203.0.113.9", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := try(http.NewRequestWithContext(testCtx(t), http.MethodGet, srv.URL+"/metrics", nil)).must(t)
			if tc.forwarded != "" {
				req.Header.Set("X-Forwarded-For", tc.forwarded)
			}
			resp := try(http.DefaultClient.Do(req)).must(t)
			defer resp.Body.Close()
			body := string(try(io.ReadAll(resp.Body)).must(t))
			if resp.StatusCode != tc.status {
				t.Fatalf("GET /metrics = %d, want %d", resp.StatusCode, tc.status)
			}
			hasCounter := strings.Contains(body, "\ntuanju_call_log_write_failures_total 0\n")
			if hasCounter != (tc.status == http.StatusOK) {
				t.Fatalf("GET /metrics body (%d):\n%s", resp.StatusCode, body)
			}
		})
	}
}
