package rendezvous

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tuanju/tuanju/internal/boltfile"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Bucket layout of the registry:
//
//	devices  : device ID → Device (JSON)
//	parents  : parent ID → Parent (JSON)
//	pairings : device ID → parent ID
//	calls    : parent ID → bucket{ call ID → protocol.CallRecord (JSON) }
//	pending  : device ID → PendingPairing (JSON): a pairing the page has
//	           confirmed and the terminal has not yet said it stored
//	pending_parents : parent ID (= pair ID) → device ID, to find it at login
//
// A call log belongs to a pairing; a parent exists only through its pairing,
// so the parent ID names it.
var (
	bucketDevices  = []byte("devices")
	bucketParents  = []byte("parents")
	bucketPairings = []byte("pairings")
	bucketCalls    = []byte("calls")
	bucketPending  = []byte("pending")
	bucketPendingP = []byte("pending_parents")
)

// MaxCallLog is how many calls a call_log message carries; a registry keeps
// MaxStoredCalls, twice as many, per pairing and prunes the oldest.
const MaxCallLog = 50

const MaxStoredCalls = 2 * MaxCallLog

// Device is a registered terminal.
type Device struct {
	PublicKey    []byte    `json:"public_key"` // SPKI DER, pinned at first login
	RegisteredAt time.Time `json:"registered_at"`
	LastSeen     time.Time `json:"last_seen"`
	// Unpaired: the unit has lost a parent (a factory reset, a pairing
	// dropped). The programme's number for the family a unit was shipped
	// to (fleet phones.json) then no longer stands for whoever pairs it
	// next: the fallback ends (hub.phone).
	Unpaired bool `json:"unpaired,omitempty"`
	// Version is the software the unit said at its last login; Health and
	// Faults what its last status report said of itself (protocol.Health*).
	// Kept so that the fleet page still shows a unit that went away saying
	// its camera is broken as needing repair after the server restarts
	// (TestFleetNeedsRepairOutlivesRestart).
	Version string   `json:"version,omitempty"`
	Health  string   `json:"health,omitempty"`
	Faults  []string `json:"faults,omitempty"`
}

// Parent is a paired parent's credential. Only the token's SHA-256 is kept.
type Parent struct {
	TokenHash []byte    `json:"token_hash"`
	DeviceID  string    `json:"device_id"`
	CreatedAt time.Time `json:"created_at"`
	// PublicKey is the parent's signing key (base64url SPKI), as its
	// pair_confirm carried it to the terminal. The server checks a parent's
	// accept with it, so a stolen token cannot answer the child's ring and
	// end it for the real phone; it decides nothing else (the terminal
	// checks every call message itself). Empty in pairings made before it
	// was kept.
	PublicKey string `json:"public_key,omitempty"`
}

// Store is the registry on a bbolt file. It is safe for concurrent use.
type Store struct {
	db *boltfile.DB
	// callWriteFault, when set, fails every call-log write inside its
	// transaction, as a full disk fails bbolt's commit (tests only:
	// export_test.go). Nothing else in the store is touched by it.
	callWriteFault atomic.Pointer[func() error]
	// recent holds the newest records of the logs read lately
	// (calllog_cache.go). logWrites orders the writes to the logs with
	// their updates to it: held from each such transaction's start until
	// recent knows how it ended.
	recent    recentLogs
	logWrites sync.Mutex
}

