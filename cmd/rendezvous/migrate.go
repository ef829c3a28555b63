package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"

	"github.com/tuanju/tuanju/internal/progress"

	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
)

// errMigrateFailed makes `rendezvous migrate` exit non-zero on a conflict
// or a mismatch found by its check.
var errMigrateFailed = errors.New("migrate: the NATS registry does not match the bbolt one (above)")

// notMigrated is what the NATS registry has no place for yet: said in the
// command's help and its report.
const notMigrated = "call logs, push subscriptions and parents' fallback phones are not migrated (the NATS registry has no place for them yet); the audit log stays in the data directory"

// migrateWorkers is how many terminals are written at once: each is a few
// round trips to the stream leader, each write synced to disk there.
const migrateWorkers = 8

const migrateUsage = `usage: rendezvous migrate [-config file | -data dir] -to URL [-replicas N] [-sample N] [FILE]

Copies the bbolt registry (or FILE) into the NATS registry at URL: every
terminal's device record (public key, registered, last seen, version,
health), its pairing (parent ID, token hash, parent key, created) or its
pending pairing. Then checks the result: the counts of devices, pairings
and pending pairings read back from NATS must equal the bbolt registry's,
and a random sample of terminals (-sample, 0: all) is read back and
compared key by key. Exits non-zero on any conflict or mismatch.

It only creates: a terminal NATS already holds with the same key and
pairing is left as it is, so running it again is harmless and finishes a
migration cut short. One NATS holds with another public key or another
pairing is a conflict, named in the report and never overwritten.

Stop the server first: it holds the registry (the command waits two
seconds for bbolt's lock, then refuses).

Not migrated: ` + notMigrated + `.

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
	fmt.Fprintf(stdout, "bbolt %s: %d devices, %d paired, %d pending\n", path, want.Devices, want.Paired, want.Pending)
	fmt.Fprintf(stdout, "not migrated (the NATS registry has no place for them yet): %d call logs, %d push subscriptions, %d fallback phones; the audit log stays in the data directory\n",
		snap.CallLogs, snap.PushSubscriptions, snap.Phones)
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
	fmt.Fprintf(stdout, "NATS %s before: %d devices, %d paired, %d pending\n", *to, before.Devices, before.Paired, before.Pending)

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
	fmt.Fprintf(stdout, "NATS %s after: %d devices, %d paired, %d pending\n", *to, after.Devices, after.Paired, after.Pending)
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
		case e.Pending != nil:
			c.Pending++
		}
	}
	return c
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
