package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/logbuf"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/autoanswer"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// phoneDecodes waits until the phone decodes video in call id.
func phoneDecodes(t *testing.T, ph *Phone, id string) {
	t.Helper()
	eventually(t, step, "the call decodes video at the phone", func() bool {
		c := ph.Current()
		return c != nil && c.ID == id && c.Stats().VideoFramesDecoded > 0
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReplayedCallAfterRestart: a server that recorded a call (the
// parent's signed ring and answer) replays it after the terminal restarts,
// inside a reunion window where the unit answers by itself — the outside
// review's attack. Each step failed before the fix:
//   - the unit that saw the call refuses the replayed ring (the call IDs it
//     acted on are kept in its state file, not only in memory);
//   - a unit that never saw that ring (its state from before the call) rings
//     and answers it, but refuses the recorded answer and opens nothing: the
//     answer must sign the fresh nonce of this terminal's accept, which no
//     recording has, and camera and microphone wait for such an answer;
//   - a server that winds the unit's clock back (welcome.server_time two
//     hours early) is not believed: the clock floor holds, and a genuine call
//     still connects (before, the terminal signed with the server's time and
//     the phone refused its messages as stale).
func TestReplayedCallAfterRestart(t *testing.T) {
	sched, err := autoanswer.ParseSchedule([]string{"Sat 19:00-20:00"})
	if err != nil {
		t.Fatal(err)
	}
	sat := time.Date(2026, 11, 28, 19, 30, 0, 0, time.Local) // the reunion window's clock
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	mm := newMITM(t, srv.WSURL)
	dir := t.TempDir()
	state, before := filepath.Join(dir, "terminal.db"), filepath.Join(dir, "before-the-call.db")
	logs := &logbuf.Buffer{}
	var opened atomic.Int32 // camera and microphone openings, all runs
	opts := terminalOpts{wsURL: mm.wsURL(), statePath: state, logTo: logs,
		onCaptureOpen: func(media.CaptureConfig) { opened.Add(1) },
		autoAnswer:    terminal.AutoAnswer{Windows: sched, Delay: 3 * time.Second}, now: func() time.Time { return sat }}

	r := startTerminal(t, ctx, srv, opts)
	cred := r.pair()
	r.stop()
	copyFile(t, state, before)
	r = startTerminal(t, ctx, srv, opts)
	ph := r.phone(cred, media.LowData)

	// A genuine call, answered by the reunion window; the server records it.
	id, err := ph.Ring(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	phoneDecodes(t, ph, id)
	ring, _ := mm.lastSeen(protocol.TypeRing)
	answer, _ := mm.lastSeen(protocol.TypeAnswer)
	if ring.CallID != id || answer.CallID != id {
		t.Fatalf("recorded ring %s and answer %s, want call %s", ring.CallID, answer.CallID, id)
	}
	if err := ph.Hangup(r.ctx, id, protocol.ReasonHangup); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "ready after the genuine call")
	r.stop()

	t.Run("the replayed ring after a restart", func(t *testing.T) {
		r = startTerminal(t, ctx, srv, opts)
		accepts := len(mm.sentAll(protocol.TypeAccept, id))
		declined := len(mm.sentAll(protocol.TypeHangup, id))
		mm.inject(ring)
		// The barrier: a refused ring is declined at once; a ring taken
		// would have shown the ring light instead.
		eventually(t, step, "the terminal answers the replayed ring", func() bool {
			return len(mm.sentAll(protocol.TypeHangup, id)) > declined || r.board.State().Pattern != device.Ready
		})
		if p := r.board.State().Pattern; p != device.Ready {
			t.Fatalf("the replayed ring shows %q on the terminal", p)
		}
		if n := len(mm.sentAll(protocol.TypeAccept, id)); n != accepts {
			t.Fatalf("the terminal answered the replayed ring (%d accepts, %d before)", n, accepts)
		}
		if !logs.Has("refusing a ring", id, "replayed") {
			t.Error("the terminal did not log the replayed ring as such")
		}
		r.stop()
	})

	t.Run("the recorded answer to a unit that never saw the ring", func(t *testing.T) {
		copyFile(t, before, state)
		r = startTerminal(t, ctx, srv, opts)
		// The server is the attacker: it keeps the terminal's side of the
		// replayed call to itself and answers with the recording.
		mm.set(nil, func(m *protocol.Message) {
			if m.CallID != id {
				return
			}
			if m.Type == protocol.TypeOffer {
				go mm.inject(answer)
			}
			m.Type = "" // dropped: the real server never hears of it
		})
		defer mm.set(nil, nil)
		before := opened.Load()
		mm.inject(ring)
		r.waitPattern(device.Ringing, "a ring new to this unit rings")
		eventually(t, step, "the terminal refuses the recorded answer", func() bool {
			return logs.Has("refusing an answer not signed by the paired parent", id)
		})
		if st := r.term.Status(); st.State == "in_call" {
			t.Errorf("the terminal is in a call on a recorded answer")
		}
		eventually(t, step, "the refused call ends", func() bool { return r.term.Status().CallID != id })
		// Nothing opened: camera and microphone wait for an answer signed
		// over the terminal's own nonce.
		if n := opened.Load() - before; n != 0 {
			t.Errorf("camera and microphone opened %d times for a recorded call", n)
		}
		if r.board.State().Pattern != device.Ready {
			r.board.LongPress(r.ctx)
		}
		r.waitPattern(device.Ready, "ready after the refused call")
	})

	t.Run("control: a genuine call with the server's clock wound back two hours", func(t *testing.T) {
		mm.set(func(m *protocol.Message) {
			if m.Type == protocol.TypeWelcome {
				m.ServerTime = time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
			}
		}, nil)
		defer mm.set(nil, nil)
		// A restart: the floor the parent's signed ring raised in the last
		// step was kept in the state file.
		r = startTerminal(t, ctx, srv, opts)
		if !logs.Has("server's clock is earlier") {
			t.Error("the terminal did not log the rewound server time")
		}
		ph2 := r.phone(cred, media.LowData)
		id2, err := ph2.Ring(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		phoneDecodes(t, ph2, id2)
	})
}
