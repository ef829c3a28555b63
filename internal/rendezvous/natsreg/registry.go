package natsreg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tuanju/tuanju/internal/rendezvous"
)

// ErrPendingExists: the terminal has a pending pairing with another pair
// ID. rendezvous.Store replaces it, because its one hub refuses a second
// request while one is undecided; across nodes nothing else stands
// between two pages pairing one terminal, and the terminal may already
// hold the first parent, so the registry refuses. Only the terminal's
// word (CompletePairing, DropPendingPairing) or a factory reset (Unpair)
// ends a pending pairing.
var ErrPendingExists = errors.New("another pairing is pending")

// Pairing states of a record.
const (
	stateNone    = ""
	statePending = "pending"
	statePaired  = "paired"
)

// record is a terminal's pairing: the one key that decides it.
type record struct {
	State     string    `json:"state,omitempty"`
	PairID    string    `json:"pair_id,omitempty"` // pending: the parent ID it becomes; paired: the parent ID
	TokenHash []byte    `json:"token_hash,omitempty"`
	PublicKey string    `json:"public_key,omitempty"`
	PendingAt time.Time `json:"pending_at,omitzero"` // PendingPairing.CreatedAt
	PairedAt  time.Time `json:"paired_at,omitzero"`  // Parent.CreatedAt
	// Unpaired: the terminal has lost a parent (rendezvous.Device.Unpaired).
	// It is kept here, not on the device's key, so that losing the parent
	// and saying so are one write.
	Unpaired bool `json:"unpaired,omitempty"`
	// Previous is the parent the last Unpair removed: a retried Unpair
	// whose first write landed still returns it.
	Previous string `json:"previous,omitempty"`
}

func (rec record) parent(deviceID string) rendezvous.Parent {
	return rendezvous.Parent{TokenHash: rec.TokenHash, DeviceID: deviceID, CreatedAt: rec.PairedAt, PublicKey: rec.PublicKey}
}

func (rec record) pending() rendezvous.PendingPairing {
	return rendezvous.PendingPairing{PairID: rec.PairID, TokenHash: rec.TokenHash, PublicKey: rec.PublicKey, CreatedAt: rec.PendingAt}
}

// RegisterDevice records a terminal's login: the first one pins its public
// key (kv.Create: of two first logins through two nodes, one pins and the
// other is checked against it), later ones must present the same key and
// update LastSeen and, when it says one, Version (rendezvous.Device.
// LoginWrites: a login that changes neither writes nothing). first reports whether
// this call registered the device; a retry after a lost acknowledgement
// reports false.
func (r *Registry) RegisterDevice(id string, publicKey []byte, version string, now time.Time) (first bool, err error) {
	err = r.update(r.devices, id, func(raw []byte, exists bool) ([]byte, error) {
		first = !exists
		d := rendezvous.Device{PublicKey: publicKey, RegisteredAt: now}
		if exists {
			if err := json.Unmarshal(raw, &d); err != nil {
				return nil, fmt.Errorf("decode device: %w", err)
			}
			if !bytes.Equal(d.PublicKey, publicKey) {
				return nil, rendezvous.ErrKeyMismatch
			}
			// Nothing to record: one read, no replicated write. A record
			// still saying Unpaired (written before that moved to the
			// pairing record) is written, which clears it.
			if !d.Unpaired && !d.LoginWrites(version, now) {
				return nil, nil
			}
		}
		d.LastSeen = now
		if version != "" {
			d.Version = version
		}
		d.Unpaired = false // kept on the pairing record
		return json.Marshal(d)
	})
	if err != nil {
		return false, fmt.Errorf("natsreg: register device %s: %w", id, err)
	}
	return first, nil
}

// NoteDeviceHealth keeps a registered terminal's last report of its own
// health; a report that says what the record holds writes nothing.
func (r *Registry) NoteDeviceHealth(id, health string, faults []string) error {
	err := r.update(r.devices, id, func(raw []byte, exists bool) ([]byte, error) {
		if !exists {
			return nil, nil // unregistered: nothing to keep it on
		}
		var d rendezvous.Device
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("decode device: %w", err)
		}
		if d.Health == health && slices.Equal(d.Faults, faults) {
			return nil, nil
		}
		d.Health, d.Faults = health, slices.Clone(faults)
		return json.Marshal(d)
	})
	if err != nil {
		return fmt.Errorf("natsreg: device %s health: %w", id, err)
	}
	return nil
}

