package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/tuanju/tuanju/internal/progress"

	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
)

// errMigrateFailed makes `rendezvous migrate` exit non-zero on a conflict
// or a mismatch found by its check.
var errMigrateFailed = errors.New("migrate: the NATS registry does not match the bbolt one (above)")

// migrateWorkers is how many terminals are written at once: each is a few
// round trips to the stream leader, each write synced to disk there.
const migrateWorkers = 8

const migrateUsage = `usage: rendezvous migrate [-config file | -data dir] -to URL [-replicas N] [-sample N] [FILE]

Copies the bbolt registry (or FILE) into the NATS registry at URL: every
terminal's device record (public key, registered, last seen, version,
health), its pairing (parent ID, token hash, parent key, created) or its
pending pairing, and its parent's call log (a call left open is closed,
as a stopped server's is), push subscriptions and number. Then checks the
result: the counts of devices, pairings, pending pairings, call records,
push subscriptions and numbers read back from NATS must equal the bbolt
registry's, and a random sample of terminals (-sample, 0: all) is read
back and compared key by key, with their parents' logs and settings.
Exits non-zero on any conflict or mismatch.

It only creates: a terminal NATS already holds with the same key and
pairing is left as it is, so running it again is harmless and finishes a
migration cut short. One NATS holds with another public key or another
pairing is a conflict, named in the report and never overwritten.

Stop the server first: it holds the registry (the command waits two
seconds for bbolt's lock, then refuses).

Not migrated: the audit log, which stays in the data directory.

`

