package rendezvous

import (
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// fileLog reads a parent's newest records from the file itself, past the
// store's copy, as the page would get them (JSON).
func fileLog(t *testing.T, st *Store, parentID string) string {
	t.Helper()
	var recs []protocol.CallRecord
	if err := st.db.View(func(tx *bolt.Tx) error {
		b := callLogBucket(tx, parentID)
		if b == nil {
			return nil
		}
		var err error
		recs, _, err = newestCalls(b, MaxCallLog)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return logJSON(t, recs)
}

func logJSON(t *testing.T, recs []protocol.CallRecord) string {
	t.Helper()
	if recs == nil {
		recs = []protocol.CallRecord{}
	}
	raw, err := json.Marshal(recs)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestRecentLogsMatchFile: the log the store reads from its copy is the
// file's, record for record, through every kind of write to a log: new
// calls newer and older than those held, records replaced (ended, marked
// seen), logs pruned past MaxStoredCalls, a pairing's log deleted, the open
// calls closed at a start, a failed write. Each step checks every parent.
func TestRecentLogsMatchFile(t *testing.T) {
	st, err := OpenStore(filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Unix(1_800_000_000, 0).UTC()
	rng := rand.New(rand.NewPCG(16, 2026))
	var parents, devices, unpaired []string
	calls := map[string][]protocol.CallRecord{} // parent → its calls so far
	pair := func() {
		dev, parent := protocol.NewID(), protocol.NewID()
		if _, err := st.RegisterDevice(dev, []byte("key"), "", now); err != nil {
			t.Fatal(err)
		}
		if err := st.CreatePairing(dev, parent, make([]byte, 32), "", now); err != nil {
			t.Fatal(err)
		}
		devices, parents = append(devices, dev), append(parents, parent)
	}
	for range 3 {
		pair()
	}
	check := func(step int, what string) {
		t.Helper()
		for _, p := range append(parents, unpaired...) {
			got, err := st.CallLog(p, false)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := logJSON(t, got), fileLog(t, st, p); g != w {
				t.Fatalf("step %d (%s), parent %s: the store read %d records, the file holds others:\n%s\n%s", step, what, p, len(got), g, w)
			}
		}
	}
	held := func() int {
		st.recent.mu.Lock()
		defer st.recent.mu.Unlock()
		return len(st.recent.logs)
	}
	fromCopy := 0
	for step := range 1500 {
		p := parents[rng.IntN(len(parents))]
		var what string
		switch op := rng.IntN(100); {
		case op < 45: // a batch of new calls, mostly newer than all, some older
			what = "new calls"
			var ws []CallWrite
			for range 1 + rng.IntN(3) {
				start := now.Add(time.Duration(step)*time.Minute + time.Duration(rng.IntN(1000))*time.Millisecond)
				if rng.IntN(4) == 0 {
					start = now.Add(time.Duration(rng.IntN(step+1)) * time.Minute)
				}
				r := protocol.CallRecord{CallID: protocol.NewID(), Direction: protocol.DirFromParent, StartedAt: start, Outcome: protocol.OutcomeRinging}
				calls[p] = append(calls[p], r)
				ws = append(ws, CallWrite{ParentID: p, Record: r})
			}
			if _, err := st.PutCalls(ws); err != nil {
				t.Fatal(err)
			}
		case op < 70: // a call ends (its start, and so its key, as before)
			what = "a call ends"
			cs := calls[p]
			if len(cs) == 0 {
				continue
			}
			r := cs[rng.IntN(len(cs))]
			r.EndedAt, r.Outcome = r.StartedAt.Add(time.Minute), protocol.OutcomeAnswered
			if err := st.PutCall(p, r); err != nil {
				t.Fatal(err)
			}
		case op < 80:
			what = "marked seen"
			if _, err := st.CallLog(p, true); err != nil {
				t.Fatal(err)
			}
		case op < 83:
			what = "unpaired, a new family paired"
			i := rng.IntN(len(parents))
			if _, err := st.Unpair(devices[i]); err != nil {
				t.Fatal(err)
			}
			delete(calls, parents[i])
			unpaired = append(unpaired, parents[i])
			parents, devices = append(parents[:i], parents[i+1:]...), append(devices[:i], devices[i+1:]...)
			pair()
		case op < 85:
			what = "open calls closed"
			if _, err := st.CloseOpenCallsList(); err != nil {
				t.Fatal(err)
			}
		case op < 88:
			what = "a write that fails"
			fail := func() error { return syscall.ENOSPC }
			st.callWriteFault.Store(&fail)
			_, err := st.PutCalls([]CallWrite{{ParentID: p, Record: protocol.CallRecord{CallID: protocol.NewID(), StartedAt: now.Add(time.Duration(step+1) * time.Minute)}}})
			st.callWriteFault.Store(nil)
			if err == nil {
				t.Fatal("a write with a failing disk succeeded")
			}
		default:
			what = "read"
			if held() > 0 {
				fromCopy++
			}
		}
		check(step, what)
	}
	if held() == 0 || fromCopy == 0 {
		t.Fatalf("%d logs held, %d reads with logs held: the copy was never used", held(), fromCopy)
	}
}

// TestRecentLogsReadDuringWrites: a read that fills the copy while a write
// commits never leaves the copy behind the file: one that began before the
// commit is not kept. Each round races one read with one write, and then
// what the copy holds, if anything, must be the file's.
func TestRecentLogsReadDuringWrites(t *testing.T) {
	st, parent, now := pairedStore(t, filepath.Join(t.TempDir(), "r.db"))
	defer st.Close()
	const rounds = 400
	held := 0
	for i := range rounds {
		st.recent.drop(parent)
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := st.CallLog(parent, false); err != nil {
				t.Error(err)
			}
		})
		r := protocol.CallRecord{CallID: protocol.NewID(), StartedAt: now.Add(time.Duration(i) * time.Second), Outcome: protocol.OutcomeMissed}
		if err := st.PutCall(parent, r); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if got, ok := st.recent.get(parent); ok {
			held++
			if g, w := logJSON(t, got), fileLog(t, st, parent); g != w {
				t.Fatalf("round %d: the copy holds %d records, the file others:\n%s\n%s", i, len(got), g, w)
			}
		}
	}
	t.Logf("%d of %d rounds left a copy, each the file's", held, rounds)
	if held == 0 {
		t.Fatal("no read was ever kept")
	}
}
