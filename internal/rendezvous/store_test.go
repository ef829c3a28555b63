package rendezvous_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/registrytest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

func TestStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	st := try(rendezvous.OpenStore(path)).must(t)
	now := time.Unix(1_800_000_000, 0).UTC()
	dev := protocol.NewID()
	if err := st.CreatePairing(dev, protocol.NewID(), make([]byte, 32), "", now); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("pairing an unregistered device: %v, want ErrNotFound", err)
	}
	if first := try(st.RegisterDevice(dev, []byte("key"), "", now)).must(t); !first {
		t.Fatal("first registration not reported as first")
	}
	if _, err := st.RegisterDevice(dev, []byte("other key"), "", now); !errors.Is(err, rendezvous.ErrKeyMismatch) {
		t.Fatalf("re-registering with another key: %v, want ErrKeyMismatch", err)
	}
	p1, p2 := protocol.NewID(), protocol.NewID()
	check(t, st.CreatePairing(dev, p1, make([]byte, 32), "", now))
	if err := st.CreatePairing(dev, p2, make([]byte, 32), "", now); !errors.Is(err, rendezvous.ErrAlreadyPaired) {
		t.Fatalf("second pairing: %v, want ErrAlreadyPaired", err)
	}
	if _, err := st.Parent(p2); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("refused pairing left parent %s behind: %v", p2, err)
	}
	// The log keeps the newest MaxCallLog, newest first.
	for i := range rendezvous.MaxCallLog + 30 {
		check(t, st.PutCall(p1, protocol.CallRecord{CallID: protocol.NewID(), Direction: protocol.DirFromTerminal,
			StartedAt: now.Add(time.Duration(i) * time.Minute), Outcome: protocol.OutcomeMissed}))
	}
	log := try(st.CallLog(p1, true)).must(t)
	if len(log) != rendezvous.MaxCallLog || !log[0].StartedAt.Equal(now.Add(79*time.Minute)) {
		t.Fatalf("call log has %d entries starting %v", len(log), log[0].StartedAt)
	}
	check(t, st.Close())

	st = try(rendezvous.OpenStore(path)).must(t)
	defer st.Close()
	if got := try(st.ParentOf(dev)).must(t); got != p1 {
		t.Fatalf("after reopen paired with %s, want %s", got, p1)
	}
	for _, r := range try(st.CallLog(p1, false)).must(t) {
		if !r.Seen {
			t.Fatalf("call %s not seen after reading the log with markSeen", r.CallID)
		}
	}
}

// TestCloseOpenCalls: each kind of call the server can leave open is closed
// as the call log documents; an ended call is left as it was.
func TestCloseOpenCalls(t *testing.T) {
	st := try(rendezvous.OpenStore(filepath.Join(t.TempDir(), "r.db"))).must(t)
	defer st.Close()
	start := time.Unix(1_800_000_000, 0).UTC()
	answer := start.Add(4 * time.Second)
	dev, parent := protocol.NewID(), protocol.NewID()
	try(st.RegisterDevice(dev, []byte("key"), "", start)).must(t)
	check(t, st.CreatePairing(dev, parent, make([]byte, 32), "", start))
	tests := []struct {
		name    string
		rec     protocol.CallRecord
		outcome string
		endedAt time.Time
	}{
		{"child's call ringing", protocol.CallRecord{Direction: protocol.DirFromTerminal, Outcome: protocol.OutcomeRinging}, protocol.OutcomeMissed, start},
		{"parent's call ringing", protocol.CallRecord{Direction: protocol.DirFromParent, Outcome: protocol.OutcomeRinging}, protocol.OutcomeInterrupted, start},
		{"child's call answered", protocol.CallRecord{Direction: protocol.DirFromTerminal, AnsweredAt: answer, Outcome: protocol.OutcomeAnswered}, protocol.OutcomeInterrupted, answer},
		{"parent's call answered", protocol.CallRecord{Direction: protocol.DirFromParent, AnsweredAt: answer, Outcome: protocol.OutcomeAnswered}, protocol.OutcomeInterrupted, answer},
		{"ended call", protocol.CallRecord{Direction: protocol.DirFromParent, AnsweredAt: answer, EndedAt: answer.Add(time.Minute), Outcome: protocol.OutcomeAnswered}, protocol.OutcomeAnswered, answer.Add(time.Minute)},
	}
	ids := map[string]int{}
	for i, tc := range tests {
		tc.rec.CallID, tc.rec.StartedAt = protocol.NewID(), start
		ids[tc.rec.CallID] = i
		check(t, st.PutCall(parent, tc.rec))
	}
	if n := try(st.CloseOpenCalls()).must(t); n != 4 {
		t.Fatalf("closed %d calls, want 4", n)
	}
	for _, r := range try(st.CallLog(parent, false)).must(t) {
		tc := tests[ids[r.CallID]]
		if r.Outcome != tc.outcome || !r.EndedAt.Equal(tc.endedAt) {
			t.Errorf("%s: closed as %s ending %v, want %s ending %v", tc.name, r.Outcome, r.EndedAt, tc.outcome, tc.endedAt)
		}
	}
	if n := try(st.CloseOpenCalls()).must(t); n != 0 {
		t.Fatalf("second start closed %d calls, want 0", n)
	}
	// A write for a parent that no longer exists (a factory reset) does not
	// bring its log back.
	try(st.Unpair(dev)).must(t)
	if err := st.PutCall(parent, protocol.CallRecord{CallID: protocol.NewID(), StartedAt: start}); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("writing the log of a deleted pairing: %v, want ErrNotFound", err)
	}
	if log := try(st.CallLog(parent, false)).must(t); len(log) != 0 {
		t.Fatalf("deleted pairing's log came back: %+v", log)
	}
}

// TestStoreRegistry: the bbolt store keeps the registry's contract.
func TestStoreRegistry(t *testing.T) {
	registrytest.Run(t, func(t *testing.T, dir string) rendezvous.Registry {
		return try(rendezvous.OpenStore(filepath.Join(dir, rendezvous.RegistryFile))).must(t)
	})
}