// Device returns a registered terminal, or ErrNotFound.
func (r *Registry) Device(id string) (rendezvous.Device, error) {
	var d rendezvous.Device
	err := r.read(func(ctx context.Context) error {
		raw, err := get(ctx, r.devices, id)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("decode device: %w", err)
		}
		rec, _, err := r.record(ctx, id)
		d.Unpaired = rec.Unpaired
		return err
	})
	if err != nil {
		return rendezvous.Device{}, fmt.Errorf("natsreg: device %s: %w", id, err)
	}
	return d, nil
}

// ParentOf returns the parent paired with a terminal, or ErrNotFound.
func (r *Registry) ParentOf(deviceID string) (string, error) {
	rec, err := r.recordIn(deviceID, statePaired)
	if err != nil {
		return "", fmt.Errorf("natsreg: pairing of %s: %w", deviceID, err)
	}
	return rec.PairID, nil
}

// PairingState is a terminal's parent and pending pair ID in one read of
// its record (rendezvous.PairingReader).
func (r *Registry) PairingState(deviceID string) (parentID, pendingID string, err error) {
	rec, err := r.recordIn(deviceID, "")
	if err != nil {
		return "", "", fmt.Errorf("natsreg: pairing of %s: %w", deviceID, err)
	}
	switch rec.State {
	case statePaired:
		return rec.PairID, "", nil
	case statePending:
		return "", rec.PairID, nil
	}
	return "", "", nil
}

var _ rendezvous.PairingReader = (*Registry)(nil)

// recordIn reads a terminal's pairing record if it is in state ("": any), else
// ErrNotFound.
func (r *Registry) recordIn(deviceID, state string) (record, error) {
	var rec record
	err := r.read(func(ctx context.Context) (err error) {
		rec, _, err = r.record(ctx, deviceID)
		return err
	})
	if err == nil && state != "" && rec.State != state {
		err = rendezvous.ErrNotFound
	}
	return rec, err
}

// Parent returns a parent's record, or ErrNotFound.
func (r *Registry) Parent(id string) (rendezvous.Parent, error) {
	dev, rec, err := r.byParent(id)
	if err == nil && rec.State != statePaired {
		err = rendezvous.ErrNotFound
	}
	if err != nil {
		return rendezvous.Parent{}, fmt.Errorf("natsreg: parent %s: %w", id, err)
	}
	return rec.parent(dev), nil
}

// PendingOf returns a terminal's pending pairing, or ErrNotFound.
func (r *Registry) PendingOf(deviceID string) (rendezvous.PendingPairing, error) {
	rec, err := r.recordIn(deviceID, statePending)
	if err != nil {
		return rendezvous.PendingPairing{}, fmt.Errorf("natsreg: pending pairing of %s: %w", deviceID, err)
	}
	return rec.pending(), nil
}

// PendingParent returns the pending pairing that would make parentID, and
// its terminal, or ErrNotFound.
func (r *Registry) PendingParent(parentID string) (deviceID string, p rendezvous.PendingPairing, err error) {
	dev, rec, err := r.byParent(parentID)
	if err == nil && rec.State != statePending {
		err = rendezvous.ErrNotFound
	}
	if err != nil {
		return "", rendezvous.PendingPairing{}, fmt.Errorf("natsreg: pending parent %s: %w", parentID, err)
	}
	return dev, rec.pending(), nil
}

// byParent follows the index from a parent (pair) ID to its terminal and
// returns the terminal's record if the record names that pair ID, else
// ErrNotFound: the record wins over the index.
func (r *Registry) byParent(parentID string) (deviceID string, rec record, err error) {
	err = r.read(func(ctx context.Context) error {
		raw, err := get(ctx, r.parents, parentID)
		if err != nil {
			return err
		}
		deviceID = string(raw)
		rec, _, err = r.record(ctx, deviceID)
		return err
	})
	if err == nil && (rec.State == stateNone || rec.PairID != parentID) {
		err = rendezvous.ErrNotFound
	}
	return deviceID, rec, err
}

// CreatePairing pairs a terminal with a new parent at once, without the
// pending step. It refuses with ErrAlreadyPaired if the terminal has a
// parent, ErrPendingExists if it has a pending pairing, ErrNotFound if it
// is not registered.
func (r *Registry) CreatePairing(deviceID, parentID string, tokenHash []byte, parentKey string, now time.Time) error {
	err := r.transition(deviceID, parentID, func(rec record) (record, error) {
		switch {
		case rec.State == statePaired:
			return rec, rendezvous.ErrAlreadyPaired
		case rec.State == statePending:
			return rec, ErrPendingExists
		}
		return record{State: statePaired, PairID: parentID, TokenHash: tokenHash, PublicKey: parentKey,
			PairedAt: now, Unpaired: rec.Unpaired, Previous: rec.Previous}, nil
	})
	if err != nil {
		return fmt.Errorf("natsreg: pair %s with %s: %w", deviceID, parentID, err)
	}
	return nil
}

