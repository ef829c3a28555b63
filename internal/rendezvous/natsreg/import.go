package natsreg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tuanju/tuanju/internal/rendezvous"
)

// ErrConflict: what the registry holds for a terminal differs from what
// Import was asked to write (another public key, another parent, another
// pairing state). Import never overwrites it.
var ErrConflict = errors.New("the NATS registry holds something else")

// Import writes one terminal as the bbolt registry holds it
// (rendezvous.ReadRegistry): its device record and its pairing or pending
// pairing, with the index entry of the pair ID. It is for `rendezvous
// migrate` and only ever creates: a key that is absent is written
// (compare-and-set on "absent", the index first as everywhere here), one
// that is present is compared. So running it again writes nothing and
// succeeds, and a migration cut short is finished by running it again.
//
// A terminal the registry already holds with another public key, or with
// another pairing (another parent or pair ID, token hash or parent key,
// or another state: paired, pending, none) is refused with an error
// wrapping ErrConflict and nothing is written for it: the registry may be
// in use, and which side is right is the operator's call. The rest of a
// present device record (last seen, version, health) is left as the
// registry has it. wrote reports whether anything was written.
func (r *Registry) Import(e rendezvous.RegistryEntry) (wrote bool, err error) {
	want := importRecord(e)
	if err := r.importCheck(e, want); err != nil {
		return false, fmt.Errorf("natsreg: import %s: %w", e.ID, err)
	}
	dev := e.Device
	dev.Unpaired = false // kept on the pairing record
	rawDev, err := json.Marshal(dev)
	if err != nil {
		return false, fmt.Errorf("natsreg: import %s: %w", e.ID, err)
	}
	err = r.update(r.devices, e.ID, func(raw []byte, exists bool) ([]byte, error) {
		if exists {
			return nil, deviceConflict(raw, e.Device.PublicKey)
		}
		wrote = true
		return rawDev, nil
	})
	if err == nil && want.PairID != "" {
		err = r.putIndex(want.PairID, e.ID)
		if errors.Is(err, errParentExists) {
			err = fmt.Errorf("%w: %w", ErrConflict, err)
		}
	}
	if err == nil && (want.State != stateNone || want.Unpaired) {
		rawRec, merr := json.Marshal(want)
		if merr != nil {
			return wrote, fmt.Errorf("natsreg: import %s: %w", e.ID, merr)
		}
		err = r.update(r.pairings, e.ID, func(raw []byte, exists bool) ([]byte, error) {
			if exists {
				return nil, recordConflict(raw, want)
			}
			wrote = true
			return rawRec, nil
		})
	}
	if err == nil && want.State == statePaired {
		var own bool
		own, err = r.importOwn(e)
		wrote = wrote || own
	}
	if err != nil {
		return wrote, fmt.Errorf("natsreg: import %s: %w", e.ID, err)
	}
	return wrote, nil
}

// importOwn writes what belongs to a paired entry's parent, only ever
// creating, as Import does: each call record the registry does not hold
// (one left open is closed as a stopped server's is,
// rendezvous.CloseInterrupted: the bbolt server is stopped), each push
// subscription whose endpoint it does not hold (up to
// rendezvous.MaxPushSubscriptions), and the number if it holds none.
func (r *Registry) importOwn(e rendezvous.RegistryEntry) (wrote bool, err error) {
	if err := checkIDs(e.ParentID); err != nil {
		return false, err
	}
	for i := len(e.Calls) - 1; i >= 0; i-- { // oldest first
		rec := e.Calls[i]
		if err := checkIDs(rec.CallID); err != nil {
			return wrote, err
		}
		if rec.EndedAt.IsZero() {
			rendezvous.CloseInterrupted(&rec)
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return wrote, err
		}
		if err := r.update(r.calls, callKey(e.ParentID, rec), func(_ []byte, exists bool) ([]byte, error) {
			if exists {
				return nil, nil
			}
			wrote = true
			return raw, nil
		}); err != nil {
			return wrote, fmt.Errorf("call %s: %w", rec.CallID, err)
		}
	}
	if len(e.Push) > 0 {
		if err := r.update(r.notify, pushKey(e.ParentID), func(raw []byte, exists bool) ([]byte, error) {
			subs, err := decodeSubs(raw, exists)
			if err != nil {
				return nil, err
			}
			n := len(subs)
			for _, sub := range e.Push {
				if !slices.ContainsFunc(subs, func(x rendezvous.PushSubscription) bool { return x.Endpoint == sub.Endpoint }) {
					subs = append(subs, sub)
				}
			}
			if len(subs) == n {
				return nil, nil
			}
			wrote = true
			sortSubs(subs)
			return json.Marshal(subs[:min(len(subs), rendezvous.MaxPushSubscriptions)])
		}); err != nil {
			return wrote, fmt.Errorf("push subscriptions: %w", err)
		}
	}
	if e.Phone != nil {
		raw, err := json.Marshal(*e.Phone)
		if err != nil {
			return wrote, err
		}
		if err := r.update(r.notify, phoneKey(e.ParentID), func(_ []byte, exists bool) ([]byte, error) {
			if exists {
				return nil, nil
			}
			wrote = true
			return raw, nil
		}); err != nil {
			return wrote, fmt.Errorf("phone: %w", err)
		}
	}
	return wrote, nil
}

