package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/tests/fulldisk"
)

// TestTerminalOnFullDisk: the terminal's state directory is a 1 MiB tmpfs
// (package fulldisk), filled until the kernel says ENOSPC. bbolt then fails
// the commits that need a new page and passes those that reuse a freed one,
// as on any full disk. On it:
//   - a paired unit and an unpaired one restart and come up ready and
//     pairable (no write is needed to start);
//   - the parent's rings ring the child (a ring's seen mark that cannot be
//     written is kept in memory) until a write has failed, and calls both
//     ways connect with media;
//   - pairing either completes on all three sides or is refused as
//     store_failed on all three, and pairs once the disk has room;
//   - the call records held back are written, in order, once it has room.
func TestTerminalOnFullDisk(t *testing.T) {
	dir := fulldisk.Dir(t, "1m", "fulldisk_test.go")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, func(c *rendezvous.Config) {
		c.Limits.Rings = rendezvous.Rate{Burst: 100} // the rings come faster than a parent's
	})
	pathA, pathB := filepath.Join(dir, "a", "terminal.db"), filepath.Join(dir, "b", "terminal.db")
	check(t, os.Mkdir(filepath.Dir(pathA), 0o700))
	check(t, os.Mkdir(filepath.Dir(pathB), 0o700))
	a := startTerminal(t, ctx, srv, terminalOpts{statePath: pathA})
	cred := a.pair()
	b := startTerminal(t, ctx, srv, terminalOpts{statePath: pathB}) // provisioned, never paired
	b.stop()

	filler := filepath.Join(dir, "filler")
	fulldisk.Fill(t, filler)
	a.stop()
	a = startTerminal(t, ctx, srv, terminalOpts{statePath: pathA})
	if s := a.term.Status(); !s.Paired || s.ParentID != cred.ParentID {
		t.Fatalf("after a restart on the full disk the unit shows paired=%v to %q, want paired to %s", s.Paired, s.ParentID, cred.ParentID)
	}
	ph := a.phone(cred, media.LowData)

	// The parent rings and gives up before an answer, until a write on
	// the terminal has failed: every ring must reach the child.
	var calls []string
	for a.term.Status().StateWriteFailures == 0 || len(calls) < 3 {
		if len(calls) == 40 {
			t.Fatalf("40 rings on a full disk and no write failed on the terminal")
		}
		id, err := ph.Ring(ctx)
		check(t, err)
		await(t, ph, protocol.TypeRinging)
		a.waitPattern(device.Ringing, "the terminal rings on a full disk")
		check(t, ph.Hangup(ctx, id, protocol.ReasonCancel))
		a.waitPattern(device.Ready, "ready after the parent gave up")
		calls = append(calls, id)
	}
	t.Logf("first failed write on the terminal after %d rings", len(calls))

	// A call each way, with media, on the full disk.
	id, err := ph.Ring(ctx)
	check(t, err)
	a.waitPattern(device.Ringing, "the terminal rings")
	check(t, a.board.Press(ctx))
	await(t, ph, protocol.TypeOffer)
	waitMedia(t, a, ph.Current())
	check(t, ph.Hangup(ctx, id, protocol.ReasonHangup))
	a.waitPattern(device.Ready, "ready after the parent hung up")
	calls = append(calls, id)

	check(t, a.board.Press(ctx))
	ring := await(t, ph, protocol.TypeRing)
	check(t, ph.Accept(ctx, ring.CallID))
	await(t, ph, protocol.TypeOffer)
	waitMedia(t, a, ph.Current())
	check(t, a.board.LongPress(ctx))
	a.waitPattern(device.Ready, "ready after the child hung up")
	calls = append(calls, ring.CallID)

	// Pairing on the full disk: all or nothing on every side.
	b = startTerminal(t, ctx, srv, terminalOpts{statePath: pathB})
	deviceB := b.term.Status().DeviceID
	refused, paired := 0, false
	for try := 0; try < 3 && !paired; try++ {
		b.openPairing()
		pctx, pcancel := context.WithTimeout(ctx, step)
		credB, err := rendezvoustest.PairLink(pctx, srv.WSURL, b.term.PairingURL(), b.confirmPairing)
		pcancel()
		switch {
		case err == nil:
			paired = true
			eventually(t, step, "terminal B stores the pairing", func() bool { return b.term.Status().ParentID == credB.ParentID })
		case strings.Contains(err.Error(), "store_failed"):
			refused++
			if s := b.term.Status(); s.Paired {
				t.Fatalf("terminal B refused the pairing as store_failed but shows paired to %q", s.ParentID)
			}
			if p, err := srv.Registry().ParentOf(deviceB); !errors.Is(err, rendezvous.ErrNotFound) {
				t.Fatalf("the server kept a pairing (%q, %v) the terminal refused as store_failed", p, err)
			}
			eventually(t, step, "the server rolls its pending pairing back", func() bool {
				_, err := srv.Registry().PendingOf(deviceB)
				return errors.Is(err, rendezvous.ErrNotFound)
			})
			b.waitIdle("terminal B back to idle after the refused pairing")
		default:
			t.Fatalf("pairing on a full disk: %v, want paired or refused as store_failed", err)
		}
	}
	t.Logf("pairing on the full disk: %d refused as store_failed, paired: %v", refused, paired)

	// Room again: the held-back records are written, in order, and the
	// unpaired unit pairs.
	check(t, os.Remove(filler))
	eventually(t, step, "the held-back call records written", func() bool { return a.term.Status().CallLogHeldBack == 0 })
	stored, err := a.store.Calls(terminalstore.MaxCalls)
	check(t, err)
	var got []string
	for _, r := range slices.Backward(stored) { // Calls is newest first
		got = append(got, r.CallID)
	}
	if !slices.Equal(got, calls) {
		t.Fatalf("the terminal's call log holds %v after the disk got room, want all %d calls in order %v", got, len(calls), calls)
	}
	if !paired {
		b.pair()
	}
	s := a.term.Status()
	t.Logf("calls %d, state writes failed %d, pairing refused %d", len(calls), s.StateWriteFailures, refused)
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
