package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// registryShape is how many terminals of each kind makeRegistry makes.
type registryShape struct {
	paired, pending, unpaired int
	// lost is how many of the unpaired ones were paired and lost their
	// parent (Device.Unpaired set, the old parent and its call log gone).
	lost int
}

// madeRegistry is a bbolt registry made through the Store's own methods.
type madeRegistry struct {
	dir                     string
	paired, pending, single []string // device IDs by kind (single: no parent, none pending)
}

func (m madeRegistry) all() []string {
	return append(append(append([]string(nil), m.paired...), m.pending...), m.single...)
}

// makeRegistry makes a registry in a new data directory the way the hub
// does: logins, the two-phase pairing, health reports, a call log, a push
// subscription and a phone for some parents, factory resets.
func makeRegistry(t *testing.T, shape registryShape) madeRegistry {
	t.Helper()
	m := madeRegistry{dir: t.TempDir()}
	st, err := rendezvous.OpenStore(filepath.Join(m.dir, rendezvous.RegistryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Unix(1_800_000_000, 0).UTC()
	register := func(i int) string {
		dev := protocol.NewID()
		if _, err := st.RegisterDevice(dev, []byte(fmt.Sprintf("spki-%d", i)), fmt.Sprintf("1.%d", i%7), now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if err := st.NoteDeviceHealth(dev, protocol.HealthNeedsRepair, []string{protocol.FaultCamera}); err != nil {
				t.Fatal(err)
			}
		}
		return dev
	}
	pend := func(dev string, i int) rendezvous.PendingPairing {
		p := rendezvous.PendingPairing{PairID: protocol.NewID(), TokenHash: []byte(fmt.Sprintf("hash-%d-%s", i, dev)),
			PublicKey: fmt.Sprintf("parent-key-%d", i), CreatedAt: now.Add(time.Duration(i) * time.Minute)}
		if err := st.PutPendingPairing(dev, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pair := func(dev string, i int) string {
		p := pend(dev, i)
		if _, _, err := st.CompletePairing(dev, p.PairID, now.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
		return p.PairID
	}
	i := 0
	for range shape.paired {
		i++
		dev := register(i)
		parent := pair(dev, i)
		if i%10 == 0 {
			// Three calls: one missed, one answered and read, one still
			// open (the server stopped during it).
			for j, rec := range []protocol.CallRecord{
				{Direction: protocol.DirFromTerminal, EndedAt: now, Outcome: protocol.OutcomeMissed},
				{Direction: protocol.DirFromParent, AnsweredAt: now.Add(time.Minute), EndedAt: now.Add(5 * time.Minute), Outcome: protocol.OutcomeAnswered, Seen: true},
				{Direction: protocol.DirFromTerminal, AnsweredAt: now.Add(time.Hour), Outcome: protocol.OutcomeAnswered},
			} {
				rec.CallID, rec.StartedAt = protocol.NewID(), now.Add(time.Duration(j)*time.Hour)
				if err := st.PutCall(parent, rec); err != nil {
					t.Fatal(err)
				}
			}
			for j := range 2 {
				sub := rendezvous.PushSubscription{Endpoint: fmt.Sprintf("https://push.example/%s/%d", parent, j), P256DH: "k", Auth: "a"}
				if err := st.PutPushSubscription(parent, sub, now.Add(time.Duration(j)*time.Minute)); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.PutPhone(parent, rendezvous.Phone{Number: "+10000000000", ConsentAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		m.paired = append(m.paired, dev)
	}
	for range shape.pending {
		i++
		dev := register(i)
		pend(dev, i)
		m.pending = append(m.pending, dev)
	}
	for n := range shape.unpaired {
		i++
		dev := register(i)
		if n < shape.lost {
			pair(dev, i)
			if _, err := st.Unpair(dev); err != nil {
				t.Fatal(err)
			}
		}
		m.single = append(m.single, dev)
	}
	return m
}

// storeView is a terminal as the Store's own getters read it.
type storeView struct {
	Device   rendezvous.Device
	ParentID string
	Parent   rendezvous.Parent
	Pending  *rendezvous.PendingPairing
}

// viewOf reads a terminal through a registry's getters (the Store's or
// natsreg's: the same signatures).
func viewOf(t *testing.T, reg interface {
	Device(string) (rendezvous.Device, error)
	ParentOf(string) (string, error)
	Parent(string) (rendezvous.Parent, error)
	PendingOf(string) (rendezvous.PendingPairing, error)
}, dev string) storeView {
	t.Helper()
	var v storeView
	var err error
	if v.Device, err = reg.Device(dev); err != nil {
		t.Fatal(err)
	}
	switch v.ParentID, err = reg.ParentOf(dev); {
	case errors.Is(err, rendezvous.ErrNotFound):
	case err != nil:
		t.Fatal(err)
	default:
		if v.Parent, err = reg.Parent(v.ParentID); err != nil {
			t.Fatal(err)
		}
	}
	switch p, err := reg.PendingOf(dev); {
	case errors.Is(err, rendezvous.ErrNotFound):
	case err != nil:
		t.Fatal(err)
	default:
		v.Pending = &p
	}
	return v
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// natsTarget starts an embedded NATS server on a temporary directory.
func natsTarget(t *testing.T) string {
	t.Helper()
	srv, err := natsreg.StartEmbedded(t.TempDir(), natsreg.Embed{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.URL()
}

func connectNATS(t *testing.T, url string) *natsreg.Registry {
	t.Helper()
	reg, err := natsreg.Connect(url, natsreg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

// TestMigrate: a registry of 500 terminals made through the Store (300
// paired, 50 pending, 150 with no parent, 50 of them after a factory
// reset) is migrated into an empty NATS registry: the report counts 500,
// 300, 50 on both sides and reads every terminal back; every terminal then
// reads the same through natsreg as through the Store (device record,
// parent, pending pairing), and the 30 parents with a call log (three
// calls, one left open), two push subscriptions and a number have them in
// NATS, the open call closed as a restart closes it; a second run writes
// nothing and succeeds;
// and the registry goes on working: a paired terminal refuses a second
// parent (ErrAlreadyPaired), a pending one completes, a terminal with no
// parent pairs, a login with another key is refused.
func TestMigrate(t *testing.T) {
	m := makeRegistry(t, registryShape{paired: 300, pending: 50, unpaired: 150, lost: 50})
	url := natsTarget(t)
	ctx := context.Background()

	for _, run1 := range []struct{ name, wrote string }{
		{"first", "wrote 500 terminals, 0 already there, 0 conflicts"},
		{"again", "wrote 0 terminals, 500 already there, 0 conflicts"},
	} {
		var out bytes.Buffer
		if err := run(ctx, []string{"migrate", "-data", m.dir, "-to", url, "-sample", "0"}, &out, io.Discard); err != nil {
			t.Fatalf("%s run: %v\n%s", run1.name, err, out.String())
		}
		for _, w := range []string{
			"500 devices, 300 paired, 50 pending; 90 call records, 60 push subscriptions, 30 numbers\n",
			"not migrated: the audit log",
			run1.wrote,
			"after: 500 devices, 300 paired, 50 pending; 90 call records, 60 push subscriptions, 30 numbers\n",
			"sample: 500 of 500 terminals read back, 0 mismatches",
			"ok\n",
		} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s run: report lacks %q:\n%s", run1.name, w, out.String())
			}
		}
	}

	st, err := rendezvous.OpenStore(filepath.Join(m.dir, rendezvous.RegistryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := connectNATS(t, url)
	for _, dev := range m.all() {
		if want, got := jsonOf(t, viewOf(t, st, dev)), jsonOf(t, viewOf(t, reg, dev)); got != want {
			t.Fatalf("terminal %s through natsreg:\n%s\nthrough the Store:\n%s", dev, got, want)
		}
	}
	parent, err := reg.ParentOf(m.paired[9]) // the tenth: one of those with a log
	if err != nil {
		t.Fatal(err)
	}
	log, err := reg.CallLog(parent, false)
	if err != nil || len(log) != 3 {
		t.Fatalf("migrated call log: %d records, %v; want 3", len(log), err)
	}
	if open := log[0]; open.Outcome != protocol.OutcomeInterrupted || !open.EndedAt.Equal(open.AnsweredAt) || !log[1].Seen || log[2].Seen {
		t.Fatalf("migrated call log reads %+v", log)
	}
	if subs, err := reg.PushSubscriptions(parent); err != nil || len(subs) != 2 {
		t.Fatalf("migrated push subscriptions: %d, %v; want 2", len(subs), err)
	}
	if p, err := reg.PhoneRecord(parent); err != nil || p.Number != "+10000000000" {
		t.Fatalf("migrated number: %+v, %v", p, err)
	}
	for _, dev := range m.single[:50] {
		if d, _ := reg.Device(dev); !d.Unpaired {
			t.Fatalf("terminal %s lost its parent in bbolt, natsreg says Unpaired false", dev)
		}
	}

	now := time.Unix(1_900_000_000, 0).UTC()
	paired, pending, single := m.paired[0], m.pending[0], m.single[len(m.single)-1]
	if err := reg.PutPendingPairing(paired, rendezvous.PendingPairing{PairID: protocol.NewID(), CreatedAt: now}); !errors.Is(err, rendezvous.ErrAlreadyPaired) {
		t.Errorf("a second pairing of a paired terminal: %v, want ErrAlreadyPaired", err)
	}
	if err := reg.CreatePairing(paired, protocol.NewID(), []byte("h"), "", now); !errors.Is(err, rendezvous.ErrAlreadyPaired) {
		t.Errorf("CreatePairing of a paired terminal: %v, want ErrAlreadyPaired", err)
	}
	p, _ := st.PendingOf(pending)
	if got, committed, err := reg.CompletePairing(pending, p.PairID, now); err != nil || !committed || !bytes.Equal(got.TokenHash, p.TokenHash) {
		t.Errorf("completing a migrated pending pairing: %+v, %v, %v", got, committed, err)
	}
	if got, err := reg.ParentOf(pending); err != nil || got != p.PairID {
		t.Errorf("after completing: ParentOf = %s, %v; want %s", got, err, p.PairID)
	}
	newParent := protocol.NewID()
	if err := reg.CreatePairing(single, newParent, []byte("h"), "", now); err != nil {
		t.Errorf("pairing a migrated terminal with no parent: %v", err)
	}
	if p, err := reg.Parent(newParent); err != nil || p.DeviceID != single {
		t.Errorf("the new parent: %+v, %v", p, err)
	}
	if _, err := reg.RegisterDevice(paired, []byte("another key"), "", now); !errors.Is(err, rendezvous.ErrKeyMismatch) {
		t.Errorf("a login with another key: %v, want ErrKeyMismatch", err)
	}
}

// TestMigrateConflict: a terminal the NATS registry already holds
// otherwise (paired with another parent, another public key, paired where
// the bbolt registry has no parent) fails the migration with a report
// naming it, and is left as it was; the other terminals are migrated.
func TestMigrateConflict(t *testing.T) {
	now := time.Unix(1_800_000_000, 0).UTC()
	tests := []struct {
		name  string
		pick  func(madeRegistry) string
		setup func(reg *natsreg.Registry, st *rendezvous.Store, dev string) error
		// left checks that NATS still holds what setup wrote.
		left func(reg *natsreg.Registry, dev string) error
	}{
		{"another parent", func(m madeRegistry) string { return m.paired[3] },
			func(reg *natsreg.Registry, st *rendezvous.Store, dev string) error {
				d, _ := st.Device(dev)
				if _, err := reg.RegisterDevice(dev, d.PublicKey, "", now); err != nil {
					return err
				}
				return reg.CreatePairing(dev, "other-parent", []byte("other hash"), "", now)
			},
			func(reg *natsreg.Registry, dev string) error {
				if p, err := reg.ParentOf(dev); err != nil || p != "other-parent" {
					return fmt.Errorf("ParentOf = %s, %v; want other-parent", p, err)
				}
				return nil
			}},
		{"another key", func(m madeRegistry) string { return m.single[0] },
			func(reg *natsreg.Registry, _ *rendezvous.Store, dev string) error {
				_, err := reg.RegisterDevice(dev, []byte("another key"), "", now)
				return err
			},
			func(reg *natsreg.Registry, dev string) error {
				if d, err := reg.Device(dev); err != nil || string(d.PublicKey) != "another key" {
					return fmt.Errorf("Device = %+v, %v; want the other key", d, err)
				}
				return nil
			}},
		{"paired where bbolt has no parent", func(m madeRegistry) string { return m.single[1] },
			func(reg *natsreg.Registry, st *rendezvous.Store, dev string) error {
				d, _ := st.Device(dev)
				if _, err := reg.RegisterDevice(dev, d.PublicKey, "", now); err != nil {
					return err
				}
				return reg.CreatePairing(dev, "nats-parent", []byte("h"), "", now)
			},
			func(reg *natsreg.Registry, dev string) error {
				if p, err := reg.ParentOf(dev); err != nil || p != "nats-parent" {
					return fmt.Errorf("ParentOf = %s, %v; want nats-parent", p, err)
				}
				return nil
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := makeRegistry(t, registryShape{paired: 10, pending: 3, unpaired: 5})
			url := natsTarget(t)
			reg := connectNATS(t, url)
			dev := tt.pick(m)
			st, err := rendezvous.OpenStore(filepath.Join(m.dir, rendezvous.RegistryFile))
			if err != nil {
				t.Fatal(err)
			}
			err = tt.setup(reg, st, dev)
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err = run(context.Background(), []string{"migrate", "-data", m.dir, "-to", url}, &out, io.Discard)
			if !errors.Is(err, errMigrateFailed) {
				t.Fatalf("migrate = %v, want errMigrateFailed\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "conflict: natsreg: import "+dev+": ") || !strings.Contains(out.String(), "1 conflicts") {
				t.Errorf("report does not name %s's conflict:\n%s", dev, out.String())
			}
			if err := tt.left(reg, dev); err != nil {
				t.Errorf("the conflicting terminal was overwritten: %v", err)
			}
			for _, other := range m.all() {
				if other == dev {
					continue
				}
				if _, err := reg.Device(other); err != nil {
					t.Fatalf("terminal %s not migrated beside the conflict: %v", other, err)
				}
			}
		})
	}
}

// TestMigrateLockedRegistry: with the registry held (a Store open, as the
// running server holds it), migrate refuses within bbolt's lock timeout
// with an error that says to stop the server, instead of hanging.
func TestMigrateLockedRegistry(t *testing.T) {
	m := makeRegistry(t, registryShape{paired: 2})
	st, err := rendezvous.OpenStore(filepath.Join(m.dir, rendezvous.RegistryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"migrate", "-data", m.dir, "-to", "nats://127.0.0.1:1"}, io.Discard, io.Discard)
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("migrate of a held registry still waiting after 30 s")
	}
	if !errors.Is(err, bolterrors.ErrTimeout) || !strings.Contains(err.Error(), "running server holds it: stop it first") {
		t.Fatalf("migrate of a held registry = %v, want bbolt's timeout and the way out", err)
	}
}