// OpenStore opens the registry at path, mode 0600: it holds the parents'
// token hashes and every family's call log. A new one is made only where
// no file exists. A damaged one (empty, header-less, truncated, bad pages:
// boltfile) is refused with an error wrapping ErrDamaged that says what to
// do (store_check.go): a server on an empty registry would refuse every
// parent, and the page would delete its credential.
func OpenStore(path string) (*Store, error) {
	db, err := boltfile.Open(path, bucketDevices, bucketParents, bucketPairings, bucketCalls, bucketCallLog, bucketOpenCalls,
		bucketPending, bucketPendingP, bucketPush, bucketPhones)
	if errors.Is(err, boltfile.ErrDamaged) {
		return nil, fmt.Errorf("rendezvous: the registry is damaged; the server will not start on it: %w; %s", err, recoveryHint)
	}
	if err != nil {
		return nil, fmt.Errorf("rendezvous: store: %w", err)
	}
	if err := migrateIfOld(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("rendezvous: store: move the call logs to the time-ordered layout: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the bbolt file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("rendezvous: close store: %w", err)
	}
	return nil
}

// LastSeenGrain is how old a registered terminal's LastSeen may be before
// its next login writes it again. Logins come in storms — a node that
// died, a server restarted, a village's power back — from terminals seen
// minutes before, and a write each (an fsync here, a replicated update on
// NATS) is most of what a login costs; LastSeen only has to tell a unit
// gone a week (OfflineAfter) from one that is not.
const LastSeenGrain = time.Hour

// LoginWrites reports whether a login of the registered d, saying version
// (or "") at now, has anything to record: a new version, or a LastSeen
// LastSeenGrain old or more, or ahead of now (a clock set back).
func (d Device) LoginWrites(version string, now time.Time) bool {
	age := now.Sub(d.LastSeen)
	return (version != "" && version != d.Version) || age < 0 || age >= LastSeenGrain
}

// RegisterDevice records a terminal's login: the first one pins its public
// key, later ones must present the same key and update LastSeen and, when
// it says one, Version (Device.LoginWrites: nothing is written for a login
// that changes neither). first reports whether this login registered the
// device.
//
// Logins that arrive together share one transaction and one fsync (bbolt's
// Batch): after a power cut a village of terminals reconnects at once, and
// a write each would queue them all behind the disk.
func (s *Store) RegisterDevice(id string, publicKey []byte, version string, now time.Time) (first bool, err error) {
	if d, err := s.Device(id); err == nil && bytes.Equal(d.PublicKey, publicKey) && !d.LoginWrites(version, now) {
		return false, nil
	}
	err = s.db.Batch(func(tx *bolt.Tx) error {
		first = false // Batch may run this again after another login's failure
		b := tx.Bucket(bucketDevices)
		var d Device
		if raw := b.Get([]byte(id)); raw != nil {
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("decode device: %w", err)
			}
			if !bytes.Equal(d.PublicKey, publicKey) {
				return ErrKeyMismatch
			}
		} else {
			first = true
			d = Device{PublicKey: publicKey, RegisteredAt: now}
		}
		d.LastSeen = now
		if version != "" {
			d.Version = version
		}
		return putJSON(b, id, d)
	})
	if err != nil {
		return false, fmt.Errorf("rendezvous: register device %s: %w", id, err)
	}
	return first, nil
}

// NoteDeviceHealth keeps a registered terminal's last report of its own
// health; a report that says what the record holds writes nothing (units
// report every few minutes, and most reports repeat the last).
func (s *Store) NoteDeviceHealth(id, health string, faults []string) error {
	same := func(d Device) bool { return d.Health == health && slices.Equal(d.Faults, faults) }
	if d, err := s.Device(id); err != nil || same(d) {
		if errors.Is(err, ErrNotFound) {
			return nil // unregistered: nothing to keep it on
		}
		return err
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		var d Device
		if err := getJSON(b, id, &d); err != nil {
			return err
		}
		if same(d) {
			return nil
		}
		d.Health, d.Faults = health, slices.Clone(faults)
		return putJSON(b, id, d)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("rendezvous: device %s health: %w", id, err)
	}
	return nil
}

// Device returns a registered terminal, or ErrNotFound.
func (s *Store) Device(id string) (Device, error) {
	var d Device
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketDevices), id, &d)
	})
	if err != nil {
		return Device{}, fmt.Errorf("rendezvous: device %s: %w", id, err)
	}
	return d, nil
}

// ParentOf returns the parent paired with a terminal, or ErrNotFound.
func (s *Store) ParentOf(deviceID string) (string, error) {
	var parentID string
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPairings).Get([]byte(deviceID))
		if v == nil {
			return ErrNotFound
		}
		parentID = string(v)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("rendezvous: pairing of %s: %w", deviceID, err)
	}
	return parentID, nil
}

// Parent returns a parent's record, or ErrNotFound.
func (s *Store) Parent(id string) (Parent, error) {
	var p Parent
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketParents), id, &p)
	})
	if err != nil {
		return Parent{}, fmt.Errorf("rendezvous: parent %s: %w", id, err)
	}
	return p, nil
}