// PutPendingPairing records a confirmed pairing for a terminal: none →
// pending. The same pending pairing again is no error (a retry). It
// refuses with ErrAlreadyPaired if the terminal has a parent,
// ErrPendingExists if another pairing is pending, ErrNotFound if the
// terminal is not registered.
func (r *Registry) PutPendingPairing(deviceID string, p rendezvous.PendingPairing) error {
	err := r.transition(deviceID, p.PairID, func(rec record) (record, error) {
		switch {
		case rec.State == statePaired:
			return rec, rendezvous.ErrAlreadyPaired
		case rec.State == statePending && rec.PairID == p.PairID:
			return rec, errUnchanged
		case rec.State == statePending:
			return rec, ErrPendingExists
		}
		return record{State: statePending, PairID: p.PairID, TokenHash: p.TokenHash, PublicKey: p.PublicKey,
			PendingAt: p.CreatedAt, Unpaired: rec.Unpaired, Previous: rec.Previous}, nil
	})
	if err != nil {
		return fmt.Errorf("natsreg: pending pairing %s for %s: %w", p.PairID, deviceID, err)
	}
	return nil
}

// CompletePairing commits a terminal's pending pairing pairID: pending →
// paired, one CAS. A pairing already committed as pairID is no error (the
// terminal repeats a pair_complete whose answer it never saw); committed
// reports whether this call made it. ErrNotFound: no such pending pairing;
// ErrAlreadyPaired: the terminal has another parent.
func (r *Registry) CompletePairing(deviceID, pairID string, now time.Time) (p rendezvous.Parent, committed bool, err error) {
	var out record
	err = r.updateRecord(deviceID, func(rec record) (record, error) {
		committed = false
		switch {
		case rec.State == statePaired && rec.PairID == pairID:
			out = rec
			return rec, errUnchanged
		case rec.State == statePaired:
			return rec, rendezvous.ErrAlreadyPaired
		case rec.State != statePending || rec.PairID != pairID:
			return rec, rendezvous.ErrNotFound
		}
		committed = true
		rec.State, rec.PairedAt = statePaired, now
		out = rec
		return rec, nil
	})
	if err != nil {
		return rendezvous.Parent{}, false, fmt.Errorf("natsreg: complete pairing %s of %s: %w", pairID, deviceID, err)
	}
	return out.parent(deviceID), committed, nil
}

// DropPendingPairing rolls back a terminal's pending pairing pairID ("":
// whichever it has): pending → none. It reports whether there was one to
// drop.
func (r *Registry) DropPendingPairing(deviceID, pairID string) (dropped bool, err error) {
	var gone string
	err = r.updateRecord(deviceID, func(rec record) (record, error) {
		dropped = false
		if rec.State != statePending || (pairID != "" && rec.PairID != pairID) {
			return rec, errUnchanged
		}
		dropped, gone = true, rec.PairID
		return record{Unpaired: rec.Unpaired, Previous: rec.Previous}, nil
	})
	if err != nil {
		return false, fmt.Errorf("natsreg: drop pending pairing %s of %s: %w", pairID, deviceID, err)
	}
	if dropped {
		r.dropIndex(gone, deviceID)
	}
	return dropped, nil
}

// Unpair ends a terminal's pairing, or its pending pairing, in one CAS
// (paired or pending → none, Unpaired set when a parent went). It returns
// the old parent's ID, or "" when the terminal had none. Then it deletes
// the parent's call log, push subscriptions and number. That is not one
// transaction with the CAS, as it is in the bbolt store: if it fails, the
// pairing has still ended, and Unpair returns the old parent's ID with the
// error, so that the caller still shuts the parent out; what was left is
// unreachable (a parent ID is never used again; CallLog and the rest are
// read only for a paired parent).
func (r *Registry) Unpair(deviceID string) (parentID string, err error) {
	var tried, gone string
	err = r.updateRecord(deviceID, func(rec record) (record, error) {
		parentID, gone = "", ""
		switch rec.State {
		case statePaired:
			parentID, gone, tried = rec.PairID, rec.PairID, rec.PairID
			return record{Unpaired: true, Previous: rec.PairID}, nil
		case statePending:
			gone = rec.PairID
			return record{Unpaired: rec.Unpaired, Previous: rec.Previous}, nil
		}
		if tried != "" && rec.Previous == tried {
			parentID, gone = tried, tried // an earlier attempt of this call landed
		}
		return rec, errUnchanged
	})
	if err != nil {
		return "", fmt.Errorf("natsreg: unpair %s: %w", deviceID, err)
	}
	if gone != "" {
		r.dropIndex(gone, deviceID)
	}
	if parentID != "" {
		if err := r.deleteCallLog(parentID); err != nil {
			return parentID, fmt.Errorf("natsreg: unpair %s: pairing ended, its call log not deleted: %w", deviceID, err)
		}
		if err := r.dropNotify(parentID); err != nil {
			return parentID, fmt.Errorf("natsreg: unpair %s: pairing ended, its notifications not deleted: %w", deviceID, err)
		}
	}
	return parentID, nil
}

