package natsreg_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	t.Cleanup(reg.Close)
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

// TestRegistry: the pairing methods behave as rendezvous.Store's
// (TestStore, TestPendingPairing), step by step on one registry.
func TestRegistry(t *testing.T) {
	reg := connect(t, embedded(t).URL(), 1)
	now := time.Unix(1_800_000_000, 0).UTC()
	dev, dev2, unknown := protocol.NewID(), protocol.NewID(), protocol.NewID()
	p1, p2 := protocol.NewID(), protocol.NewID()
	pend := rendezvous.PendingPairing{PairID: protocol.NewID(), TokenHash: []byte("hash"), PublicKey: "UA", CreatedAt: now}
	a, b := protocol.NewID(), protocol.NewID()
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"pair an unregistered terminal", func() error { return reg.CreatePairing(unknown, p1, nil, "", now) }, rendezvous.ErrNotFound},
		{"pending for an unregistered terminal", func() error { return reg.PutPendingPairing(unknown, pend) }, rendezvous.ErrNotFound},
		{"first login", func() error { return wantBool(reg.RegisterDevice(dev, []byte("key"), "", now))(true) }, nil},
		{"second login", func() error { return wantBool(reg.RegisterDevice(dev, []byte("key"), "2", now))(false) }, nil},
		{"login with another key", func() error { _, err := reg.RegisterDevice(dev, []byte("other"), "", now); return err }, rendezvous.ErrKeyMismatch},
		{"no parent yet", func() error { _, err := reg.ParentOf(dev); return err }, rendezvous.ErrNotFound},
		{"pending", func() error { return reg.PutPendingPairing(dev, pend) }, nil},
		{"the same pending again (a retry)", func() error { return reg.PutPendingPairing(dev, pend) }, nil},
		{"another pending meanwhile", func() error { return reg.PutPendingPairing(dev, rendezvous.PendingPairing{PairID: p2}) }, natsreg.ErrPendingExists},
		{"a pairing at once meanwhile", func() error { return reg.CreatePairing(dev, p2, nil, "", now) }, natsreg.ErrPendingExists},
		{"pending is found by terminal", func() error {
			p, err := reg.PendingOf(dev)
			if err == nil && (p.PairID != pend.PairID || p.PublicKey != "UA" || !p.CreatedAt.Equal(now)) {
				err = fmt.Errorf("PendingOf = %+v", p)
			}
			return err
		}, nil},
		{"pending is found by parent", func() error {
			d, p, err := reg.PendingParent(pend.PairID)
			if err == nil && (d != dev || p.PairID != pend.PairID) {
				err = fmt.Errorf("PendingParent = %s, %+v", d, p)
			}
			return err
		}, nil},
		{"a pending pairing is not a pairing", func() error { _, err := reg.ParentOf(dev); return err }, rendezvous.ErrNotFound},
		{"a pending parent is not a parent", func() error { _, err := reg.Parent(pend.PairID); return err }, rendezvous.ErrNotFound},
		{"complete another pair ID", func() error { _, _, err := reg.CompletePairing(dev, p2, now); return err }, rendezvous.ErrNotFound},
		{"complete", func() error {
			p, committed, err := reg.CompletePairing(dev, pend.PairID, now.Add(time.Second))
			if err == nil && (!committed || p.PublicKey != "UA" || p.DeviceID != dev || !bytes.Equal(p.TokenHash, []byte("hash"))) {
				err = fmt.Errorf("CompletePairing = %+v, committed %v", p, committed)
			}
			return err
		}, nil},
		{"complete repeated", func() error {
			p, committed, err := reg.CompletePairing(dev, pend.PairID, now)
			if err == nil && (committed || p.DeviceID != dev || !p.CreatedAt.Equal(now.Add(time.Second))) {
				err = fmt.Errorf("repeated CompletePairing = %+v, committed %v", p, committed)
			}
			return err
		}, nil},
		{"paired", func() error { return wantString(reg.ParentOf(dev))(pend.PairID) }, nil},
		{"the parent", func() error {
			p, err := reg.Parent(pend.PairID)
			if err == nil && (p.DeviceID != dev || p.PublicKey != "UA") {
				err = fmt.Errorf("Parent = %+v", p)
			}
			return err
		}, nil},
		{"no pending after the commit", func() error { _, err := reg.PendingOf(dev); return err }, rendezvous.ErrNotFound},
		{"no pending parent after the commit", func() error { _, _, err := reg.PendingParent(pend.PairID); return err }, rendezvous.ErrNotFound},
		{"pending for a paired terminal", func() error { return reg.PutPendingPairing(dev, rendezvous.PendingPairing{PairID: p2}) }, rendezvous.ErrAlreadyPaired},
		{"pair a paired terminal", func() error { return reg.CreatePairing(dev, p2, nil, "", now) }, rendezvous.ErrAlreadyPaired},
		{"the refused parent is not there", func() error { _, err := reg.Parent(p2); return err }, rendezvous.ErrNotFound},
		{"complete another pairing of a paired terminal", func() error { _, _, err := reg.CompletePairing(dev, p2, now); return err }, rendezvous.ErrAlreadyPaired},
		{"not unpaired yet", func() error { return wantUnpaired(reg, dev, false) }, nil},
		{"unpair", func() error { return wantString(reg.Unpair(dev))(pend.PairID) }, nil},
		{"unpaired", func() error { return wantUnpaired(reg, dev, true) }, nil},
		{"unpair again is a no-op", func() error { return wantString(reg.Unpair(dev))("") }, nil},
		{"the old parent is gone", func() error { _, err := reg.Parent(pend.PairID); return err }, rendezvous.ErrNotFound},
		{"no parent after unpair", func() error { _, err := reg.ParentOf(dev); return err }, rendezvous.ErrNotFound},
		{"pair again after unpair", func() error { return reg.CreatePairing(dev, p1, []byte("h1"), "", now) }, nil},
		{"still marked unpaired once", func() error { return wantUnpaired(reg, dev, true) }, nil},
		{"paired again", func() error { return wantString(reg.ParentOf(dev))(p1) }, nil},

		// Rolled back by the terminal; dropped by a factory reset.
		{"second terminal", func() error { return wantBool(reg.RegisterDevice(dev2, []byte("key2"), "", now))(true) }, nil},
		{"pending a", func() error { return reg.PutPendingPairing(dev2, rendezvous.PendingPairing{PairID: a}) }, nil},
		{"roll back another pair ID", func() error { return wantBool(reg.DropPendingPairing(dev2, b))(false) }, nil},
		{"roll back a", func() error { return wantBool(reg.DropPendingPairing(dev2, a))(true) }, nil},
		{"roll back a again", func() error { return wantBool(reg.DropPendingPairing(dev2, a))(false) }, nil},
		{"complete the rolled-back pairing", func() error { _, _, err := reg.CompletePairing(dev2, a, now); return err }, rendezvous.ErrNotFound},
		{"rolled-back parent not pending", func() error { _, _, err := reg.PendingParent(a); return err }, rendezvous.ErrNotFound},
		{"pending b", func() error { return reg.PutPendingPairing(dev2, rendezvous.PendingPairing{PairID: b}) }, nil},
		{"factory reset with a pending pairing", func() error { return wantString(reg.Unpair(dev2))("") }, nil},
		{"no pending after the reset", func() error { _, err := reg.PendingOf(dev2); return err }, rendezvous.ErrNotFound},
		{"a reset that lost no parent is not unpaired", func() error { return wantUnpaired(reg, dev2, false) }, nil},
		{"drop with any pair ID", func() error {
			check(t, reg.PutPendingPairing(dev2, rendezvous.PendingPairing{PairID: a}))
			return wantBool(reg.DropPendingPairing(dev2, ""))(true)
		}, nil},
		{"health kept", func() error {
			check(t, reg.NoteDeviceHealth(dev2, protocol.HealthNeedsRepair, []string{protocol.FaultCamera}))
			d, err := reg.Device(dev2)
			if err == nil && (d.Health != protocol.HealthNeedsRepair || len(d.Faults) != 1) {
				err = fmt.Errorf("Device after a health report = %+v", d)
			}
			return err
		}, nil},
	}
	for _, s := range steps {
		if err := s.do(); !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
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

func wantUnpaired(reg *natsreg.Registry, dev string, want bool) error {
	d, err := reg.Device(dev)
	if err == nil && d.Unpaired != want {
		err = fmt.Errorf("Device.Unpaired = %v, want %v", d.Unpaired, want)
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