// CreatePairing creates the parent and pairs it with the terminal in one
// transaction. It refuses with ErrAlreadyPaired if the terminal got a parent
// meanwhile, and with ErrNotFound if the terminal is not registered.
func (s *Store) CreatePairing(deviceID, parentID string, tokenHash []byte, parentKey string, now time.Time) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return createPairing(tx, deviceID, parentID, Parent{TokenHash: tokenHash, DeviceID: deviceID, CreatedAt: now, PublicKey: parentKey})
	})
	if err != nil {
		return fmt.Errorf("rendezvous: pair %s with %s: %w", deviceID, parentID, err)
	}
	return nil
}

func createPairing(tx *bolt.Tx, deviceID, parentID string, p Parent) error {
	if tx.Bucket(bucketDevices).Get([]byte(deviceID)) == nil {
		return ErrNotFound
	}
	pairings := tx.Bucket(bucketPairings)
	if pairings.Get([]byte(deviceID)) != nil {
		return ErrAlreadyPaired
	}
	parents := tx.Bucket(bucketParents)
	if parents.Get([]byte(parentID)) != nil {
		return fmt.Errorf("parent %s exists", parentID)
	}
	if err := putJSON(parents, parentID, p); err != nil {
		return err
	}
	return pairings.Put([]byte(deviceID), []byte(parentID))
}

// PendingPairing is a pairing the page has confirmed (it holds its
// credential already) and the terminal has not yet said it stored. It is
// the server's half of the two-phase pairing (docs/protocol.md, "Pairing",
// step 6): only the terminal's word ends it, pair_complete committing it
// (CompletePairing) and pair_reject rolling it back (DropPendingPairing),
// on the socket where it happened or at the terminal's next login. It never
// expires by time: the terminal may have stored the parent and lost power
// before saying so, and a pending pairing that vanished meanwhile would
// split the family.
type PendingPairing struct {
	PairID    string    `json:"pair_id"` // also the parent ID it becomes
	TokenHash []byte    `json:"token_hash"`
	PublicKey string    `json:"public_key"`
	CreatedAt time.Time `json:"created_at"`
}

// PutPendingPairing records a confirmed pairing for a terminal, replacing
// an earlier pending one (a terminal has at most one; the caller refuses a
// new request while one is undecided). It refuses with ErrAlreadyPaired if
// the terminal has a parent.
func (s *Store) PutPendingPairing(deviceID string, p PendingPairing) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketDevices).Get([]byte(deviceID)) == nil {
			return ErrNotFound
		}
		if tx.Bucket(bucketPairings).Get([]byte(deviceID)) != nil {
			return ErrAlreadyPaired
		}
		if tx.Bucket(bucketParents).Get([]byte(p.PairID)) != nil {
			return fmt.Errorf("parent %s exists", p.PairID)
		}
		if _, err := dropPending(tx, deviceID, ""); err != nil {
			return err
		}
		if err := putJSON(tx.Bucket(bucketPending), deviceID, p); err != nil {
			return err
		}
		return tx.Bucket(bucketPendingP).Put([]byte(p.PairID), []byte(deviceID))
	})
	if err != nil {
		return fmt.Errorf("rendezvous: pending pairing %s for %s: %w", p.PairID, deviceID, err)
	}
	return nil
}

// PendingOf returns a terminal's pending pairing, or ErrNotFound.
func (s *Store) PendingOf(deviceID string) (PendingPairing, error) {
	var p PendingPairing
	err := s.db.View(func(tx *bolt.Tx) error { return getJSON(tx.Bucket(bucketPending), deviceID, &p) })
	if err != nil {
		return PendingPairing{}, fmt.Errorf("rendezvous: pending pairing of %s: %w", deviceID, err)
	}
	return p, nil
}

