package rendezvous

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The registry's notification buckets (docs/notifications.md):
//
//	push   : parent ID → bucket{ SHA-256(endpoint) → PushSubscription (JSON) }
//	phones : parent ID → Phone (JSON)
//
// Both belong to a parent: Unpair deletes them with it, and a write for a
// parent that no longer exists is refused.
var (
	bucketPush   = []byte("push")
	bucketPhones = []byte("phones")
)

// MaxPushSubscriptions is how many browsers' subscriptions a parent keeps
// (phones, tabs of other browsers); a new one beyond it replaces the one
// that was used least recently.
const MaxPushSubscriptions = 5

// PushSubscription is a browser's Web Push subscription (the fields of the
// page's PushSubscription.toJSON()). None of it is a secret of the family's
// terminal: it lets the server, and only a server holding the VAPID key it
// was made for, wake that browser.
type PushSubscription struct {
	Endpoint string    `json:"endpoint"`
	P256DH   string    `json:"p256dh"`
	Auth     string    `json:"auth"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"` // the page's last push_subscribe of it
}

// Phone is the number a parent gave for text messages and calls, and when
// they agreed to it. It is written only with that consent, shown back only
// masked, and deleted by phone_clear or the pairing's end.
type Phone struct {
	Number    string    `json:"number"`
	ConsentAt time.Time `json:"consent_at"`
	// DeclinedAt: the parent removed their number (phone_clear), which
	// also declines the number the programme's batch gave for them (the
	// notifier's fallback, hub_notify.go). Number is then empty.
	DeclinedAt time.Time `json:"declined_at,omitzero"`
}

func endpointKey(endpoint string) []byte {
	sum := sha256.Sum256([]byte(endpoint))
	return []byte(base64.RawURLEncoding.EncodeToString(sum[:]))
}

// PutPushSubscription keeps a parent's subscription, replacing one with the
// same endpoint (its keys change when the browser renews it) and, beyond
// MaxPushSubscriptions, the least recently renewed. ErrNotFound: no such
// parent.
func (s *Store) PutPushSubscription(parentID string, sub PushSubscription, now time.Time) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketParents).Get([]byte(parentID)) == nil {
			return ErrNotFound
		}
		b, err := tx.Bucket(bucketPush).CreateBucketIfNotExists([]byte(parentID))
		if err != nil {
			return err
		}
		key := endpointKey(sub.Endpoint)
		var old PushSubscription
		if err := getJSON(b, string(key), &old); err == nil {
			sub.Created = old.Created
		} else {
			sub.Created = now
		}
		sub.Updated = now
		if err := putJSON(b, string(key), sub); err != nil {
			return err
		}
		subs, err := readSubscriptions(b)
		if err != nil {
			return err
		}
		for len(subs) > MaxPushSubscriptions {
			oldest := slices.MinFunc(subs, func(a, b PushSubscription) int { return a.Updated.Compare(b.Updated) })
			if err := b.Delete(endpointKey(oldest.Endpoint)); err != nil {
				return err
			}
			subs = slices.DeleteFunc(subs, func(x PushSubscription) bool { return x.Endpoint == oldest.Endpoint })
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rendezvous: keep push subscription of %s: %w", parentID, err)
	}
	return nil
}

// PushSubscriptions returns a parent's subscriptions (none: an empty list).
func (s *Store) PushSubscriptions(parentID string) ([]PushSubscription, error) {
	var subs []PushSubscription
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPush).Bucket([]byte(parentID))
		if b == nil {
			return nil
		}
		var err error
		subs, err = readSubscriptions(b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rendezvous: push subscriptions of %s: %w", parentID, err)
	}
	return subs, nil
}

// DeletePushSubscription forgets one subscription (the page unsubscribed,
// or the push service said it is gone). It reports whether there was one.
func (s *Store) DeletePushSubscription(parentID, endpoint string) (bool, error) {
	found := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPush).Bucket([]byte(parentID))
		if b == nil {
			return nil
		}
		key := endpointKey(endpoint)
		found = b.Get(key) != nil
		return b.Delete(key)
	})
	if err != nil {
		return false, fmt.Errorf("rendezvous: delete push subscription of %s: %w", parentID, err)
	}
	return found, nil
}

// PutPhone keeps a parent's number. ErrNotFound: no such parent.
func (s *Store) PutPhone(parentID string, p Phone) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketParents).Get([]byte(parentID)) == nil {
			return ErrNotFound
		}
		return putJSON(tx.Bucket(bucketPhones), parentID, p)
	})
	if err != nil {
		return fmt.Errorf("rendezvous: keep phone of %s: %w", parentID, err)
	}
	return nil
}

// Phone returns a parent's number, or ErrNotFound (also after they
// removed it: PhoneDeclined).
func (s *Store) Phone(parentID string) (Phone, error) {
	p, err := s.PhoneRecord(parentID)
	if err == nil && p.Number == "" {
		err = fmt.Errorf("rendezvous: phone of %s: declined: %w", parentID, ErrNotFound)
	}
	if err != nil {
		return Phone{}, err
	}
	return p, nil
}

// PhoneRecord returns what a parent said of their number: the number, or
// that they removed it (Number empty, DeclinedAt set); ErrNotFound when
// they said nothing.
func (s *Store) PhoneRecord(parentID string) (Phone, error) {
	var p Phone
	err := s.db.View(func(tx *bolt.Tx) error { return getJSON(tx.Bucket(bucketPhones), parentID, &p) })
	if err != nil {
		return Phone{}, fmt.Errorf("rendezvous: phone of %s: %w", parentID, err)
	}
	return p, nil
}

// PhoneDeclined reports whether a parent removed their number, and with it
// any number the programme has for them.
func (s *Store) PhoneDeclined(parentID string) (bool, error) {
	p, err := s.PhoneRecord(parentID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil && p.Number == "" && !p.DeclinedAt.IsZero(), err
}

// ClearPhone forgets a parent's number and records that they want no
// text or call: the programme's number for them is not used either.
// ErrNotFound: no such parent.
func (s *Store) ClearPhone(parentID string, now time.Time) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketParents).Get([]byte(parentID)) == nil {
			return ErrNotFound
		}
		return putJSON(tx.Bucket(bucketPhones), parentID, Phone{DeclinedAt: now})
	})
	if err != nil {
		return fmt.Errorf("rendezvous: clear phone of %s: %w", parentID, err)
	}
	return nil
}

// DeletePhone forgets a parent's number.
func (s *Store) DeletePhone(parentID string) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPhones).Delete([]byte(parentID)) })
	if err != nil {
		return fmt.Errorf("rendezvous: delete phone of %s: %w", parentID, err)
	}
	return nil
}

// dropNotify deletes what a parent gave for notifications; Unpair calls it
// in its transaction, so a reset terminal's old parent is neither woken nor
// texted again.
func dropNotify(tx *bolt.Tx, parentID []byte) error {
	if err := tx.Bucket(bucketPush).DeleteBucket(parentID); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return err
	}
	return tx.Bucket(bucketPhones).Delete(parentID)
}

func readSubscriptions(b *bolt.Bucket) ([]PushSubscription, error) {
	var subs []PushSubscription
	err := b.ForEach(func(k, v []byte) error {
		var sub PushSubscription
		if err := getJSON(b, string(k), &sub); err != nil {
			return err
		}
		subs = append(subs, sub)
		return nil
	})
	slices.SortFunc(subs, func(a, b PushSubscription) int { return b.Updated.Compare(a.Updated) })
	return subs, err
}
