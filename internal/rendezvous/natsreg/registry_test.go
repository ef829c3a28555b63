package natsreg_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// embedded starts a one-node embedded server under the test's directory.
func embedded(t testing.TB) *natsreg.Server {
	t.Helper()
	srv, err := natsreg.StartEmbedded(t.TempDir(), natsreg.Embed{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func connect(t testing.TB, url string, replicas int) *natsreg.Registry {
	t.Helper()
	reg, err := natsreg.Connect(url, natsreg.Options{Replicas: replicas, OpTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

// TestEmbeddedServer: the embedded server's client URL is on 127.0.0.1
// (it listens nowhere else: Embed), and a registry written through it is there
// after the server restarts on the same directory (the store is on disk).
func TestEmbeddedServer(t *testing.T) {
	dir := t.TempDir()
	srv, err := natsreg.StartEmbedded(dir, natsreg.Embed{})
	if err != nil {
		t.Fatal(err)
	}
	if u := srv.URL(); u[:len("nats://127.0.0.1:")] != "nats://127.0.0.1:" {
		t.Fatalf("client URL %s is not on 127.0.0.1", u)
	}
	reg, err := natsreg.Connect(srv.URL(), natsreg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0).UTC()
	dev, parent := protocol.NewID(), protocol.NewID()
	must(t)(reg.RegisterDevice(dev, []byte("key"), "1.0", now))
	check(t, reg.CreatePairing(dev, parent, []byte("hash"), "UA", now))
	reg.Close()
	srv.Shutdown()

	srv, err = natsreg.StartEmbedded(dir, natsreg.Embed{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	reg = connect(t, srv.URL(), 1)
	if got, err := reg.ParentOf(dev); err != nil || got != parent {
		t.Fatalf("after restart ParentOf = %s, %v; want %s", got, err, parent)
	}
	if d, err := reg.Device(dev); err != nil || d.Version != "1.0" || !bytes.Equal(d.PublicKey, []byte("key")) {
		t.Fatalf("after restart Device = %+v, %v", d, err)
	}
}

// TestRegistryRefusesSecondPending: where the bbolt store replaces a
// terminal's pending pairing with another (its one hub refuses a second
// request while one is undecided), the registry shared by several nodes
// refuses it, and a pairing at once, with ErrPendingExists; the rest of
// the contract is registrytest's (TestRegistryContract).
func TestRegistryRefusesSecondPending(t *testing.T) {
	reg := connect(t, embedded(t).URL(), 1)
	now := time.Unix(1_800_000_000, 0).UTC()
	dev, p2 := protocol.NewID(), protocol.NewID()
	pend := rendezvous.PendingPairing{PairID: protocol.NewID(), TokenHash: []byte("hash"), PublicKey: "UA", CreatedAt: now}
	must(t)(reg.RegisterDevice(dev, []byte("key"), "", now))
	check(t, reg.PutPendingPairing(dev, pend))
	if err := reg.PutPendingPairing(dev, rendezvous.PendingPairing{PairID: p2}); !errors.Is(err, natsreg.ErrPendingExists) {
		t.Fatalf("another pending meanwhile: %v, want ErrPendingExists", err)
	}
	if err := reg.CreatePairing(dev, p2, nil, "", now); !errors.Is(err, natsreg.ErrPendingExists) {
		t.Fatalf("a pairing at once meanwhile: %v, want ErrPendingExists", err)
	}
	if p, err := reg.PendingOf(dev); err != nil || p.PairID != pend.PairID {
		t.Fatalf("the first pending pairing is %+v, %v", p, err)
	}
}

// TestRegistryStaleIndex: an index entry no record names (a node died
// between writing it and its CAS) reads as no parent, does not stand in the
// way of a pairing that uses its ID, and is swept once older than minAge.
func TestRegistryStaleIndex(t *testing.T) {
	srv := embedded(t)
	reg := connect(t, srv.URL(), 1)
	now := time.Unix(1_800_000_000, 0).UTC()
	dev, other := protocol.NewID(), protocol.NewID()
	must(t)(reg.RegisterDevice(dev, []byte("key"), "", now))
	must(t)(reg.RegisterDevice(other, []byte("key2"), "", now))

	// What a node leaves that dies after the index write: the entry, and
	// no record naming it.
	parents := rawBucket(t, srv.URL(), "tuanju_parents")
	ctx := context.Background()
	stale, staleOther := protocol.NewID(), protocol.NewID()
	if _, err := parents.Put(ctx, stale, []byte(dev)); err != nil {
		t.Fatal(err)
	}
	if _, err := parents.Put(ctx, staleOther, []byte(other)); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Parent(stale); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("Parent of a stale index entry: %v, want ErrNotFound", err)
	}
	if _, _, err := reg.PendingParent(stale); !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatalf("PendingParent of a stale index entry: %v, want ErrNotFound", err)
	}
	// A stale entry pointing at another terminal is taken over.
	check(t, reg.CreatePairing(dev, staleOther, []byte("h"), "", now))
	if p, err := reg.Parent(staleOther); err != nil || p.DeviceID != dev {
		t.Fatalf("Parent after taking over a stale entry = %+v, %v", p, err)
	}
	// A live entry of another terminal is not.
	if err := reg.CreatePairing(other, staleOther, []byte("h"), "", now); err == nil {
		t.Fatal("a pairing took over another terminal's parent ID")
	}
	if n, err := reg.SweepIndex(time.Hour); err != nil || n != 0 {
		t.Fatalf("sweep of young entries deleted %d, %v", n, err)
	}
	if n, err := reg.SweepIndex(0); err != nil || n != 1 {
		t.Fatalf("sweep deleted %d, %v; want the one stale entry", n, err)
	}
	if _, err := parents.Get(ctx, stale); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("stale entry still there: %v", err)
	}
	if p, err := reg.Parent(staleOther); err != nil || p.DeviceID != dev {
		t.Fatalf("the sweep took a live entry: %+v, %v", p, err)
	}
}

// TestRegistryPairingRace: 20 nodes (each its own connection) pair one
// terminal with 20 different parents at once, each pending then complete.
// Exactly one parent is paired; every other was told ErrAlreadyPaired or
// ErrPendingExists, or its complete found its pending pairing gone
// (ErrNotFound); the index agrees with the record.
func TestRegistryPairingRace(t *testing.T) {
	srv := embedded(t)
	now := time.Unix(1_800_000_000, 0).UTC()
	setup := connect(t, srv.URL(), 1)
	dev := protocol.NewID()
	must(t)(setup.RegisterDevice(dev, []byte("key"), "", now))

	const n = 20
	regs := make([]*natsreg.Registry, n)
	for i := range regs {
		regs[i] = connect(t, srv.URL(), 1)
	}
	ids := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		ids[i] = protocol.NewID()
		wg.Go(func() {
			<-start
			if errs[i] = regs[i].PutPendingPairing(dev, rendezvous.PendingPairing{PairID: ids[i], CreatedAt: now}); errs[i] != nil {
				return
			}
			_, _, errs[i] = regs[i].CompletePairing(dev, ids[i], now)
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("two parents paired: %s and %s", ids[winner], ids[i])
			}
			winner = i
		case errors.Is(err, rendezvous.ErrAlreadyPaired), errors.Is(err, natsreg.ErrPendingExists), errors.Is(err, rendezvous.ErrNotFound):
		default:
			t.Fatalf("node %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("nobody paired: %v", errs)
	}
	if got := must(t)(setup.ParentOf(dev)); got != ids[winner] {
		t.Fatalf("paired with %s, but %s was told it won", got, ids[winner])
	}
	for i, id := range ids {
		p, err := setup.Parent(id)
		if i == winner && (err != nil || p.DeviceID != dev) {
			t.Fatalf("the winner's parent: %+v, %v", p, err)
		}
		if i != winner && !errors.Is(err, rendezvous.ErrNotFound) {
			t.Fatalf("loser %d's parent %s: %+v, %v; want ErrNotFound", i, id, p, err)
		}
	}
	outcomes := map[string]int{}
	for _, err := range errs {
		switch {
		case err == nil:
			outcomes["paired"]++
		case errors.Is(err, rendezvous.ErrAlreadyPaired):
			outcomes["already paired"]++
		case errors.Is(err, natsreg.ErrPendingExists):
			outcomes["another pending"]++
		default:
			outcomes["pending gone"]++
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

// rawBucket binds a registry bucket directly, to write what a crash leaves.
func rawBucket(t *testing.T, url, name string) jetstream.KeyValue {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func must(t testing.TB) func(v any, err error) any {
	return func(v any, err error) any {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