// PendingParent returns the pending pairing that would make parentID, and
// its terminal, or ErrNotFound: a page that logs in with a credential its
// terminal has not yet confirmed is told to wait, not that it is dead.
func (s *Store) PendingParent(parentID string) (deviceID string, p PendingPairing, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPendingP).Get([]byte(parentID))
		if v == nil {
			return ErrNotFound
		}
		deviceID = string(v)
		return getJSON(tx.Bucket(bucketPending), deviceID, &p)
	})
	if err == nil && p.PairID != parentID {
		err = ErrNotFound
	}
	if err != nil {
		return "", PendingPairing{}, fmt.Errorf("rendezvous: pending parent %s: %w", parentID, err)
	}
	return deviceID, p, nil
}

// CompletePairing commits a terminal's pending pairing pairID: the parent
// (ID pairID, with the pending token hash and key) and the pairing are
// created and the pending record deleted, in one transaction. A pairing
// already committed as pairID is no error (the terminal repeats a
// pair_complete whose answer it never saw); committed reports whether this
// call made it. ErrNotFound: no such pending pairing (rolled back, or
// never stored); ErrAlreadyPaired: the terminal has another parent.
func (s *Store) CompletePairing(deviceID, pairID string, now time.Time) (p Parent, committed bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		committed = false
		if cur := tx.Bucket(bucketPairings).Get([]byte(deviceID)); cur != nil {
			if string(cur) != pairID {
				return ErrAlreadyPaired
			}
			return getJSON(tx.Bucket(bucketParents), pairID, &p)
		}
		var pend PendingPairing
		if err := getJSON(tx.Bucket(bucketPending), deviceID, &pend); err != nil {
			return err
		}
		if pend.PairID != pairID {
			return ErrNotFound
		}
		p = Parent{TokenHash: pend.TokenHash, DeviceID: deviceID, CreatedAt: now, PublicKey: pend.PublicKey}
		if err := createPairing(tx, deviceID, pairID, p); err != nil {
			return err
		}
		committed = true
		_, err := dropPending(tx, deviceID, pairID)
		return err
	})
	if err != nil {
		return Parent{}, false, fmt.Errorf("rendezvous: complete pairing %s of %s: %w", pairID, deviceID, err)
	}
	return p, committed, nil
}

// DropPendingPairing rolls back a terminal's pending pairing pairID ("":
// whichever it has). It reports whether there was one to drop.
func (s *Store) DropPendingPairing(deviceID, pairID string) (dropped bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		var err error
		dropped, err = dropPending(tx, deviceID, pairID)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("rendezvous: drop pending pairing %s of %s: %w", pairID, deviceID, err)
	}
	return dropped, nil
}

// dropPending deletes deviceID's pending pairing if it is pairID (any,
// when pairID is "") and reports whether it did.
func dropPending(tx *bolt.Tx, deviceID, pairID string) (bool, error) {
	b := tx.Bucket(bucketPending)
	var p PendingPairing
	if err := getJSON(b, deviceID, &p); err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	if pairID != "" && p.PairID != pairID {
		return false, nil
	}
	if err := tx.Bucket(bucketPendingP).Delete([]byte(p.PairID)); err != nil {
		return false, err
	}
	return true, b.Delete([]byte(deviceID))
}

// Unpair deletes a terminal's pairing, its parent (so the parent's token no
// longer logs in) and that pairing's call log, in one transaction. It returns
// the old parent's ID, or "" when the terminal had none (it is then a no-op).
func (s *Store) Unpair(deviceID string) (parentID string, err error) {
	s.logWrites.Lock()
	defer s.logWrites.Unlock()
	defer func() {
		if parentID != "" {
			s.recent.drop(parentID)
		}
	}()
	err = s.db.Update(func(tx *bolt.Tx) error {
		// A reset terminal has no parent: a pairing it had not confirmed
		// goes too.
		if _, err := dropPending(tx, deviceID, ""); err != nil {
			return err
		}
		pairings := tx.Bucket(bucketPairings)
		v := pairings.Get([]byte(deviceID))
		if v == nil {
			return nil
		}
		parentID = string(v)
		if err := pairings.Delete([]byte(deviceID)); err != nil {
			return err
		}
		var d Device
		if err := getJSON(tx.Bucket(bucketDevices), deviceID, &d); err == nil && !d.Unpaired {
			d.Unpaired = true
			if err := putJSON(tx.Bucket(bucketDevices), deviceID, d); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketParents).Delete(v); err != nil {
			return err
		}
		if err := deleteCallLog(tx, v); err != nil {
			return err
		}
		return dropNotify(tx, []byte(parentID)) // notify_store.go
	})
	if err != nil {
		return "", fmt.Errorf("rendezvous: unpair %s: %w", deviceID, err)
	}
	return parentID, nil
}

