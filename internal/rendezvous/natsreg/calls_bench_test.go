package natsreg_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// BenchmarkHasCall: the replay check of each ring, on a registry holding 64
// full logs written side by side (6,464 records). new-id is the usual case,
// a call ID not logged, which one request on the stream's index of
// subjects answers; logged-id is one that is, which lists the pairing's
// keys as every look-up did until 2026-12-07: the reference for new-id's
// cost, in the same run.
func BenchmarkHasCall(b *testing.B) {
	reg := connect(b, embedded(b).URL(), 1)
	now := time.Unix(1_800_000_000, 0).UTC()
	const families = 64
	parents := make([]string, families)
	for i := range parents {
		dev := protocol.NewID()
		parents[i] = protocol.NewID()
		must(b)(reg.RegisterDevice(dev, []byte("key"), "", now))
		check(b, reg.CreatePairing(dev, parents[i], []byte("hash"), "UA", now))
	}
	var logged string
	for k := range rendezvous.MaxStoredCalls + 1 {
		var writes []rendezvous.CallWrite
		for _, p := range parents {
			id := protocol.NewID()
			logged = id
			writes = append(writes, rendezvous.CallWrite{ParentID: p, Record: protocol.CallRecord{
				CallID: id, Direction: protocol.DirFromTerminal, Outcome: protocol.OutcomeMissed,
				StartedAt: now.Add(time.Duration(k) * time.Minute), EndedAt: now.Add(time.Duration(k)*time.Minute + time.Second),
			}})
		}
		if gone, err := reg.PutCalls(writes); err != nil || len(gone) != 0 {
			b.Fatalf("PutCalls: gone %v, %v", gone, err)
		}
	}
	last := parents[families-1]
	for _, c := range []struct {
		name string
		id   func() string
		want bool
	}{{"new-id", protocol.NewID, false}, {"logged-id", func() string { return logged }, true}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if has, err := reg.HasCall(last, c.id()); err != nil || has != c.want {
					b.Fatalf("HasCall = %v, %v; want %v", has, err, c.want)
				}
			}
		})
	}
}

// TestPruneByIndexOfSubjects: prune goes by the keys the stream's index
// names, deleted ones among them (calls.go), walking those past the cap
// newest first to the first marker. Records logged one at a time past
// MaxStoredCalls, each prune passing over the markers of the ones before;
// one logged late with the oldest start of all (among the markers); and a
// record a node wrote and died before its prune (two to prune at the
// next): the log is always the MaxStoredCalls newest by start, no fewer,
// and HasCall agrees.
func TestPruneByIndexOfSubjects(t *testing.T) {
	srv := embedded(t)
	reg := connect(t, srv.URL(), 1)
	now := time.Unix(1_800_000_000, 0).UTC()
	dev, parent := protocol.NewID(), protocol.NewID()
	must(t)(reg.RegisterDevice(dev, []byte("key"), "", now))
	check(t, reg.CreatePairing(dev, parent, []byte("hash"), "UA", now))
	type logged struct {
		id    string
		start time.Time
	}
	var all []logged
	put := func(start time.Time) {
		id := protocol.NewID()
		all = append(all, logged{id, start})
		rec := protocol.CallRecord{CallID: id, Direction: protocol.DirFromTerminal, Outcome: protocol.OutcomeMissed,
			StartedAt: start, EndedAt: start.Add(time.Second)}
		if gone, err := reg.PutCalls([]rendezvous.CallWrite{{ParentID: parent, Record: rec}}); err != nil || len(gone) != 0 {
			t.Fatalf("PutCalls: gone %v, %v", gone, err)
		}
	}
	checkLog := func(when string) {
		t.Helper()
		byStart := slices.Clone(all)
		slices.SortFunc(byStart, func(a, b logged) int { return a.start.Compare(b.start) })
		cut := max(0, len(byStart)-rendezvous.MaxStoredCalls)
		for i, c := range byStart {
			if has, err := reg.HasCall(parent, c.id); err != nil || has != (i >= cut) {
				t.Fatalf("%s: call %d of %d by start: HasCall = %v, %v; want %v", when, i, len(byStart), has, err, i >= cut)
			}
		}
	}
	// 50 past the cap: the later prunes find up to 49 markers past it.
	for k := range rendezvous.MaxStoredCalls + 50 {
		put(now.Add(time.Duration(k) * time.Minute))
	}
	checkLog("one at a time")
	put(now.Add(-time.Hour)) // the oldest of all, logged last: pruned at once
	put(now.Add(24 * time.Hour))
	checkLog("out of order")

	// What a node that died between a new record and its prune leaves:
	// the record, written straight to the bucket.
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls, err := js.KeyValue(ctx, "tuanju_calls")
	if err != nil {
		t.Fatal(err)
	}
	start := now.Add(25 * time.Hour)
	rec := protocol.CallRecord{CallID: protocol.NewID(), Direction: protocol.DirFromTerminal, Outcome: protocol.OutcomeMissed,
		StartedAt: start, EndedAt: start.Add(time.Second)}
	raw, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := calls.Put(ctx, fmt.Sprintf("%s.%016x.%s", parent, uint64(start.UnixNano()), rec.CallID), raw); err != nil {
		t.Fatal(err)
	}
	all = append(all, logged{rec.CallID, start})
	put(now.Add(26 * time.Hour))
	checkLog("after a node died before its prune")
	log, err := reg.CallLog(parent, false)
	if err != nil || len(log) != rendezvous.MaxCallLog || log[0].CallID != all[len(all)-1].id {
		t.Fatalf("CallLog: %d records, %v", len(log), err)
	}
}