// transition writes the index entry pairID → deviceID, then changes the
// device's record with fn: the index first, so that no committed record
// lacks its index entry (package doc).
func (r *Registry) transition(deviceID, pairID string, fn func(record) (record, error)) error {
	if err := r.read(func(ctx context.Context) error {
		_, err := get(ctx, r.devices, deviceID)
		return err
	}); err != nil {
		return err
	}
	if err := r.putIndex(pairID, deviceID); err != nil {
		return err
	}
	return r.updateRecord(deviceID, fn)
}

// putIndex points parentID at deviceID, unless it points at another
// terminal whose record names it: parent IDs are random, so that is a
// caller's mistake, refused as rendezvous.Store refuses it.
func (r *Registry) putIndex(parentID, deviceID string) error {
	return r.update(r.parents, parentID, func(raw []byte, exists bool) ([]byte, error) {
		if exists {
			other := string(raw)
			if other == deviceID {
				return nil, nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), r.opTimeout)
			defer cancel()
			rec, _, err := r.record(ctx, other)
			if err != nil {
				return nil, err
			}
			if rec.State != stateNone && rec.PairID == parentID {
				return nil, fmt.Errorf("%w: %s", errParentExists, parentID)
			}
		}
		return []byte(deviceID), nil
	})
}

// dropIndex deletes the index entry of a pair ID that no record names any
// more. It is tidying: an entry left behind reads as no parent anyway.
func (r *Registry) dropIndex(parentID, deviceID string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.opTimeout)
	defer cancel()
	e, err := r.parents.Get(ctx, parentID)
	if err != nil || string(e.Value()) != deviceID {
		return
	}
	_ = r.parents.Delete(ctx, parentID, jetstream.LastRevision(e.Revision()))
}

