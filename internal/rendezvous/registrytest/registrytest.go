// Package registrytest is the contract of rendezvous.Registry as tests: the
// bbolt Store and natsreg's registry on NATS JetStream each run it
// (TestStoreRegistry, natsreg's TestRegistryContract), so that a server
// keeps its promises to families on either.
package registrytest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Open opens the registry kept in dir: a new, empty one the first time,
// the same one again after its Close.
type Open func(t *testing.T, dir string) rendezvous.Registry

// Run runs every part of the contract, each on a registry of its own.
func Run(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"Pairing", pairing},
		{"CallLog", callLog},
		{"CloseOpenCalls", closeOpenCalls},
		{"Notify", notify},
		{"UnpairTakesEverything", unpairTakesEverything},
		{"Logins", logins},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var start = time.Unix(1_800_000_000, 0).UTC()

// paired opens a registry with one terminal paired with one parent. The
// test closes it (a test that opens it again closes the new one).
func paired(t *testing.T, open Open) (reg rendezvous.Registry, dir, dev, parent string) {
	t.Helper()
	dir = t.TempDir()
	reg = open(t, dir)
	dev, parent = family(t, reg)
	return reg, dir, dev, parent
}

// family pairs a new terminal with a new parent.
func family(t *testing.T, reg rendezvous.Registry) (dev, parent string) {
	t.Helper()
	dev, parent = protocol.NewID(), protocol.NewID()
	if _, err := reg.RegisterDevice(dev, []byte("key"), "", start); err != nil {
		t.Fatal(err)
	}
	if err := reg.CreatePairing(dev, parent, []byte("hash"), "UA", start); err != nil {
		t.Fatal(err)
	}
	return dev, parent
}

// steps runs steps in order, each wanting its error (nil: success).
type step struct {
	name string
	do   func() error
	want error
}

func run(t *testing.T, steps []step) {
	t.Helper()
	for _, s := range steps {
		if err := s.do(); !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
	}
}

