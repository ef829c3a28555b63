package rendezvous_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tuanju/tuanju/internal/rendezvous"
	rt "github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/tests/fulldisk"
)

// TestCallOnFullDisk is TestCallLogWriteFailureNeverStopsACall on a real
// full disk: the server's data directory is a 1 MiB tmpfs (package
// fulldisk), filled until the kernel says ENOSPC.
// bbolt then fails the commits that need a new page and passes those that
// reuse a freed one, as on any full disk, so the test makes calls until a
// log write has failed (at most 60), and every one of them must ring and
// end. Then the disk gets room again and the held-back records are written.
func TestCallOnFullDisk(t *testing.T) {
	// On NATS (TUANJU_REGISTRY=nats, an embedded server with its store
	// on the same tmpfs) a write JetStream cannot store fails at once, and
	// JetStream restarts once the disk has room (natsreg.Server.watchStore).
	dir := fulldisk.Dir(t, "1m", "fulldisk_test.go")
	if dir == "" {
		return
	}
	ctx := testCtx(t)
	srv := rt.NewServer(t, func(c *rendezvous.Config) {
		c.DataDir = dir
		c.Limits.Rings = rendezvous.Rate{Burst: 100} // the calls come faster than a child's
	})
	f := newFamily(t, ctx, srv)
	calls := []string{f.call(t, ctx)} // control: the disk has room
	if n := srv.Metrics().CallLogWriteFailures; n != 0 {
		t.Fatalf("%d call-log writes failed with room on the disk", n)
	}

	filler := filepath.Join(dir, "filler")
	fulldisk.Fill(t, filler)
	for srv.Metrics().CallLogWriteFailures == 0 && len(calls) <= 60 {
		calls = append(calls, f.call(t, ctx))
	}
	// On NATS the failed write gets no answer: it fails when the
	// registry's attempt times out (3 s).
	eventually(t, ctx, "a call-log write failed on the full disk", func() bool { return srv.Metrics().CallLogWriteFailures > 0 })
	t.Logf("first failed call-log write after %d calls on the full disk", len(calls)-1)
	if srv.Logged("call log write failed; will retry") == 0 {
		t.Fatal("a failed call-log write was counted but not logged")
	}
	calls = append(calls, f.call(t, ctx)) // and the next call rings too

	// A unit that reconnects while the disk is full (its login's last_seen
	// cannot be written) is let in, and its calls ring.
	f.terminal.Close()
	try(f.parent.WaitFor(ctx, protocol.TypePresence)).must(t)
	f.terminal = try(rt.DialTerminal(ctx, srv.WSURL, f.key)).must(t)
	t.Cleanup(func() { f.terminal.Close() })
	calls = append(calls, f.call(t, ctx))

	check(t, os.Remove(filler))
	calls = append(calls, f.call(t, ctx))
	eventually(t, ctx, "the held-back records written", func() bool { return srv.Metrics().CallLogPending == 0 })
	stored := try(srv.Registry().CallLog(f.creds.ParentID, false)).must(t)
	// A log shows its newest MaxCallLog: every one of those calls.
	want := calls[max(0, len(calls)-rendezvous.MaxCallLog):]
	if len(stored) != len(want) {
		t.Fatalf("the log holds %d calls after the disk got room, want the newest %d of %d", len(stored), len(want), len(calls))
	}
	for _, id := range want {
		if !slices.ContainsFunc(stored, func(r protocol.CallRecord) bool { return r.CallID == id }) {
			t.Fatalf("call %s is not in the log after the disk got room", id)
		}
	}
	for _, r := range stored {
		if r.Outcome != protocol.OutcomeAnswered || r.EndedAt.IsZero() {
			t.Fatalf("call %s stored as %s, ended %v; want answered and ended", r.CallID, r.Outcome, r.EndedAt)
		}
	}
	if os.Getenv("TUANJU_REGISTRY") == "nats" && srv.Logged("JetStream restarted after a write error: the disk has room again") == 0 {
		t.Error("the records were written but JetStream's restart was not logged")
	}
	m := srv.Metrics()
	t.Logf("calls %d, call-log write failures %d, written on retry %d, dropped %d", len(calls), m.CallLogWriteFailures, m.CallLogWritesRetried, m.CallLogWritesDropped)
}
