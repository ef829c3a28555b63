package rendezvous

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tuanju/tuanju/internal/boltfile"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// The call log on disk. Each pairing's log is a bucket under call_log,
// named by its parent's ID, whose keys sort by time:
//
//	t<StartedAt, 8 bytes big-endian Unix ns><call ID> → protocol.CallRecord (JSON)
//	i<call ID> → that record's t key
//	n          → how many records (4 bytes big-endian)
//
// so logging a call, pruning the oldest and reading the newest 50 touch only
// those records: no decoding a whole log to find the oldest (issue 16: each
// call-log write decoded all 101 records to prune). open_calls indexes the
// records without an end (call ID → parent ID), so a start closes what a
// crash left open without reading every family's log.
//
// Registries from before this layout kept call ID → record under calls/;
// OpenStore moves them here (migrateCallLogs).
var (
	bucketCallLog   = []byte("call_log")
	bucketOpenCalls = []byte("open_calls")
)

const (
	callKeyTime  = 't'
	callKeyIndex = 'i'
)

var callKeyCount = []byte("n")

// callTimeKey is a record's t key.
func callTimeKey(r protocol.CallRecord) []byte {
	k := make([]byte, 1+8+len(r.CallID))
	k[0] = callKeyTime
	binary.BigEndian.PutUint64(k[1:9], uint64(r.StartedAt.UnixNano()))
	copy(k[9:], r.CallID)
	return k
}

func callIndexKey(callID string) []byte { return append([]byte{callKeyIndex}, callID...) }

// callIDOf is the call ID in a t key.
func callIDOf(timeKey []byte) string { return string(timeKey[9:]) }

func callCount(b *bolt.Bucket) uint32 {
	if v := b.Get(callKeyCount); len(v) == 4 {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func setCallCount(b *bolt.Bucket, n uint32) error {
	return b.Put(callKeyCount, binary.BigEndian.AppendUint32(nil, n))
}

// putCallRecord inserts or replaces a record in a pairing's log bucket and
// prunes the oldest beyond MaxStoredCalls; it keeps open_calls in step. It
// returns the record's t key.
func putCallRecord(tx *bolt.Tx, b *bolt.Bucket, parentID string, r protocol.CallRecord) ([]byte, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode call %s: %w", r.CallID, err)
	}
	open := tx.Bucket(bucketOpenCalls)
	if r.EndedAt.IsZero() {
		if err := open.Put([]byte(r.CallID), []byte(parentID)); err != nil {
			return nil, err
		}
	} else if err := open.Delete([]byte(r.CallID)); err != nil {
		return nil, err
	}
	ik := callIndexKey(r.CallID)
	if tk := b.Get(ik); tk != nil {
		tk = bytes.Clone(tk) // a call's start never changes: its key neither
		return tk, b.Put(tk, raw)
	}
	tk := callTimeKey(r)
	if err := b.Put(tk, raw); err != nil {
		return nil, err
	}
	if err := b.Put(ik, tk); err != nil {
		return nil, err
	}
	n := callCount(b) + 1
	for n > MaxStoredCalls {
		oldest, _ := b.Cursor().Seek([]byte{callKeyTime})
		if oldest == nil || oldest[0] != callKeyTime {
			break
		}
		id := callIDOf(oldest)
		oldest = bytes.Clone(oldest)
		if err := b.Delete(oldest); err != nil {
			return nil, err
		}
		if err := b.Delete(callIndexKey(id)); err != nil {
			return nil, err
		}
		if err := open.Delete([]byte(id)); err != nil {
			return nil, err
		}
		n--
	}
	return tk, setCallCount(b, n)
}

// newestCalls returns up to limit records of a pairing's log, newest first,
// with their t keys.
func newestCalls(b *bolt.Bucket, limit int) ([]protocol.CallRecord, [][]byte, error) {
	var recs []protocol.CallRecord
	var keys [][]byte
	c := b.Cursor()
	for k, v := c.Last(); k != nil && k[0] == callKeyTime && len(recs) < limit; k, v = c.Prev() {
		var r protocol.CallRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, nil, fmt.Errorf("decode call %s: %w", callIDOf(k), err)
		}
		recs = append(recs, r)
		keys = append(keys, bytes.Clone(k))
	}
	return recs, keys, nil
}

// callLogBucket is a pairing's log bucket, or nil when it has none.
func callLogBucket(tx *bolt.Tx, parentID string) *bolt.Bucket {
	return tx.Bucket(bucketCallLog).Bucket([]byte(parentID))
}

// deleteCallLog deletes a pairing's log and its open calls' index entries.
func deleteCallLog(tx *bolt.Tx, parentID []byte) error {
	logs := tx.Bucket(bucketCallLog)
	b := logs.Bucket(parentID)
	if b == nil {
		return nil
	}
	open := tx.Bucket(bucketOpenCalls)
	c := b.Cursor()
	for k, _ := c.Seek([]byte{callKeyTime}); k != nil && k[0] == callKeyTime; k, _ = c.Next() {
		if err := open.Delete([]byte(callIDOf(k))); err != nil {
			return err
		}
	}
	if err := logs.DeleteBucket(parentID); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return err
	}
	return nil
}

// migrateIfOld runs migrateCallLogs only when calls/ holds a log: every
// other start would otherwise commit (and fsync) an empty transaction.
func migrateIfOld(db *boltfile.DB) error {
	old := false
	if err := db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketCalls); b != nil {
			k, _ := b.Cursor().First()
			old = k != nil
		}
		return nil
	}); err != nil || !old {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error { _, err := migrateCallLogs(tx); return err })
}

// migrateCallLogs moves the logs a registry from before call_log kept under
// calls/ (call ID → record) into call_log, in one transaction: the newest
// MaxStoredCalls of each, as the old layout kept. It reports how many
// records it moved.
func migrateCallLogs(tx *bolt.Tx) (int, error) {
	old := tx.Bucket(bucketCalls)
	if old == nil {
		return 0, nil
	}
	var parents [][]byte // collected first: bbolt forbids writes while iterating
	if err := old.ForEachBucket(func(k []byte) error {
		parents = append(parents, bytes.Clone(k))
		return nil
	}); err != nil {
		return 0, err
	}
	moved := 0
	logs := tx.Bucket(bucketCallLog)
	for _, parentID := range parents {
		recs, err := readCalls(old.Bucket(parentID))
		if err != nil {
			return moved, fmt.Errorf("call log of %s: %w", parentID, err)
		}
		b, err := logs.CreateBucketIfNotExists(parentID)
		if err != nil {
			return moved, err
		}
		for i := len(recs) - 1; i >= 0; i-- { // oldest first: pruning keeps the newest
			if _, err := putCallRecord(tx, b, string(parentID), recs[i]); err != nil {
				return moved, err
			}
			moved++
		}
		if err := old.DeleteBucket(parentID); err != nil {
			return moved, err
		}
	}
	return moved, nil
}