// pairing: one terminal, at most one parent; a pending pairing is not a
// pairing until the terminal's word commits it; an unpair ends both.
func pairing(t *testing.T, open Open) {
	dir := t.TempDir()
	reg := open(t, dir)
	defer func() { reg.Close() }()
	dev, dev2, unknown := protocol.NewID(), protocol.NewID(), protocol.NewID()
	p1, p2 := protocol.NewID(), protocol.NewID()
	pend := rendezvous.PendingPairing{PairID: protocol.NewID(), TokenHash: []byte("hash"), PublicKey: "UA", CreatedAt: start}
	a, b := protocol.NewID(), protocol.NewID()
	run(t, []step{
		{"pair an unregistered terminal", func() error { return reg.CreatePairing(unknown, p1, nil, "", start) }, rendezvous.ErrNotFound},
		{"pending for an unregistered terminal", func() error { return reg.PutPendingPairing(unknown, pend) }, rendezvous.ErrNotFound},
		{"first login", func() error { return wantBool(reg.RegisterDevice(dev, []byte("key"), "", start))(true) }, nil},
		{"second login", func() error { return wantBool(reg.RegisterDevice(dev, []byte("key"), "2", start))(false) }, nil},
		{"login with another key", func() error { _, err := reg.RegisterDevice(dev, []byte("other"), "", start); return err }, rendezvous.ErrKeyMismatch},
		{"version kept", func() error {
			d, err := reg.Device(dev)
			if err == nil && (d.Version != "2" || !bytes.Equal(d.PublicKey, []byte("key"))) {
				err = fmt.Errorf("device: %+v", d)
			}
			return err
		}, nil},
		{"no parent yet", func() error { _, err := reg.ParentOf(dev); return err }, rendezvous.ErrNotFound},
		{"pending", func() error { return reg.PutPendingPairing(dev, pend) }, nil},
		{"the same pending again (a retry)", func() error { return reg.PutPendingPairing(dev, pend) }, nil},
		{"pending is found by terminal", func() error {
			p, err := reg.PendingOf(dev)
			if err == nil && (p.PairID != pend.PairID || p.PublicKey != "UA" || !p.CreatedAt.Equal(start)) {
				err = fmt.Errorf("pending of terminal: %+v", p)
			}
			return err
		}, nil},
		{"pending is found by parent", func() error {
			d, p, err := reg.PendingParent(pend.PairID)
			if err == nil && (d != dev || p.PairID != pend.PairID) {
				err = fmt.Errorf("pending of parent: %s, %+v", d, p)
			}
			return err
		}, nil},
		{"a pending pairing is not a pairing", func() error { _, err := reg.ParentOf(dev); return err }, rendezvous.ErrNotFound},
		{"a pending parent is not a parent", func() error { _, err := reg.Parent(pend.PairID); return err }, rendezvous.ErrNotFound},
		{"complete another pair ID", func() error { _, _, err := reg.CompletePairing(dev, p2, start); return err }, rendezvous.ErrNotFound},
		{"complete", func() error {
			p, committed, err := reg.CompletePairing(dev, pend.PairID, start.Add(time.Second))
			if err == nil && (!committed || p.PublicKey != "UA" || p.DeviceID != dev || !bytes.Equal(p.TokenHash, []byte("hash"))) {
				err = fmt.Errorf("complete pairing: %+v, committed %v", p, committed)
			}
			return err
		}, nil},
		{"complete repeated", func() error {
			p, committed, err := reg.CompletePairing(dev, pend.PairID, start)
			if err == nil && (committed || p.DeviceID != dev || !p.CreatedAt.Equal(start.Add(time.Second))) {
				err = fmt.Errorf("repeated CompletePairing = %+v, committed %v", p, committed)
			}
			return err
		}, nil},
		{"paired", func() error { return wantString(reg.ParentOf(dev))(pend.PairID) }, nil},
		{"the parent", func() error {
			p, err := reg.Parent(pend.PairID)
			if err == nil && (p.DeviceID != dev || p.PublicKey != "UA") {
				err = fmt.Errorf("parent: %+v", p)
			}
			return err
		}, nil},
		{"no pending after the commit", func() error { _, err := reg.PendingOf(dev); return err }, rendezvous.ErrNotFound},
		{"no pending parent after the commit", func() error { _, _, err := reg.PendingParent(pend.PairID); return err }, rendezvous.ErrNotFound},
		{"pending for a paired terminal", func() error { return reg.PutPendingPairing(dev, rendezvous.PendingPairing{PairID: p2}) }, rendezvous.ErrAlreadyPaired},
		{"pair a paired terminal", func() error { return reg.CreatePairing(dev, p2, nil, "", start) }, rendezvous.ErrAlreadyPaired},
		{"the refused parent is not there", func() error { _, err := reg.Parent(p2); return err }, rendezvous.ErrNotFound},
		{"complete another pairing of a paired terminal", func() error { _, _, err := reg.CompletePairing(dev, p2, start); return err }, rendezvous.ErrAlreadyPaired},
		{"not unpaired yet", func() error { return wantUnpaired(reg, dev, false) }, nil},
		{"unpair", func() error { return wantString(reg.Unpair(dev))(pend.PairID) }, nil},
		{"unpaired", func() error { return wantUnpaired(reg, dev, true) }, nil},
		{"unpair again is a no-op", func() error { return wantString(reg.Unpair(dev))("") }, nil},
		{"the old parent is gone", func() error { _, err := reg.Parent(pend.PairID); return err }, rendezvous.ErrNotFound},
		{"no parent after unpair", func() error { _, err := reg.ParentOf(dev); return err }, rendezvous.ErrNotFound},
		{"pair again after unpair", func() error { return reg.CreatePairing(dev, p1, []byte("h1"), "", start) }, nil},
		{"paired again", func() error { return wantString(reg.ParentOf(dev))(p1) }, nil},

		// Rolled back by the terminal; dropped by a factory reset.
		{"second terminal", func() error { return wantBool(reg.RegisterDevice(dev2, []byte("key2"), "", start))(true) }, nil},
		{"pending a", func() error { return reg.PutPendingPairing(dev2, rendezvous.PendingPairing{PairID: a}) }, nil},
		{"roll back another pair ID", func() error { return wantBool(reg.DropPendingPairing(dev2, b))(false) }, nil},
		{"roll back a", func() error { return wantBool(reg.DropPendingPairing(dev2, a))(true) }, nil},
		{"roll back a again", func() error { return wantBool(reg.DropPendingPairing(dev2, a))(false) }, nil},
		{"complete the rolled-back pairing", func() error { _, _, err := reg.CompletePairing(dev2, a, start); return err }, rendezvous.ErrNotFound},
		{"rolled-back parent not pending", func() error { _, _, err := reg.PendingParent(a); return err }, rendezvous.ErrNotFound},
		{"pending b", func() error { return reg.PutPendingPairing(dev2, rendezvous.PendingPairing{PairID: b}) }, nil},
		{"factory reset with a pending pairing", func() error { return wantString(reg.Unpair(dev2))("") }, nil},
		{"no pending after the reset", func() error { _, err := reg.PendingOf(dev2); return err }, rendezvous.ErrNotFound},
		{"a reset that lost no parent is not unpaired", func() error { return wantUnpaired(reg, dev2, false) }, nil},
		{"drop with any pair ID", func() error {
			if err := reg.PutPendingPairing(dev2, rendezvous.PendingPairing{PairID: a}); err != nil {
				return err
			}
			return wantBool(reg.DropPendingPairing(dev2, ""))(true)
		}, nil},
		{"health kept", func() error {
			if err := reg.NoteDeviceHealth(dev2, protocol.HealthNeedsRepair, []string{protocol.FaultCamera}); err != nil {
				return err
			}
			d, err := reg.Device(dev2)
			if err == nil && (d.Health != protocol.HealthNeedsRepair || len(d.Faults) != 1) {
				err = fmt.Errorf("device after a health report = %+v", d)
			}
			return err
		}, nil},
	})
	// All of it is still there when the registry is opened again.
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	reg = open(t, dir)
	run(t, []step{
		{"paired after reopening", func() error { return wantString(reg.ParentOf(dev))(p1) }, nil},
		{"still unpaired once after reopening", func() error { return wantUnpaired(reg, dev, true) }, nil},
		{"health after reopening", func() error {
			d, err := reg.Device(dev2)
			if err == nil && d.Health != protocol.HealthNeedsRepair {
				err = fmt.Errorf("device: %+v", d)
			}
			return err
		}, nil},
	})
}