// runMigrate is "rendezvous migrate": the bbolt registry into NATS.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("rendezvous migrate", migrateUsage, stderr)
	configFile := fs.String("config", "", "the server's TOML configuration `file` (for data_dir)")
	dataDir := fs.String("data", "", "the server's data `directory` (overrides the file)")
	to := fs.String("to", "", "the NATS server(s) to migrate to, `URL`s comma separated (nats://host:4222)")
	replicas := fs.Int("replicas", 1, "replicas of each bucket it creates (3 on a cluster); a bucket that exists keeps its own")
	sample := fs.Int("sample", 100, "terminals read back and compared after the copy; 0: all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path, err := registryPath(*configFile, *dataDir)
	if err != nil {
		return err
	}
	switch fs.NArg() {
	case 0:
	case 1:
		path = fs.Arg(0)
	default:
		return fmt.Errorf("migrate: unexpected arguments: %q", fs.Args()[1:])
	}
	if *to == "" {
		return errors.New("migrate: name the NATS registry with -to URL (rendezvous migrate -h)")
	}
	if *replicas < 1 || *sample < 0 {
		return errors.New("migrate: -replicas must be at least 1 and -sample at least 0")
	}

	snap, err := rendezvous.ReadRegistry(path)
	if err != nil {
		return err
	}
	want := snapshotCounts(snap)
	fmt.Fprintf(stdout, "bbolt %s: %s\n", path, describeCounts(want))
	fmt.Fprintln(stdout, "not migrated: the audit log, which stays in the data directory")
	if left := snap.PushSubscriptions - want.PushSubscriptions; left > 0 || snap.Phones > want.Phones {
		fmt.Fprintf(stdout, "not migrated: %d push subscriptions and %d numbers of parents no terminal is paired with\n", left, snap.Phones-want.Phones)
	}
	for _, id := range snap.PendingOfPaired {
		fmt.Fprintf(stdout, "skipped: the pending pairing of %s, which has a parent (it can never complete)\n", id)
	}

	reg, err := natsreg.Connect(*to, natsreg.Options{Replicas: *replicas, Name: "tuanju-migrate"})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer reg.Close()
	before, err := reg.Counts(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(stdout, "NATS %s before: %s\n", *to, describeCounts(before))

	wrote, conflicts, err := importAll(ctx, reg, snap.Entries, progress.New(stderr, progress.Auto, progress.Count))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %d terminals, %d already there, %d conflicts\n", wrote, len(snap.Entries)-wrote-len(conflicts), len(conflicts))
	for _, c := range conflicts {
		fmt.Fprintf(stdout, "conflict: %v\n", c)
	}

	after, err := reg.Counts(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(stdout, "NATS %s after: %s\n", *to, describeCounts(after))
	failed := len(conflicts) > 0
	if after != want {
		fmt.Fprintf(stdout, "mismatch: NATS holds %+v, the bbolt registry %+v\n", after, want)
		failed = true
	}
	picked := pickSample(snap.Entries, *sample)
	mismatches := 0
	for _, e := range picked {
		if err := compareEntry(reg, e); err != nil {
			fmt.Fprintf(stdout, "mismatch: %v\n", err)
			mismatches++
		}
	}
	fmt.Fprintf(stdout, "sample: %d of %d terminals read back, %d mismatches\n", len(picked), len(snap.Entries), mismatches)
	if failed || mismatches > 0 {
		return errMigrateFailed
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// snapshotCounts is what the NATS registry must count after the copy.
func snapshotCounts(snap rendezvous.RegistrySnapshot) natsreg.Counts {
	c := natsreg.Counts{Devices: len(snap.Entries)}
	for _, e := range snap.Entries {
		switch {
		case e.ParentID != "":
			c.Paired++
			c.CallRecords += len(e.Calls)
			c.PushSubscriptions += len(e.Push)
			if e.Phone != nil {
				c.Phones++
			}
		case e.Pending != nil:
			c.Pending++
		}
	}
	return c
}

func describeCounts(c natsreg.Counts) string {
	return fmt.Sprintf("%d devices, %d paired, %d pending; %d call records, %d push subscriptions, %d numbers",
		c.Devices, c.Paired, c.Pending, c.CallRecords, c.PushSubscriptions, c.Phones)
}

// importAll writes every entry with migrateWorkers at once. It returns how
// many entries wrote something and the conflicts, in entry order; any
// other error stops it.
func importAll(ctx context.Context, reg *natsreg.Registry, entries []rendezvous.RegistryEntry, prog *progress.Bars) (wrote int, conflicts []error, err error) {
	defer prog.Finish()
	results := make([]error, len(entries))
	wroteOne := make([]bool, len(entries))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for range migrateWorkers {
		wg.Go(func() {
			for i := range next {
				wroteOne[i], results[i] = reg.Import(entries[i])
				mu.Lock()
				done++
				prog.Update("migrating terminals", int64(done), int64(len(entries)))
				mu.Unlock()
			}
		})
	}
feed:
	for i := range entries {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	for i, r := range results {
		switch {
		case errors.Is(r, natsreg.ErrConflict):
			conflicts = append(conflicts, r)
		case r != nil:
			return 0, nil, r
		case wroteOne[i]:
			wrote++
		}
	}
	return wrote, conflicts, nil
}

// pickSample picks n entries at random (all when n is 0 or there are fewer).
func pickSample(entries []rendezvous.RegistryEntry, n int) []rendezvous.RegistryEntry {
	if n == 0 || n >= len(entries) {
		return entries
	}
	out := make([]rendezvous.RegistryEntry, n)
	for i, j := range rand.Perm(len(entries))[:n] {
		out[i] = entries[j]
	}
	return out
}

// compareEntry reads a terminal back through the NATS registry and
// compares its public key and its pairing with the bbolt registry's.
func compareEntry(reg *natsreg.Registry, e rendezvous.RegistryEntry) error {
	d, err := reg.Device(e.ID)
	if err != nil {
		return err
	}
	if !bytes.Equal(d.PublicKey, e.Device.PublicKey) {
		return fmt.Errorf("device %s: another public key", e.ID)
	}
	parent, err := reg.ParentOf(e.ID)
	switch {
	case e.ParentID == "" && !errors.Is(err, rendezvous.ErrNotFound):
		return fmt.Errorf("device %s: paired with %q (%v), the bbolt registry has no parent", e.ID, parent, err)
	case e.ParentID != "" && (err != nil || parent != e.ParentID):
		return fmt.Errorf("device %s: paired with %q (%v), the bbolt registry with %s", e.ID, parent, err, e.ParentID)
	case e.ParentID != "":
		p, err := reg.Parent(e.ParentID)
		if err != nil || p.DeviceID != e.ID || !bytes.Equal(p.TokenHash, e.Parent.TokenHash) || p.PublicKey != e.Parent.PublicKey {
			return fmt.Errorf("device %s: its parent %s reads back otherwise (%v)", e.ID, e.ParentID, err)
		}
	}
	if e.ParentID != "" {
		if err := compareOwn(reg, e); err != nil {
			return fmt.Errorf("device %s: its parent %s: %w", e.ID, e.ParentID, err)
		}
	}
	pend, err := reg.PendingOf(e.ID)
	switch {
	case e.Pending == nil && !errors.Is(err, rendezvous.ErrNotFound):
		return fmt.Errorf("device %s: pending pairing %q (%v), the bbolt registry has none", e.ID, pend.PairID, err)
	case e.Pending != nil:
		dev, p, err := reg.PendingParent(e.Pending.PairID)
		if err != nil || dev != e.ID || p.PairID != e.Pending.PairID || !bytes.Equal(p.TokenHash, e.Pending.TokenHash) || p.PublicKey != e.Pending.PublicKey {
			return fmt.Errorf("device %s: its pending pairing %s reads back otherwise (%v)", e.ID, e.Pending.PairID, err)
		}
	}
	return nil
}

// compareOwn reads back what belongs to an entry's parent: the call log as
// the page would get it (the newest rendezvous.MaxCallLog, newest first,
// a record left open closed), the push subscriptions and the number.
func compareOwn(reg *natsreg.Registry, e rendezvous.RegistryEntry) error {
	log, err := reg.CallLog(e.ParentID, false)
	if err != nil {
		return err
	}
	want := e.Calls[:min(len(e.Calls), rendezvous.MaxCallLog)]
	if len(log) != len(want) {
		return fmt.Errorf("%d calls in its log, the bbolt registry %d", len(log), len(want))
	}
	for i, r := range want {
		if r.EndedAt.IsZero() {
			rendezvous.CloseInterrupted(&r)
		}
		if g := log[i]; g.CallID != r.CallID || g.Outcome != r.Outcome || !g.StartedAt.Equal(r.StartedAt) || !g.EndedAt.Equal(r.EndedAt) || g.Seen != r.Seen {
			return fmt.Errorf("call %d of its log reads %s %s, the bbolt registry %s %s", i, g.CallID, g.Outcome, r.CallID, r.Outcome)
		}
	}
	subs, err := reg.PushSubscriptions(e.ParentID)
	if err != nil {
		return err
	}
	for _, w := range e.Push {
		if !slices.ContainsFunc(subs, func(s rendezvous.PushSubscription) bool {
			return s.Endpoint == w.Endpoint && s.Auth == w.Auth && s.P256DH == w.P256DH
		}) {
			return fmt.Errorf("push subscription %s not read back", w.Endpoint)
		}
	}
	p, err := reg.PhoneRecord(e.ParentID)
	switch {
	case e.Phone == nil && !errors.Is(err, rendezvous.ErrNotFound):
		return fmt.Errorf("a number (%v), the bbolt registry none", err)
	case e.Phone != nil && (err != nil || p.Number != e.Phone.Number || !p.DeclinedAt.Equal(e.Phone.DeclinedAt)):
		return fmt.Errorf("its number reads back otherwise (%v)", err)
	}
	return nil
}
