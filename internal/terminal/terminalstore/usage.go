package terminalstore

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketUsage holds the month's data usage (package databudget). A
// factory reset keeps it: the budget is the unit's, whichever family has
// it, and a reset must not buy a month's data afresh.
var (
	bucketUsage = []byte("usage")
	keyUsage    = []byte("month")
)

// Usage is what calls sent and received in one calendar month, in bytes,
// as the data plan counts them. The loop adds to it every 30 s of a call
// and at the call's end, so a power cut loses at most that much.
type Usage struct {
	Month    string `json:"month"` // "2026-11" (databudget.Month)
	Sent     int64  `json:"sent"`
	Received int64  `json:"received"`
}

// Total is sent and received together.
func (u Usage) Total() int64 { return u.Sent + u.Received }

// DataUsage returns the stored usage; the zero Usage when nothing was
// counted yet.
func (s *Store) DataUsage() (Usage, error) {
	var u Usage
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsage)
		if b == nil {
			return nil
		}
		v := b.Get(keyUsage)
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("%w: usage: %v", ErrCorrupt, err)
		}
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("terminalstore: data usage: %w", err)
	}
	return u, nil
}

// AddDataUsage adds sent and received bytes to month's usage in one
// transaction and returns the new total. A stored usage of another month
// is replaced: the counters start again each calendar month.
func (s *Store) AddDataUsage(month string, sent, received int64) (Usage, error) {
	if month == "" || sent < 0 || received < 0 {
		return Usage{}, fmt.Errorf("terminalstore: add data usage %q %d %d: %w", month, sent, received, ErrInvalid)
	}
	var u Usage
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketUsage)
		if err != nil {
			return err
		}
		if v := b.Get(keyUsage); v != nil {
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("%w: usage: %v", ErrCorrupt, err)
			}
		}
		if u.Month != month {
			u = Usage{Month: month}
		}
		u.Sent += sent
		u.Received += received
		v, err := json.Marshal(u)
		if err != nil {
			return err
		}
		return b.Put(keyUsage, v)
	})
	if err != nil {
		return Usage{}, fmt.Errorf("terminalstore: add data usage: %w", err)
	}
	return u, nil
}