// SweepIndex deletes index entries that no record names and that are
// older than minAge: entries a node wrote before a CAS it never made (it
// died, or lost the race). A younger entry may be an intent whose CAS is
// still on its way; minAge must be longer than OpTimeout. It returns how
// many it deleted.
//
// It reads each bucket once, as a stream, rather than a key at a time: the
// pair IDs every record names, then the index, so a registry of a million
// pairings is two passes and some 100 MB of names, not two million round
// trips. An entry no record names is read again, with its record, before
// it is deleted at the revision it was read at; it is rare.
func (r *Registry) SweepIndex(minAge time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sweepScanTimeout)
	defer cancel()
	named := map[string]bool{}
	err := r.each(ctx, r.pairings, false, func(e jetstream.KeyValueEntry) error {
		var rec record
		if json.Unmarshal(e.Value(), &rec) == nil && rec.State != stateNone {
			named[rec.PairID] = true
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("natsreg: sweep index: read the pairings: %w", err)
	}
	type orphan struct{ parentID, deviceID string }
	var orphans []orphan
	err = r.each(ctx, r.parents, false, func(e jetstream.KeyValueEntry) error {
		if !named[e.Key()] && time.Since(e.Created()) >= minAge {
			orphans = append(orphans, orphan{e.Key(), string(e.Value())})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("natsreg: sweep index: read the index: %w", err)
	}
	n := 0
	for _, o := range orphans {
		octx, ocancel := context.WithTimeout(ctx, r.opTimeout)
		e, err := r.parents.Get(octx, o.parentID)
		if err == nil && string(e.Value()) == o.deviceID {
			rec, _, err := r.record(octx, o.deviceID)
			if err == nil && (rec.State == stateNone || rec.PairID != o.parentID) &&
				r.parents.Delete(octx, o.parentID, jetstream.LastRevision(e.Revision())) == nil {
				n++
			}
		}
		ocancel()
	}
	return n, nil
}

// sweepScanTimeout bounds one SweepIndex: two passes over a million keys
// take minutes, not a registry call's seconds.
const sweepScanTimeout = 30 * time.Minute

// errParentExists: a parent ID already names another terminal's pairing.
var errParentExists = errors.New("parent exists")

// errUnchanged: a transition that finds nothing to write.
var errUnchanged = errors.New("unchanged")

// updateRecord is a CAS loop on a device's record.
func (r *Registry) updateRecord(deviceID string, fn func(record) (record, error)) error {
	return r.update(r.pairings, deviceID, func(raw []byte, exists bool) ([]byte, error) {
		var rec record
		if exists {
			if err := json.Unmarshal(raw, &rec); err != nil {
				return nil, fmt.Errorf("decode pairing: %w", err)
			}
		}
		next, err := fn(rec)
		if errors.Is(err, errUnchanged) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return json.Marshal(next)
	})
}

// record reads a device's record; a device without one has the zero
// record (no pairing). rev is 0 then.
func (r *Registry) record(ctx context.Context, deviceID string) (rec record, rev uint64, err error) {
	e, err := r.pairings.Get(ctx, deviceID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, 0, nil
	}
	if err != nil {
		return record{}, 0, err
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return record{}, 0, fmt.Errorf("decode pairing of %s: %w", deviceID, err)
	}
	return rec, e.Revision(), nil
}

// update is compare-and-set on one key: it reads the key, asks fn for the
// new value (nil: write nothing) and writes it only if the key is still at
// the revision it read (kv.Create if it had none), again from the read
// on a conflict, within OpTimeout. fn may run several times.
func (r *Registry) update(kv jetstream.KeyValue, key string, fn func(raw []byte, exists bool) ([]byte, error)) error {
	return r.retry(func(ctx context.Context) error {
		var raw []byte
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			raw, rev = e.Value(), e.Revision()
		}
		next, err := fn(raw, rev != 0)
		if err != nil && retryable(err) {
			return err // a read inside fn that failed
		}
		if err != nil || next == nil {
			return permanent{err}
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, next)
		} else {
			_, err = kv.Update(ctx, key, next, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return errConflict
		}
		if err != nil {
			return err
		}
		return permanent{nil}
	})
}

// read runs a read with the registry's retries.
func (r *Registry) read(fn func(ctx context.Context) error) error {
	return r.retry(func(ctx context.Context) error {
		err := fn(ctx)
		if err == nil || !retryable(err) {
			return permanent{err}
		}
		return err
	})
}

func get(ctx context.Context, kv jetstream.KeyValue, key string) ([]byte, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, rendezvous.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return e.Value(), nil
}

// errConflict: a CAS lost to another writer; retried at once.
var errConflict = errors.New("registry: write conflict")

// permanent ends retry with its error (nil: success).
type permanent struct{ err error }

func (p permanent) Error() string { return fmt.Sprint(p.err) }

// retry runs attempt until it returns permanent, or OpTimeout passes.
// Each attempt has at most a few seconds, so that a request lost with a
// dying server is asked again of another one well within OpTimeout.
func (r *Registry) retry(attempt func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.opTimeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, min(3*time.Second, r.opTimeout))
		err := attempt(actx)
		acancel()
		var p permanent
		if errors.As(err, &p) {
			return p.err
		}
		if errors.Is(err, errConflict) {
			continue
		}
		if r.storeFull != nil && r.storeFull() {
			return fmt.Errorf("%w: %w", ErrDiskFull, err)
		}
		if !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("gave up after %s: %w", r.opTimeout, err)
		}
		if sleep(ctx, wait) != nil {
			return fmt.Errorf("gave up after %s: %w", r.opTimeout, err)
		}
		wait = min(2*wait, time.Second)
	}
}

// ErrDiskFull: the registry's embedded server has no room on its disk, so
// JetStream answered no write.
var ErrDiskFull = errors.New("natsreg: the registry's disk is full")

// retryable tells errors of the registry's own answers, and of a closed
// client or a broken bucket, which no retry changes, from the errors of a
// cluster electing a leader or a client moving to another server.
func retryable(err error) bool {
	for _, e := range []error{
		rendezvous.ErrNotFound, rendezvous.ErrAlreadyPaired, rendezvous.ErrKeyMismatch, ErrPendingExists, errParentExists, ErrConflict,
		nats.ErrConnectionClosed, jetstream.ErrInvalidKey, jetstream.ErrBucketNotFound, jetstream.ErrStreamNotFound,
	} {
		if errors.Is(err, e) {
			return false
		}
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return !errors.As(err, &syn) && !errors.As(err, &typ)
}
