package terminal

import "github.com/tuanju/tuanju/internal/terminal/terminalstore"

// A full or failing disk must never stop a call: the loop goes on without
// the write and says so (log, Status.StateWriteFailures). A ring's seen
// mark is kept in memory instead (trust.go); a call record waits here and
// is written once the disk takes it (TestTerminalOnFullDisk).

// maxUnlogged bounds the call records held back: a few days of calls.
const maxUnlogged = 100

// unlogged is the loop's call records not yet on disk, oldest first, and
// how many it had to drop.
type unlogged struct {
	records []terminalstore.CallRecord
	dropped int
}

// logCall writes rec to the call log after any held back before it, in
// order; what cannot be written is held back.
func (t *Terminal) logCall(rec terminalstore.CallRecord) {
	t.unlogged.records = append(t.unlogged.records, rec)
	if n := len(t.unlogged.records) - maxUnlogged; n > 0 {
		t.log.Error("call records held back too long; dropping the oldest", "dropped", n)
		t.unlogged.records = t.unlogged.records[n:]
		t.unlogged.dropped += n
	}
	t.flushCallLog()
}

// flushCallLog writes the held-back call records, oldest first, stopping
// at the first that fails; the loop retries at each health check.
func (t *Terminal) flushCallLog() {
	for len(t.unlogged.records) > 0 {
		rec := t.unlogged.records[0]
		if err := t.d.Store.AppendCall(rec); err != nil {
			t.log.Error("cannot log the call; will retry", "call_id", rec.CallID, "held_back", len(t.unlogged.records), "err", err)
			t.stateWriteFailed()
			return
		}
		t.unlogged.records = t.unlogged.records[1:]
		if len(t.unlogged.records) == 0 {
			t.unlogged.records = nil
		}
	}
}

// stateWriteFailed counts a write to the state file that failed.
func (t *Terminal) stateWriteFailed() { t.stateWriteFailures++ }