// PutCall inserts or replaces a call in a pairing's log, pruning the oldest
// entries beyond what the log keeps. It refuses with ErrNotFound when the
// parent no longer exists: a late write (a retry after a full disk, a call
// ended by a factory reset) must not bring back a deleted family's log.
func (s *Store) PutCall(parentID string, rec protocol.CallRecord) error {
	gone, err := s.PutCalls([]CallWrite{{ParentID: parentID, Record: rec}})
	if err == nil && len(gone) > 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("rendezvous: log call %s for %s: %w", rec.CallID, parentID, err)
	}
	return nil
}

// CallWrite is one record for PutCalls.
type CallWrite struct {
	ParentID string
	Record   protocol.CallRecord
}

// PutCalls writes records in one transaction, one fsync for all of them:
// the call log's writer commits what the hub logged meanwhile together
// (calllog.go). A record whose parent no longer exists is skipped (as
// PutCall's ErrNotFound) and its index returned in gone; any other failure
// writes none of them.
func (s *Store) PutCalls(writes []CallWrite) (gone []int, err error) {
	s.logWrites.Lock()
	defer s.logWrites.Unlock()
	var done []keyedCall
	err = s.db.Update(func(tx *bolt.Tx) error {
		gone, done = gone[:0], done[:0]
		if err := s.callFault(); err != nil {
			return err
		}
		parents, logs := tx.Bucket(bucketParents), tx.Bucket(bucketCallLog)
		for i, w := range writes {
			if parents.Get([]byte(w.ParentID)) == nil {
				gone = append(gone, i)
				continue
			}
			b, err := logs.CreateBucketIfNotExists([]byte(w.ParentID))
			if err != nil {
				return err
			}
			key, err := putCallRecord(tx, b, w.ParentID, w.Record)
			if err != nil {
				return err
			}
			done = append(done, keyedCall{parentID: w.ParentID, rec: w.Record, key: key})
		}
		return nil
	})
	if err != nil {
		// Nothing was written; forgetting the logs costs a read each.
		var ids []string
		for _, w := range writes {
			ids = append(ids, w.ParentID)
		}
		s.recent.drop(ids...)
		return nil, fmt.Errorf("rendezvous: log %d calls: %w", len(writes), err)
	}
	s.recent.committed(done)
	return gone, nil
}

// HasCall reports whether a call ID is already in a pairing's log.
func (s *Store) HasCall(parentID, callID string) (bool, error) {
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := callLogBucket(tx, parentID); b != nil {
			found = b.Get(callIndexKey(callID)) != nil
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("rendezvous: look up call %s: %w", callID, err)
	}
	return found, nil
}

