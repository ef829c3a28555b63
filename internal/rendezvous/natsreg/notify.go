package natsreg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
)

// What a parent gave to be told of a ring, in tuanju_notify:
//
//	push.<parent ID>  → []rendezvous.PushSubscription (JSON), newest first
//	phone.<parent ID> → rendezvous.Phone (JSON)
//
// A parent's subscriptions are one key, so that keeping at most
// rendezvous.MaxPushSubscriptions is one compare-and-set. A write checks
// that the parent exists; Unpair deletes both keys after its own write, so
// a write racing an Unpair may leave a key behind for a parent that is
// gone. Parent IDs are never used again and nothing reads a gone parent's
// keys (a parent's socket needs its pairing), so such a key is dead
// weight, not a way back in.

func pushKey(parentID string) string  { return "push." + parentID }
func phoneKey(parentID string) string { return "phone." + parentID }

// parentExists refuses with ErrNotFound a parent that is not paired.
func (r *Registry) parentExists(parentID string) error {
	if err := checkIDs(parentID); err != nil {
		return err
	}
	_, err := r.Parent(parentID)
	return err
}

// PutPushSubscription keeps a parent's subscription, replacing one with the
// same endpoint (keeping when it was first made) and, beyond
// rendezvous.MaxPushSubscriptions, the least recently renewed.
// ErrNotFound: no such parent.
func (r *Registry) PutPushSubscription(parentID string, sub rendezvous.PushSubscription, now time.Time) error {
	if err := r.parentExists(parentID); err != nil {
		return fmt.Errorf("natsreg: keep push subscription of %s: %w", parentID, err)
	}
	err := r.update(r.notify, pushKey(parentID), func(raw []byte, exists bool) ([]byte, error) {
		subs, err := decodeSubs(raw, exists)
		if err != nil {
			return nil, err
		}
		s := sub
		s.Created, s.Updated = now, now
		if i := slices.IndexFunc(subs, func(x rendezvous.PushSubscription) bool { return x.Endpoint == sub.Endpoint }); i >= 0 {
			s.Created = subs[i].Created
			subs = slices.Delete(subs, i, i+1)
		}
		subs = append(subs, s)
		sortSubs(subs)
		return json.Marshal(subs[:min(len(subs), rendezvous.MaxPushSubscriptions)])
	})
	if err != nil {
		return fmt.Errorf("natsreg: keep push subscription of %s: %w", parentID, err)
	}
	return nil
}

// PushSubscriptions returns a parent's subscriptions, most recently renewed
// first (none: an empty list).
func (r *Registry) PushSubscriptions(parentID string) ([]rendezvous.PushSubscription, error) {
	if err := checkIDs(parentID); err != nil {
		return nil, fmt.Errorf("natsreg: push subscriptions: %w", err)
	}
	var subs []rendezvous.PushSubscription
	err := r.read(func(ctx context.Context) error {
		raw, err := get(ctx, r.notify, pushKey(parentID))
		if err != nil {
			return err
		}
		subs, err = decodeSubs(raw, true)
		return err
	})
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("natsreg: push subscriptions of %s: %w", parentID, err)
	}
	return subs, nil
}

// DeletePushSubscription forgets one subscription. It reports whether there
// was one.
func (r *Registry) DeletePushSubscription(parentID, endpoint string) (bool, error) {
	if err := checkIDs(parentID); err != nil {
		return false, fmt.Errorf("natsreg: delete push subscription: %w", err)
	}
	found := false
	err := r.update(r.notify, pushKey(parentID), func(raw []byte, exists bool) ([]byte, error) {
		found = false
		subs, err := decodeSubs(raw, exists)
		if err != nil {
			return nil, err
		}
		n := len(subs)
		subs = slices.DeleteFunc(subs, func(x rendezvous.PushSubscription) bool { return x.Endpoint == endpoint })
		if found = len(subs) < n; !found {
			return nil, nil
		}
		return json.Marshal(subs)
	})
	if err != nil {
		return false, fmt.Errorf("natsreg: delete push subscription of %s: %w", parentID, err)
	}
	return found, nil
}

// PutPhone keeps a parent's number. ErrNotFound: no such parent.
func (r *Registry) PutPhone(parentID string, p rendezvous.Phone) error {
	if err := r.parentExists(parentID); err != nil {
		return fmt.Errorf("natsreg: keep phone of %s: %w", parentID, err)
	}
	raw, err := json.Marshal(p)
	if err == nil {
		err = r.put(r.notify, phoneKey(parentID), raw)
	}
	if err != nil {
		return fmt.Errorf("natsreg: keep phone of %s: %w", parentID, err)
	}
	return nil
}

// PhoneRecord returns what a parent said of their number: the number, or
// that they removed it (Number empty, DeclinedAt set); ErrNotFound when
// they said nothing.
func (r *Registry) PhoneRecord(parentID string) (rendezvous.Phone, error) {
	if err := checkIDs(parentID); err != nil {
		return rendezvous.Phone{}, fmt.Errorf("natsreg: phone: %w", err)
	}
	var p rendezvous.Phone
	err := r.read(func(ctx context.Context) error {
		raw, err := get(ctx, r.notify, phoneKey(parentID))
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, &p)
	})
	if err != nil {
		return rendezvous.Phone{}, fmt.Errorf("natsreg: phone of %s: %w", parentID, err)
	}
	return p, nil
}

// ClearPhone forgets a parent's number and records that they want no text
// or call. ErrNotFound: no such parent.
func (r *Registry) ClearPhone(parentID string, now time.Time) error {
	if err := r.PutPhone(parentID, rendezvous.Phone{DeclinedAt: now}); err != nil {
		return fmt.Errorf("natsreg: clear phone: %w", err)
	}
	return nil
}

// dropNotify deletes what a parent gave for notifications (Unpair).
func (r *Registry) dropNotify(parentID string) error {
	if err := r.remove(r.notify, pushKey(parentID)); err != nil {
		return err
	}
	return r.remove(r.notify, phoneKey(parentID))
}

func isNotFound(err error) bool { return errors.Is(err, rendezvous.ErrNotFound) }

func decodeSubs(raw []byte, exists bool) ([]rendezvous.PushSubscription, error) {
	var subs []rendezvous.PushSubscription
	if !exists {
		return subs, nil
	}
	if err := json.Unmarshal(raw, &subs); err != nil {
		return nil, fmt.Errorf("decode push subscriptions: %w", err)
	}
	return subs, nil
}

// sortSubs puts the most recently renewed first.
func sortSubs(subs []rendezvous.PushSubscription) {
	slices.SortStableFunc(subs, func(a, b rendezvous.PushSubscription) int { return b.Updated.Compare(a.Updated) })
}
