package rendezvous

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// heldRead is a registry whose next call-log read stops after reading the
// store, until the test lets it return: a read that waits on the store
// (on NATS, a round trip) while commits go on.
type heldRead struct {
	*Store
	done chan struct{} // the read has its records
	go_  chan struct{} // let it return
}

func (h *heldRead) CallLog(parentID string, markSeen bool) ([]protocol.CallRecord, error) {
	recs, err := h.Store.CallLog(parentID, markSeen)
	if h.done != nil {
		close(h.done)
		<-h.go_
		h.done = nil
	}
	return recs, err
}

// TestCallLogReadBesideCommits: a read does not hold commits back while it
// waits on the store, and misses nothing they take out of pending meanwhile
// (kept); a record kept for an earlier read is never laid over a newer one
// in the store.
func TestCallLogReadBesideCommits(t *testing.T) {
	st, parent, now := pairedStore(t, filepath.Join(t.TempDir(), "r.db"))
	defer st.Close()
	reg := &heldRead{Store: st}
	l := newCallLog(reg, slog.New(slog.DiscardHandler), &metrics{}, time.Now)
	rec := func(id string, outcome string) protocol.CallRecord {
		return protocol.CallRecord{CallID: id, Direction: protocol.DirFromParent, StartedAt: now, Outcome: outcome}
	}
	call := protocol.NewID()

	type result struct {
		calls []protocol.CallRecord
		err   error
	}
	// readBeside starts a read that reads the store and waits there while
	// r is put and committed, and returns what the read returned.
	readBeside := func(r protocol.CallRecord) result {
		t.Helper()
		reg.done, reg.go_ = make(chan struct{}), make(chan struct{})
		res := make(chan result, 1)
		go func() {
			calls, err := l.read(parent, false)
			res <- result{calls, err}
		}()
		<-reg.done
		l.put(parent, r)
		committed := make(chan struct{})
		go func() { l.commit(false); close(committed) }()
		select {
		case <-committed:
		case <-time.After(20 * time.Second):
			t.Fatal("the commit waited for the read")
		}
		close(reg.go_)
		return <-res
	}
	// The call rings: the read looked before the store had it.
	if r := readBeside(rec(call, protocol.OutcomeRinging)); r.err != nil || len(r.calls) != 1 || r.calls[0].Outcome != protocol.OutcomeRinging {
		t.Fatalf("the read beside the ring's commit: %+v, %v; want the call, ringing", r.calls, r.err)
	}
	// It ends: the read found it ringing in the store.
	if r := readBeside(rec(call, protocol.OutcomeMissed)); r.err != nil || len(r.calls) != 1 || r.calls[0].Outcome != protocol.OutcomeMissed {
		t.Fatalf("the read beside the end's commit: %+v, %v; want the call, missed", r.calls, r.err)
	}
	calls, err := l.read(parent, false)
	if err != nil || len(calls) != 1 || calls[0].Outcome != protocol.OutcomeMissed {
		t.Fatalf("after: %+v, %v; want the call, missed", calls, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.kept) != 0 || len(l.reading) != 0 {
		t.Fatalf("%d records kept, %d reads under way, with no read left", len(l.kept), len(l.reading))
	}
}