// CallLog returns a pairing's newest calls first, at most MaxCallLog. With
// markSeen it marks the returned entries seen in the same transaction; the
// returned entries still show whether they had been seen before, so the page
// can badge what is new.
func (s *Store) CallLog(parentID string, markSeen bool) ([]protocol.CallRecord, error) {
	if !markSeen {
		if recs, ok := s.recent.get(parentID); ok {
			return recs, nil
		}
	} else {
		s.logWrites.Lock()
		defer s.logWrites.Unlock()
	}
	gen := s.recent.generation()
	var out []protocol.CallRecord
	var outKeys [][]byte
	fn := func(tx *bolt.Tx) error {
		out, outKeys = nil, nil
		b := callLogBucket(tx, parentID)
		if b == nil {
			return nil
		}
		recs, keys, err := newestCalls(b, MaxCallLog)
		if err != nil {
			return err
		}
		out, outKeys = recs, keys
		if !markSeen {
			return nil
		}
		if err := s.callFault(); err != nil {
			return err
		}
		for i, r := range recs {
			if r.Seen {
				continue
			}
			r.Seen = true
			if err := putJSON(b, string(keys[i]), r); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	switch {
	case !markSeen:
		if err = s.db.View(fn); err == nil {
			s.recent.fill(parentID, gen, out, outKeys)
		}
	default:
		if err = s.db.Update(fn); err != nil {
			s.recent.drop(parentID)
		} else {
			s.recent.seen(parentID, out, outKeys)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("rendezvous: call log of %s: %w", parentID, err)
	}
	return out, nil
}

// CloseOpenCalls ends every call in the log that has no end: the calls that
// were in progress when the server stopped without ending them (a crash, a
// power cut, kill -9; a clean shutdown ends them itself). The server calls
// it once at start, before it takes a socket, so no call is in progress.
//
// A child's call nobody answered becomes missed, so the parent still sees
// that the child tried; any other becomes interrupted. ended_at is the last
// moment the call was known to be alive (answered_at, else started_at), not
// the restart: the server cannot know when it stopped, and an answered call
// must not show minutes it may not have lasted. It returns how many calls
// it closed.
func (s *Store) CloseOpenCalls() (int, error) {
	open, err := s.CloseOpenCallsList()
	return len(open), err
}

// OpenCall is a call CloseOpenCallsList closed: its pairing's parent and
// the record as it was closed.
type OpenCall struct {
	ParentID string
	Record   protocol.CallRecord
}

// CloseOpenCallsList is CloseOpenCalls, returning the calls it closed: the
// server offers the answered ones to be resumed (resume.go).
func (s *Store) CloseOpenCallsList() ([]OpenCall, error) {
	s.logWrites.Lock()
	defer s.logWrites.Unlock()
	defer s.recent.dropAll()
	var open []OpenCall
	err := s.db.Update(func(tx *bolt.Tx) error {
		open = nil
		var ids, parents [][]byte // collected first: bbolt forbids writes while iterating
		if err := tx.Bucket(bucketOpenCalls).ForEach(func(k, v []byte) error {
			ids, parents = append(ids, bytes.Clone(k)), append(parents, bytes.Clone(v))
			return nil
		}); err != nil {
			return err
		}
		for i, id := range ids {
			b := callLogBucket(tx, string(parents[i]))
			var tk []byte
			if b != nil {
				tk = b.Get(callIndexKey(string(id)))
			}
			if tk == nil {
				// An index entry without its record: nothing to close.
				if err := tx.Bucket(bucketOpenCalls).Delete(id); err != nil {
					return err
				}
				continue
			}
			var r protocol.CallRecord
			if err := json.Unmarshal(b.Get(tk), &r); err != nil {
				return fmt.Errorf("decode call %s: %w", id, err)
			}
			CloseInterrupted(&r)
			if _, err := putCallRecord(tx, b, string(parents[i]), r); err != nil {
				return err
			}
			open = append(open, OpenCall{ParentID: string(parents[i]), Record: r})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rendezvous: close open calls: %w", err)
	}
	return open, nil
}

// CloseInterrupted ends a call record the server left open (CloseOpenCalls),
// as every Registry does.
func CloseInterrupted(r *protocol.CallRecord) {
	r.EndedAt = r.StartedAt
	if !r.AnsweredAt.IsZero() {
		r.EndedAt = r.AnsweredAt
	}
	r.Outcome = protocol.OutcomeInterrupted
	if r.Direction == protocol.DirFromTerminal && r.AnsweredAt.IsZero() {
		r.Outcome = protocol.OutcomeMissed
	}
}

// callFault is the test hook's error, if one is set.
func (s *Store) callFault() error {
	if f := s.callWriteFault.Load(); f != nil {
		return (*f)()
	}
	return nil
}

// readCalls returns every call in a bucket, newest first.
func readCalls(b *bolt.Bucket) ([]protocol.CallRecord, error) {
	var recs []protocol.CallRecord
	err := b.ForEach(func(k, v []byte) error {
		var r protocol.CallRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode call %s: %w", k, err)
		}
		recs = append(recs, r)
		return nil
	})
	slices.SortStableFunc(recs, func(a, b protocol.CallRecord) int { return b.StartedAt.Compare(a.StartedAt) })
	return recs, err
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return b.Put([]byte(key), raw)
}

func getJSON(b *bolt.Bucket, key string, v any) error {
	raw := b.Get([]byte(key))
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}
