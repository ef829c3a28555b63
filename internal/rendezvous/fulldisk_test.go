package rendezvous_test

import (
	"os"
	"path/filepath"
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
	// On NATS (TUANJU_REGISTRY=nats) calls still ring on a full disk, but
	// JetStream acknowledges no write and says nothing: each waits out the
	// registry's 20 s and is dropped. Not yet what this test asks.
	rt.RequireBolt(t)
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
	for srv.Metrics().CallLogWriteFailures == 0 {
		if len(calls) > 60 {
			t.Fatalf("%d calls on a full disk and no call-log write failed", len(calls))
		}
		calls = append(calls, f.call(t, ctx))
	}
	t.Logf("first failed call-log write in call %d after the disk filled", len(calls)-1)
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
	if len(stored) != len(calls) {
		t.Fatalf("the log holds %d calls after the disk got room, want all %d", len(stored), len(calls))
	}
	for _, r := range stored {
		if r.Outcome != protocol.OutcomeAnswered || r.EndedAt.IsZero() {
			t.Fatalf("call %s stored as %s, ended %v; want answered and ended", r.CallID, r.Outcome, r.EndedAt)
		}
	}
	m := srv.Metrics()
	t.Logf("calls %d, call-log write failures %d, written on retry %d, dropped %d", len(calls), m.CallLogWriteFailures, m.CallLogWritesRetried, m.CallLogWritesDropped)
}
