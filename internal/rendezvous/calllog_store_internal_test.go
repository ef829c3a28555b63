package rendezvous

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// pairedStore opens a registry at path with one device paired to parent.
func pairedStore(t *testing.T, path string) (st *Store, parent string, now time.Time) {
	t.Helper()
	st, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	now = time.Unix(1_800_000_000, 0).UTC()
	dev := protocol.NewID()
	parent = protocol.NewID()
	if _, err := st.RegisterDevice(dev, []byte("key"), "", now); err != nil {
		t.Fatal(err)
	}
	if err := st.CreatePairing(dev, parent, make([]byte, 32), "", now); err != nil {
		t.Fatal(err)
	}
	return st, parent, now
}

// TestCallLogKeepsNewest: calls logged out of time order (a late record of
// an older call) still leave the newest MaxStoredCalls; the pruned ones are
// gone from the log, its index and open_calls; the count stays exact; and a
// replaced record keeps its place.
func TestCallLogKeepsNewest(t *testing.T) {
	st, parent, now := pairedStore(t, filepath.Join(t.TempDir(), "r.db"))
	defer st.Close()
	const n = MaxStoredCalls + 37
	ids := make([]string, n)
	for k := range n {
		i := (k * 7) % n // every minute once, out of order
		ids[i] = protocol.NewID()
		r := protocol.CallRecord{CallID: ids[i], Direction: protocol.DirFromTerminal,
			StartedAt: now.Add(time.Duration(i) * time.Minute), Outcome: protocol.OutcomeRinging}
		if err := st.PutCall(parent, r); err != nil {
			t.Fatal(err)
		}
	}
	// The newest call ends: replaced where it stands, and no longer open.
	newest := protocol.CallRecord{CallID: ids[n-1], Direction: protocol.DirFromTerminal, StartedAt: now.Add(time.Duration(n-1) * time.Minute),
		EndedAt: now.Add(time.Duration(n) * time.Minute), Outcome: protocol.OutcomeMissed}
	if err := st.PutCall(parent, newest); err != nil {
		t.Fatal(err)
	}
	log, err := st.CallLog(parent, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != MaxCallLog || log[0].CallID != ids[n-1] || log[0].Outcome != protocol.OutcomeMissed || log[MaxCallLog-1].CallID != ids[n-MaxCallLog] {
		t.Fatalf("log: %d records, first %s %s; want %d from %s", len(log), log[0].CallID, log[0].Outcome, MaxCallLog, ids[n-1])
	}
	for i, id := range ids {
		kept := i >= n-MaxStoredCalls
		if has, err := st.HasCall(parent, id); err != nil || has != kept {
			t.Fatalf("call %d: HasCall = %v, %v; want %v", i, has, err, kept)
		}
	}
	err = st.db.View(func(tx *bolt.Tx) error {
		b := callLogBucket(tx, parent)
		if c := callCount(b); c != MaxStoredCalls {
			t.Errorf("count %d, want %d", c, MaxStoredCalls)
		}
		if keys := b.Stats().KeyN; keys != 2*MaxStoredCalls+1 {
			t.Errorf("%d keys, want %d (records, index, count)", keys, 2*MaxStoredCalls+1)
		}
		if open := tx.Bucket(bucketOpenCalls).Stats().KeyN; open != MaxStoredCalls-1 {
			t.Errorf("%d open calls indexed, want %d", open, MaxStoredCalls-1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := st.CloseOpenCallsList()
	if err != nil || len(closed) != MaxStoredCalls-1 {
		t.Fatalf("closed %d open calls (%v), want %d", len(closed), err, MaxStoredCalls-1)
	}
	if again, err := st.CloseOpenCallsList(); err != nil || len(again) != 0 {
		t.Fatalf("a second start closed %d more (%v)", len(again), err)
	}
}

// TestCallLogMigration: a registry from before call_log (calls/<parent>/<call
// ID>) opens with its logs moved: the newest first as before, open calls
// closed at the next start, nothing left under calls/; one without calls
// keeps none.
func TestCallLogMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	st, parent, now := pairedStore(t, path)
	// The old layout, written as the old server did.
	const n = MaxStoredCalls + 5
	ids := make([]string, n)
	err := st.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketCalls).CreateBucket([]byte(parent))
		if err != nil {
			return err
		}
		for i := range n {
			ids[i] = protocol.NewID()
			r := protocol.CallRecord{CallID: ids[i], Direction: protocol.DirFromParent, StartedAt: now.Add(time.Duration(i) * time.Minute),
				EndedAt: now.Add(time.Duration(i)*time.Minute + time.Second), Outcome: protocol.OutcomeAnswered, Seen: true}
			if i == n-1 {
				r.EndedAt, r.Outcome = time.Time{}, protocol.OutcomeRinging // left open by a crash
			}
			raw, _ := json.Marshal(r)
			if err := b.Put([]byte(r.CallID), raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log, err := st.CallLog(parent, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != MaxCallLog || log[0].CallID != ids[n-1] || log[1].CallID != ids[n-2] || !log[1].Seen {
		t.Fatalf("moved log: %d records, first %+v", len(log), log[0])
	}
	if has, _ := st.HasCall(parent, ids[0]); has {
		t.Fatal("the oldest beyond what a log keeps was moved too")
	}
	if has, _ := st.HasCall(parent, ids[n-MaxStoredCalls]); !has {
		t.Fatal("the oldest a log keeps was not moved")
	}
	err = st.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketCalls).Cursor().First(); k != nil {
			t.Errorf("calls/ still holds %s", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := st.CloseOpenCallsList()
	if err != nil || len(closed) != 1 || closed[0].Record.CallID != ids[n-1] || closed[0].Record.Outcome != protocol.OutcomeInterrupted {
		t.Fatalf("closed %+v (%v), want the crash's open call interrupted", closed, err)
	}
}