// callLog: a pairing's log keeps the newest MaxStoredCalls and hands out
// the newest MaxCallLog, newest first; marking them seen is kept; a write
// for a parent that is gone is refused and brings nothing back.
func callLog(t *testing.T, open Open) {
	reg, dir, dev, parent := paired(t, open)
	_, other := family(t, reg) // another family's log must not mix in
	n := rendezvous.MaxStoredCalls + 7
	ids := make([]string, n)
	var writes []rendezvous.CallWrite
	for i := range n {
		ids[i] = protocol.NewID()
		writes = append(writes, rendezvous.CallWrite{ParentID: parent, Record: protocol.CallRecord{
			CallID: ids[i], Direction: protocol.DirFromTerminal, Outcome: protocol.OutcomeMissed,
			StartedAt: start.Add(time.Duration(i) * time.Minute), EndedAt: start.Add(time.Duration(i)*time.Minute + time.Second),
		}})
	}
	gone, err := reg.PutCalls(writes)
	if err != nil || len(gone) != 0 {
		t.Fatalf("PutCalls: gone %v, %v", gone, err)
	}
	for i, id := range []string{ids[0], ids[6], ids[7], ids[n-1]} {
		want := i >= 2 // the oldest 7 are pruned
		if got, err := reg.HasCall(parent, id); err != nil || got != want {
			t.Errorf("HasCall(call %d) = %v, %v; want %v", []int{0, 6, 7, n - 1}[i], got, err, want)
		}
	}
	log, err := reg.CallLog(parent, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != rendezvous.MaxCallLog {
		t.Fatalf("call log has %d records, want %d", len(log), rendezvous.MaxCallLog)
	}
	for i, r := range log {
		if r.CallID != ids[n-1-i] || r.Seen {
			t.Fatalf("record %d is call %s (seen %v), want %s, unseen before this read", i, r.CallID, r.Seen, ids[n-1-i])
		}
	}
	// An update keeps the record's place; the log is still one per call.
	upd := writes[n-1].Record
	upd.Outcome, upd.Seen = protocol.OutcomeDeclined, false
	if gone, err := reg.PutCalls([]rendezvous.CallWrite{{ParentID: parent, Record: upd}}); err != nil || len(gone) != 0 {
		t.Fatalf("update: gone %v, %v", gone, err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	reg = open(t, dir)
	t.Cleanup(func() { reg.Close() })
	log, err = reg.CallLog(parent, false)
	if err != nil || len(log) != rendezvous.MaxCallLog {
		t.Fatalf("after reopening: %d records, %v", len(log), err)
	}
	if log[0].CallID != upd.CallID || log[0].Outcome != protocol.OutcomeDeclined || log[0].Seen {
		t.Fatalf("updated record reads %+v", log[0])
	}
	for _, r := range log[1:] {
		if !r.Seen {
			t.Fatalf("call %s not seen after a read that marked it", r.CallID)
		}
	}
	if otherLog, err := reg.CallLog(other, false); err != nil || len(otherLog) != 0 {
		t.Fatalf("another family's log holds %d records (%v)", len(otherLog), err)
	}
	// A write for a parent that is gone, among others, is skipped alone.
	if _, err := reg.Unpair(dev); err != nil {
		t.Fatal(err)
	}
	late := protocol.CallRecord{CallID: protocol.NewID(), StartedAt: start, EndedAt: start}
	gone, err = reg.PutCalls([]rendezvous.CallWrite{{ParentID: other, Record: late}, {ParentID: parent, Record: late}})
	if err != nil || len(gone) != 1 || gone[0] != 1 {
		t.Fatalf("writes for a live and a gone parent: gone %v, %v; want [1]", gone, err)
	}
	if log, err := reg.CallLog(parent, false); err != nil || len(log) != 0 {
		t.Fatalf("gone parent's log holds %d records (%v)", len(log), err)
	}
	if log, err := reg.CallLog(other, false); err != nil || len(log) != 1 {
		t.Fatalf("live parent's log holds %d records (%v), want 1", len(log), err)
	}
}

// closeOpenCalls: each kind of call a stopped server can leave open is
// closed as the call log documents; an ended call is left as it was, and
// a second start closes nothing.
func closeOpenCalls(t *testing.T, open Open) {
	reg, dir, _, parent := paired(t, open)
	answer := start.Add(4 * time.Second)
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
		{"call ended after it was logged open", protocol.CallRecord{Direction: protocol.DirFromParent, Outcome: protocol.OutcomeRinging}, protocol.OutcomeDeclined, start.Add(time.Second)},
	}
	ids := map[string]int{}
	for i, tc := range tests {
		tc.rec.CallID, tc.rec.StartedAt = protocol.NewID(), start
		ids[tc.rec.CallID] = i
		if _, err := reg.PutCalls([]rendezvous.CallWrite{{ParentID: parent, Record: tc.rec}}); err != nil {
			t.Fatal(err)
		}
		if tc.outcome == protocol.OutcomeDeclined {
			tc.rec.EndedAt, tc.rec.Outcome = tc.endedAt, tc.outcome
			if _, err := reg.PutCalls([]rendezvous.CallWrite{{ParentID: parent, Record: tc.rec}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := reg.Close(); err != nil { // the server stopped
		t.Fatal(err)
	}
	reg = open(t, dir)
	t.Cleanup(func() { reg.Close() })
	closed, err := reg.CloseOpenCallsList()
	if err != nil || len(closed) != 4 {
		t.Fatalf("closed %d calls (%v), want 4", len(closed), err)
	}
	for _, c := range closed {
		if c.ParentID != parent || c.Record.EndedAt.IsZero() {
			t.Errorf("closed call %+v", c)
		}
	}
	log, err := reg.CallLog(parent, false)
	if err != nil || len(log) != len(tests) {
		t.Fatalf("log holds %d records (%v), want %d", len(log), err, len(tests))
	}
	for _, r := range log {
		tc := tests[ids[r.CallID]]
		if r.Outcome != tc.outcome || !r.EndedAt.Equal(tc.endedAt) {
			t.Errorf("%s: closed as %s ending %v, want %s ending %v", tc.name, r.Outcome, r.EndedAt, tc.outcome, tc.endedAt)
		}
	}
	if closed, err := reg.CloseOpenCallsList(); err != nil || len(closed) != 0 {
		t.Fatalf("second start closed %d calls (%v), want 0", len(closed), err)
	}
}

// notify: a parent keeps at most MaxPushSubscriptions, the most recently
// renewed; a renewed one keeps when it was made; a number and its removal
// are kept; nothing is kept for a parent that does not exist.
func notify(t *testing.T, open Open) {
	reg, _, _, parent := paired(t, open)
	defer reg.Close()
	unknown := protocol.NewID()
	sub := func(i int) rendezvous.PushSubscription {
		return rendezvous.PushSubscription{Endpoint: fmt.Sprintf("https://push.example/%d", i), P256DH: "k", Auth: "a"}
	}
	at := func(i int) time.Time { return start.Add(time.Duration(i) * time.Minute) }
	for i := range rendezvous.MaxPushSubscriptions + 2 {
		if err := reg.PutPushSubscription(parent, sub(i), at(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Renew the oldest kept one (2): it becomes the newest, made at 2.
	if err := reg.PutPushSubscription(parent, sub(2), at(20)); err != nil {
		t.Fatal(err)
	}
	if err := reg.PutPushSubscription(parent, sub(9), at(21)); err != nil { // pushes out 3
		t.Fatal(err)
	}
	subs, err := reg.PushSubscriptions(parent)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range subs {
		got = append(got, s.Endpoint)
	}
	want := []string{sub(9).Endpoint, sub(2).Endpoint, sub(6).Endpoint, sub(5).Endpoint, sub(4).Endpoint}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("subscriptions %v, want %v (most recently renewed first)", got, want)
	}
	if !subs[1].Created.Equal(at(2)) || !subs[1].Updated.Equal(at(20)) {
		t.Fatalf("renewed subscription made %v, renewed %v; want %v, %v", subs[1].Created, subs[1].Updated, at(2), at(20))
	}
	run(t, []step{
		{"delete one", func() error { return wantBool(reg.DeletePushSubscription(parent, sub(9).Endpoint))(true) }, nil},
		{"delete it again", func() error { return wantBool(reg.DeletePushSubscription(parent, sub(9).Endpoint))(false) }, nil},
		{"four left", func() error {
			subs, err := reg.PushSubscriptions(parent)
			if err == nil && len(subs) != 4 {
				err = fmt.Errorf("%d subscriptions", len(subs))
			}
			return err
		}, nil},
		{"subscribe a parent that does not exist", func() error { return reg.PutPushSubscription(unknown, sub(0), start) }, rendezvous.ErrNotFound},
		{"no subscriptions of a parent that does not exist", func() error {
			subs, err := reg.PushSubscriptions(unknown)
			if err == nil && len(subs) != 0 {
				err = fmt.Errorf("%d subscriptions", len(subs))
			}
			return err
		}, nil},
		{"no number yet", func() error { _, err := reg.PhoneRecord(parent); return err }, rendezvous.ErrNotFound},
		{"a number", func() error {
			return reg.PutPhone(parent, rendezvous.Phone{Number: "+8613800000000", ConsentAt: start})
		}, nil},
		{"the number", func() error {
			p, err := reg.PhoneRecord(parent)
			if err == nil && (p.Number != "+8613800000000" || !p.ConsentAt.Equal(start)) {
				err = fmt.Errorf("phone record = %+v", p)
			}
			return err
		}, nil},
		{"removed", func() error { return reg.ClearPhone(parent, at(3)) }, nil},
		{"removal kept", func() error {
			p, err := reg.PhoneRecord(parent)
			if err == nil && (p.Number != "" || !p.DeclinedAt.Equal(at(3))) {
				err = fmt.Errorf("phone record after ClearPhone = %+v", p)
			}
			return err
		}, nil},
		{"a number for a parent that does not exist", func() error { return reg.PutPhone(unknown, rendezvous.Phone{Number: "+1"}) }, rendezvous.ErrNotFound},
		{"remove the number of a parent that does not exist", func() error { return reg.ClearPhone(unknown, start) }, rendezvous.ErrNotFound},
	})
}

// unpairTakesEverything: the pairing's end takes the parent's call log,
// subscriptions and number with it, and another family's stay.
func unpairTakesEverything(t *testing.T, open Open) {
	reg, _, dev, parent := paired(t, open)
	defer reg.Close()
	_, other := family(t, reg)
	for _, p := range []string{parent, other} {
		rec := protocol.CallRecord{CallID: protocol.NewID(), StartedAt: start, Outcome: protocol.OutcomeRinging}
		if _, err := reg.PutCalls([]rendezvous.CallWrite{{ParentID: p, Record: rec}}); err != nil {
			t.Fatal(err)
		}
		if err := reg.PutPushSubscription(p, rendezvous.PushSubscription{Endpoint: "https://push.example/" + p}, start); err != nil {
			t.Fatal(err)
		}
		if err := reg.PutPhone(p, rendezvous.Phone{Number: "+86138", ConsentAt: start}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := reg.Unpair(dev); err != nil || got != parent {
		t.Fatalf("Unpair = %s, %v", got, err)
	}
	left := func(p string) (calls, subs int, phone bool) {
		log, err := reg.CallLog(p, false)
		if err != nil {
			t.Fatal(err)
		}
		ss, err := reg.PushSubscriptions(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = reg.PhoneRecord(p)
		if err != nil && !errors.Is(err, rendezvous.ErrNotFound) {
			t.Fatal(err)
		}
		return len(log), len(ss), err == nil
	}
	if c, s, p := left(parent); c != 0 || s != 0 || p {
		t.Errorf("after the unpair the parent keeps %d calls, %d subscriptions, a number: %v", c, s, p)
	}
	if c, s, p := left(other); c != 1 || s != 1 || !p {
		t.Errorf("another family keeps %d calls, %d subscriptions, a number: %v; want 1, 1, true", c, s, p)
	}
	// The unpaired family's open call is not closed as if it were alive.
	closed, err := reg.CloseOpenCallsList()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range closed {
		if c.ParentID == parent {
			t.Errorf("closed a call of the unpaired parent: %+v", c)
		}
	}
}

func wantUnpaired(reg rendezvous.Registry, dev string, want bool) error {
	d, err := reg.Device(dev)
	if err == nil && d.Unpaired != want {
		err = fmt.Errorf("device unpaired = %v, want %v", d.Unpaired, want)
	}
	return err
}

func wantBool(got bool, err error) func(bool) error {
	return func(want bool) error {
		if err == nil && got != want {
			return fmt.Errorf("got %v, want %v", got, want)
		}
		return err
	}
}

func wantString(got string, err error) func(string) error {
	return func(want string) error {
		if err == nil && got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return err
	}
}

// logins: the first pins the key; a login that says a new version, or comes
// LastSeenGrain or more after the last one recorded, is recorded; one that
// changes neither writes nothing (the storms of logins after a node or the
// power goes); a login with another key is refused however soon it comes.
func logins(t *testing.T, open Open) {
	reg := open(t, t.TempDir())
	defer reg.Close()
	dev := protocol.NewID()
	login := func(key, version string, at time.Time) func() error {
		return func() error { _, err := reg.RegisterDevice(dev, []byte(key), version, at); return err }
	}
	seen := func(at time.Time, version string) func() error {
		return func() error {
			d, err := reg.Device(dev)
			if err == nil && (!d.LastSeen.Equal(at) || d.Version != version) {
				err = fmt.Errorf("last seen %v, version %q; want %v, %q", d.LastSeen, d.Version, at, version)
			}
			return err
		}
	}
	soon, later := start.Add(10*time.Minute), start.Add(rendezvous.LastSeenGrain)
	run(t, []step{
		{"first login", func() error { return wantBool(reg.RegisterDevice(dev, []byte("key"), "1.0", start))(true) }, nil},
		{"recorded", seen(start, "1.0"), nil},
		{"again, soon, as before", func() error { return wantBool(reg.RegisterDevice(dev, []byte("key"), "1.0", soon))(false) }, nil},
		{"nothing written", seen(start, "1.0"), nil},
		{"soon, saying no version", login("key", "", soon), nil},
		{"still nothing written", seen(start, "1.0"), nil},
		{"another key, soon", login("other key", "1.0", soon), rendezvous.ErrKeyMismatch},
		{"soon, a new version", login("key", "1.1", soon), nil},
		{"the version and the time", seen(soon, "1.1"), nil},
		{"a grain after", login("key", "1.1", soon.Add(rendezvous.LastSeenGrain)), nil},
		{"the time", seen(soon.Add(rendezvous.LastSeenGrain), "1.1"), nil},
		{"a clock set back", login("key", "1.1", later), nil},
		{"the earlier time", seen(later, "1.1"), nil},
	})
}