// importCheck reads what the registry holds for the terminal and refuses
// a conflict before anything is written.
func (r *Registry) importCheck(e rendezvous.RegistryEntry, want record) error {
	return r.read(func(ctx context.Context) error {
		if raw, err := get(ctx, r.devices, e.ID); err == nil {
			if err := deviceConflict(raw, e.Device.PublicKey); err != nil {
				return err
			}
		} else if !errors.Is(err, rendezvous.ErrNotFound) {
			return err
		}
		ent, err := r.pairings.Get(ctx, e.ID)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return recordConflict(ent.Value(), want)
	})
}

// importRecord is the pairing record that stands for an entry.
func importRecord(e rendezvous.RegistryEntry) record {
	rec := record{Unpaired: e.Device.Unpaired}
	switch {
	case e.ParentID != "":
		p := e.Parent
		rec.State, rec.PairID, rec.TokenHash, rec.PublicKey, rec.PairedAt = statePaired, e.ParentID, p.TokenHash, p.PublicKey, p.CreatedAt
	case e.Pending != nil:
		p := e.Pending
		rec.State, rec.PairID, rec.TokenHash, rec.PublicKey, rec.PendingAt = statePending, p.PairID, p.TokenHash, p.PublicKey, p.CreatedAt
	}
	return rec
}

// deviceConflict compares a device record the registry holds with the
// public key being imported.
func deviceConflict(raw, publicKey []byte) error {
	var d rendezvous.Device
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("decode device: %w", err)
	}
	if !bytes.Equal(d.PublicKey, publicKey) {
		return fmt.Errorf("%w: another public key", ErrConflict)
	}
	return nil
}

// recordConflict compares a pairing record the registry holds with the
// one being imported: state, pair ID, token hash and parent key.
// Timestamps, Unpaired and Previous are the registry's own.
func recordConflict(raw []byte, want record) error {
	var have record
	if err := json.Unmarshal(raw, &have); err != nil {
		return fmt.Errorf("decode pairing: %w", err)
	}
	if have.State != want.State || have.PairID != want.PairID || !bytes.Equal(have.TokenHash, want.TokenHash) || have.PublicKey != want.PublicKey {
		return fmt.Errorf("%w: %s, where the bbolt registry has %s", ErrConflict, have.describe(), want.describe())
	}
	return nil
}

// describe says a record's pairing for a conflict's message.
func (rec record) describe() string {
	switch rec.State {
	case statePaired:
		return "paired with parent " + rec.PairID
	case statePending:
		return "pending pairing " + rec.PairID
	}
	return "no parent"
}

// Counts is how many terminals the registry holds, how many of them are
// paired and how many have a pairing pending, and how many call records,
// push subscriptions and numbers it holds.
type Counts struct {
	Devices, Paired, Pending               int
	CallRecords, PushSubscriptions, Phones int
}

// Counts counts the registry's devices and pairing records, reading every
// key of the two buckets once (a watcher over the current values): for
// checking a migration, not for a hot path.
func (r *Registry) Counts(ctx context.Context) (Counts, error) {
	var c Counts
	err := r.each(ctx, r.devices, true, func(jetstream.KeyValueEntry) error {
		c.Devices++
		return nil
	})
	if err == nil {
		err = r.each(ctx, r.pairings, false, func(e jetstream.KeyValueEntry) error {
			var rec record
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return fmt.Errorf("decode pairing of %s: %w", e.Key(), err)
			}
			switch rec.State {
			case statePaired:
				c.Paired++
			case statePending:
				c.Pending++
			}
			return nil
		})
	}
	if err == nil {
		err = r.each(ctx, r.calls, true, func(jetstream.KeyValueEntry) error {
			c.CallRecords++
			return nil
		})
	}
	if err == nil {
		err = r.each(ctx, r.notify, false, func(e jetstream.KeyValueEntry) error {
			switch kind, _, _ := strings.Cut(e.Key(), "."); kind {
			case "phone":
				c.Phones++
			case "push":
				subs, err := decodeSubs(e.Value(), true)
				c.PushSubscriptions += len(subs)
				return err
			}
			return nil
		})
	}
	if err != nil {
		return Counts{}, fmt.Errorf("natsreg: count: %w", err)
	}
	return c, nil
}

// each calls fn with the current value of every key of a bucket
// (metaOnly: without its value).
func (r *Registry) each(ctx context.Context, kv jetstream.KeyValue, metaOnly bool, fn func(jetstream.KeyValueEntry) error) error {
	return r.eachOf(ctx, kv, ">", metaOnly, fn)
}

// eachOf is each over the keys that match filter (a NATS subject filter:
// "a.*.c", "a.>").
func (r *Registry) eachOf(ctx context.Context, kv jetstream.KeyValue, filter string, metaOnly bool, fn func(jetstream.KeyValueEntry) error) error {
	opts := []jetstream.WatchOpt{jetstream.IgnoreDeletes()}
	if metaOnly {
		opts = append(opts, jetstream.MetaOnly())
	}
	w, err := kv.Watch(ctx, filter, opts...)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				return nil // the current values are all delivered
			}
			if err := fn(e); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
