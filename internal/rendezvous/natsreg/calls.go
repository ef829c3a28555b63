package natsreg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// The call log. Each record is one key of tuanju_calls,
//
//	<parent ID>.<start: Unix ns, 16 hex digits>.<call ID> → protocol.CallRecord (JSON)
//
// so a pairing's keys sort by time, a filter (<parent ID>.>) lists one
// pairing's log and nothing else, and a call is found by its ID without
// knowing its start (<parent ID>.*.<call ID>). A call's start never changes,
// so neither does its key. tuanju_open_calls indexes the calls without an
// end (call ID → the node that logged it and the record's key): a node
// that starts again closes what it left open when it stopped, and only
// that (another node's calls are alive).
//
// JetStream has no transaction over keys, so the order of writes is what
// keeps a crash harmless: an open call's index entry is written before its
// record, and deleted after its record says it ended. A node that dies
// between the two leaves an entry whose record is missing or ended; the
// next CloseOpenCallsList drops it.

// openEntry is a tuanju_open_calls value.
type openEntry struct {
	Node string `json:"node"`
	Key  string `json:"key"`
	// Restored: its node started again and ended the record (interrupted),
	// holding the call in its hub to be resumed (CloseOpenCallsList).
	Restored bool `json:"restored,omitempty"`
}

// callKey is a record's key.
func callKey(parentID string, rec protocol.CallRecord) string {
	return fmt.Sprintf("%s.%016x.%s", parentID, uint64(rec.StartedAt.UnixNano()), rec.CallID)
}

// callIDOfKey is the call ID in a record's key.
func callIDOfKey(key string) string { return key[strings.LastIndexByte(key, '.')+1:] }

// checkIDs refuses IDs that are not the protocol's (protocol.ValidID): they
// are tokens of keys and filters, where a dot or a wildcard would reach
// another family's records.
func checkIDs(ids ...string) error {
	for _, id := range ids {
		if !protocol.ValidID(id) {
			return fmt.Errorf("%w: %q is not an ID", jetstream.ErrInvalidKey, id)
		}
	}
	return nil
}

// PutCalls writes records, each to its pairing's log, pruning the oldest
// beyond rendezvous.MaxStoredCalls. A record whose parent no longer exists
// is skipped and its index returned in gone (rendezvous.Store.PutCalls).
// Unlike the bbolt store's one transaction, a failure may leave some of the
// records written: writing them again is harmless, each is put whole under
// its own key.
//
// Each write is several round trips to JetStream, each acknowledged only
// once stored (and, on a cluster, replicated), so the pairings in a batch
// are written side by side, up to putCallsAtOnce at a time; one pairing's
// records go in order (a later record of a call replaces an earlier one).
func (r *Registry) PutCalls(writes []rendezvous.CallWrite) (gone []int, err error) {
	byParent := map[string][]int{}
	var parents []string
	for i, w := range writes {
		if err := checkIDs(w.ParentID, w.Record.CallID); err != nil {
			return nil, fmt.Errorf("natsreg: log call: %w", err)
		}
		if byParent[w.ParentID] == nil {
			parents = append(parents, w.ParentID)
		}
		byParent[w.ParentID] = append(byParent[w.ParentID], i)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, putCallsAtOnce)
	)
	for _, p := range parents {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			skipped, err := r.putParentCalls(p, writes, byParent[p])
			mu.Lock()
			defer mu.Unlock()
			gone = append(gone, skipped...)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	slices.Sort(gone)
	if err := errors.Join(errs...); err != nil {
		return gone, err
	}
	return gone, nil
}

// putCallsAtOnce bounds the pairings PutCalls writes side by side.
const putCallsAtOnce = 16

// putParentCalls writes one pairing's records of a batch, in order, unless
// its parent is gone (then it returns their indexes).
func (r *Registry) putParentCalls(parentID string, writes []rendezvous.CallWrite, idx []int) (gone []int, err error) {
	if _, err := r.Parent(parentID); errors.Is(err, rendezvous.ErrNotFound) {
		return idx, nil
	} else if err != nil {
		return nil, fmt.Errorf("natsreg: log calls for %s: %w", parentID, err)
	}
	for _, i := range idx {
		if err := r.putCall(parentID, writes[i].Record); err != nil {
			return nil, fmt.Errorf("natsreg: log call %s for %s: %w", writes[i].Record.CallID, parentID, err)
		}
	}
	return nil, nil
}

// putCall writes one record and keeps the open calls' index in step.
func (r *Registry) putCall(parentID string, rec protocol.CallRecord) error {
	key := callKey(parentID, rec)
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	open := rec.EndedAt.IsZero()
	if open {
		entry, err := json.Marshal(openEntry{Node: r.node, Key: key})
		if err != nil {
			return err
		}
		if err := r.put(r.open, rec.CallID, entry); err != nil {
			return err
		}
	}
	created := false
	if err := r.update(r.calls, key, func(_ []byte, exists bool) ([]byte, error) {
		created = !exists
		return raw, nil
	}); err != nil {
		return err
	}
	if !open {
		if err := r.remove(r.open, rec.CallID); err != nil {
			return err
		}
	}
	if created {
		return r.prune(parentID, key)
	}
	return nil
}

// prune deletes a pairing's oldest records beyond MaxStoredCalls, and their
// open calls' index entries, after created was written.
//
// It goes by the keys the stream's index of subjects names (callSubjects),
// which also names the keys deleted within markerTTL (their markers), not
// by a listing of the live ones (an ordered consumer, which has the stream's
// leader scan its messages: a cost that grew with the stream, and half of
// a node's CPU once logs were full in BenchmarkCallSetups). prune is all
// that deletes a pairing's records while it lasts (an unpair deletes the
// rest with the parent), oldest first, after each new record: so among the
// names beyond the newest MaxStoredCalls, the live ones are the newest (one,
// as a rule: the record this one pushed out), and the deleted begin at the
// first name that reads as deleted. prune walks them newest first and stops
// there, a read or two, where it used to read every marker (two reads each)
// or list. The exception is a record logged late with an older start than
// the deleted (created among them): it is deleted by name.
// TestPruneByIndexOfSubjects.
func (r *Registry) prune(parentID, created string) error {
	keys, err := r.callSubjects(parentID + ".*.*")
	if err != nil || len(keys) <= rendezvous.MaxStoredCalls {
		return err
	}
	old := keys[:len(keys)-rendezvous.MaxStoredCalls]
	for i := len(old) - 1; i >= 0; i-- {
		deleted, err := r.pruneCall(old[i])
		if err != nil {
			return err
		}
		if !deleted {
			break // the deleted begin here
		}
	}
	if _, found := slices.BinarySearch(old, created); found {
		_, err := r.pruneCall(created)
		return err
	}
	return nil
}

// pruneCall deletes a record and its open call's index entry, and reports
// whether the record was there to delete.
func (r *Registry) pruneCall(key string) (bool, error) {
	deleted, err := r.removeFound(r.calls, key)
	if err != nil || !deleted {
		return false, err
	}
	return true, r.remove(r.open, callIDOfKey(key))
}

// callKeys lists the keys of a pairing's records whose call ID matches
// callID ("*": all), oldest first.
func (r *Registry) callKeys(parentID, callID string) ([]string, error) {
	var keys []string
	err := r.read(func(ctx context.Context) error {
		keys = keys[:0]
		return r.eachOf(ctx, r.calls, parentID+".*."+callID, true, func(e jetstream.KeyValueEntry) error {
			keys = append(keys, e.Key())
			return nil
		})
	})
	slices.Sort(keys)
	return keys, err
}

// HasCall reports whether a call ID is already in a pairing's log.
func (r *Registry) HasCall(parentID, callID string) (bool, error) {
	if err := checkIDs(parentID, callID); err != nil {
		return false, fmt.Errorf("natsreg: look up call: %w", err)
	}
	if keys, err := r.callSubjects(parentID + ".*." + callID); err != nil {
		return false, fmt.Errorf("natsreg: look up call %s: %w", callID, err)
	} else if len(keys) == 0 {
		return false, nil // a new call ID: the usual case
	}
	keys, err := r.callKeys(parentID, callID)
	if err != nil {
		return false, fmt.Errorf("natsreg: look up call %s: %w", callID, err)
	}
	return len(keys) > 0, nil
}

// callSubjects returns the keys of tuanju_calls that match filter, oldest
// first, with those deleted within markerTTL (their markers): all the keys
// there are, and maybe more. It is one request the stream's leader answers
// from its index of subjects, where a listing of the live keys (callKeys, a
// watch) is a consumer that the leader feeds by scanning the stream's
// messages. HasCall lists only when this names a key; prune never does.
// BenchmarkHasCall: 160 µs against 608 µs for the listing.
func (r *Registry) callSubjects(filter string) ([]string, error) {
	prefix := "$KV." + r.calls.Bucket() + "."
	var keys []string
	err := r.read(func(ctx context.Context) error {
		info, err := r.callsStream.Info(ctx, jetstream.WithSubjectFilter(prefix+filter))
		if err != nil {
			return err
		}
		keys = keys[:0]
		for subj := range info.State.Subjects {
			keys = append(keys, strings.TrimPrefix(subj, prefix))
		}
		return nil
	})
	slices.Sort(keys)
	return keys, err
}

// CallLog returns a pairing's newest calls first, at most
// rendezvous.MaxCallLog. With markSeen it marks them seen; the returned
// records still say whether they had been seen before.
func (r *Registry) CallLog(parentID string, markSeen bool) ([]protocol.CallRecord, error) {
	if err := checkIDs(parentID); err != nil {
		return nil, fmt.Errorf("natsreg: call log: %w", err)
	}
	type kept struct {
		key string
		rec protocol.CallRecord
	}
	var all []kept
	err := r.read(func(ctx context.Context) error {
		all = all[:0]
		return r.eachOf(ctx, r.calls, parentID+".>", false, func(e jetstream.KeyValueEntry) error {
			var rec protocol.CallRecord
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return fmt.Errorf("decode call %s: %w", e.Key(), err)
			}
			all = append(all, kept{e.Key(), rec})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("natsreg: call log of %s: %w", parentID, err)
	}
	slices.SortFunc(all, func(a, b kept) int { return strings.Compare(b.key, a.key) })
	all = all[:min(len(all), rendezvous.MaxCallLog)]
	out := make([]protocol.CallRecord, len(all))
	for i, k := range all {
		out[i] = k.rec
		if !markSeen || k.rec.Seen {
			continue
		}
		if err := r.update(r.calls, k.key, func(raw []byte, exists bool) ([]byte, error) {
			var rec protocol.CallRecord
			if !exists {
				return nil, nil // pruned meanwhile
			}
			if err := json.Unmarshal(raw, &rec); err != nil {
				return nil, fmt.Errorf("decode call %s: %w", k.key, err)
			}
			if rec.Seen {
				return nil, nil
			}
			rec.Seen = true
			return json.Marshal(rec)
		}); err != nil {
			return nil, fmt.Errorf("natsreg: mark call %s seen: %w", k.rec.CallID, err)
		}
	}
	return out, nil
}

// CloseOpenCallsList ends the calls this node (Options.Node) logged and
// never ended: it stopped without ending them (rendezvous.CloseInterrupted
// says how). A rendezvous node calls it once at start, before it takes a
// socket. The answered ones stay held by this node (Restored), which
// offers them to be resumed in its hub (rendezvous restore) and gives
// them up to the node their terminal comes back to (HeldCall). Calls
// other nodes hold are theirs; what a node left half closed (held by
// nobody: closeHeld) is closed again.
func (r *Registry) CloseOpenCallsList() ([]rendezvous.OpenCall, error) {
	closed, err := r.closeHeld(true, r.node, "")
	if err != nil {
		return closed, fmt.Errorf("natsreg: close open calls: %w", err)
	}
	return closed, nil
}

// CloseHeldCalls ends the calls a gone node held and nobody took
// (rendezvous.OpenCalls).
func (r *Registry) CloseHeldCalls(node string) ([]rendezvous.OpenCall, error) {
	closed, err := r.closeHeld(false, node)
	if err != nil {
		return closed, fmt.Errorf("natsreg: close %s's open calls: %w", node, err)
	}
	return closed, nil
}

// CallHolders lists the nodes that hold open calls (rendezvous.OpenCalls).
func (r *Registry) CallHolders() ([]string, error) {
	set := map[string]bool{}
	err := r.openEntries(func() { clear(set) }, func(_ string, _ uint64, o openEntry) {
		if o.Node != "" {
			set[o.Node] = true
		}
	})
	if err != nil {
		return nil, fmt.Errorf("natsreg: the nodes holding calls: %w", err)
	}
	return slices.Sorted(maps.Keys(set)), nil
}

// openEntries hands each entry of the open calls' index to fn, with its
// call ID and revision; a retried read calls restart first.
func (r *Registry) openEntries(restart func(), fn func(callID string, rev uint64, o openEntry)) error {
	return r.read(func(ctx context.Context) error {
		restart()
		return r.each(ctx, r.open, false, func(e jetstream.KeyValueEntry) error {
			var o openEntry
			if err := json.Unmarshal(e.Value(), &o); err != nil {
				return fmt.Errorf("decode open call %s: %w", e.Key(), err)
			}
			fn(e.Key(), e.Revision(), o)
			return nil
		})
	})
}

// closeHeld ends the open calls the named nodes hold. Each entry is first
// changed by a compare-and-set, so a call another node takes meanwhile
// (TakeCall) is left alone: made nobody's, or with restart an answered
// call's made Restored by this node. Then its record is ended, then a
// nobody's entry deleted. A crash after the first step leaves an entry
// held by nobody, which the next start of any node closes, or a Restored
// one, which is what the step makes.
func (r *Registry) closeHeld(restart bool, nodes ...string) ([]rendezvous.OpenCall, error) {
	type entry struct {
		callID string
		rev    uint64
		openEntry
	}
	var held []entry
	err := r.openEntries(func() { held = held[:0] }, func(callID string, rev uint64, o openEntry) {
		if slices.Contains(nodes, o.Node) {
			held = append(held, entry{callID, rev, o})
		}
	})
	if err != nil {
		return nil, err
	}
	var closed []rendezvous.OpenCall
	for _, o := range held {
		var rec protocol.CallRecord
		err := r.read(func(ctx context.Context) error {
			raw, err := get(ctx, r.calls, o.Key)
			if err == nil {
				err = json.Unmarshal(raw, &rec)
			}
			return err
		})
		keep := restart && err == nil && rec.EndedAt.IsZero() && !rec.AnsweredAt.IsZero()
		if err != nil && !errors.Is(err, rendezvous.ErrNotFound) {
			return closed, fmt.Errorf("read open call %s: %w", o.callID, err)
		}
		next := openEntry{Key: o.Key}
		if keep {
			next = openEntry{Node: r.node, Key: o.Key, Restored: true}
		}
		if o.Node != "" || keep {
			err := r.setHolder(o.callID, next, o.rev)
			if errors.Is(err, rendezvous.ErrCallTaken) || errors.Is(err, rendezvous.ErrNotFound) {
				continue // taken, or ended, meanwhile
			}
			if err != nil {
				return closed, fmt.Errorf("release open call %s: %w", o.callID, err)
			}
		}
		var wasOpen bool
		if err := r.update(r.calls, o.Key, func(raw []byte, exists bool) ([]byte, error) {
			wasOpen = false
			if !exists {
				return nil, nil // pruned, or its pairing ended
			}
			if err := json.Unmarshal(raw, &rec); err != nil {
				return nil, fmt.Errorf("decode call %s: %w", o.Key, err)
			}
			if !rec.EndedAt.IsZero() {
				return nil, nil // ended, its entry not yet deleted
			}
			wasOpen = true
			rendezvous.CloseInterrupted(&rec)
			return json.Marshal(rec)
		}); err != nil {
			return closed, fmt.Errorf("close open call %s: %w", o.callID, err)
		}
		if !keep {
			if err := r.remove(r.open, o.callID); err != nil {
				return closed, fmt.Errorf("close open call %s: %w", o.callID, err)
			}
		}
		if wasOpen {
			parentID, _, _ := strings.Cut(o.Key, ".")
			closed = append(closed, rendezvous.OpenCall{ParentID: parentID, Record: rec})
		}
	}
	return closed, nil
}

// HeldCall is parentID's open call callID and its holder
// (rendezvous.OpenCalls). The entry's key names the pairing: a call ID of
// another family's reads as not found.
func (r *Registry) HeldCall(parentID, callID string) (rendezvous.HeldCall, error) {
	if err := checkIDs(parentID, callID); err != nil {
		return rendezvous.HeldCall{}, fmt.Errorf("natsreg: held call: %w", err)
	}
	var h rendezvous.HeldCall
	err := r.read(func(ctx context.Context) error {
		e, err := r.open.Get(ctx, callID)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return rendezvous.ErrNotFound
		}
		if err != nil {
			return err
		}
		var o openEntry
		if err := json.Unmarshal(e.Value(), &o); err != nil {
			return fmt.Errorf("decode open call %s: %w", callID, err)
		}
		if !strings.HasPrefix(o.Key, parentID+".") || callIDOfKey(o.Key) != callID {
			return rendezvous.ErrNotFound // another pairing's
		}
		raw, err := get(ctx, r.calls, o.Key)
		if err != nil {
			return err
		}
		var rec protocol.CallRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("decode call %s: %w", o.Key, err)
		}
		restored := o.Restored && rec.Outcome == protocol.OutcomeInterrupted
		if !rec.EndedAt.IsZero() && !restored {
			return rendezvous.ErrNotFound // ended, its entry not yet deleted
		}
		h = rendezvous.HeldCall{OpenCall: rendezvous.OpenCall{ParentID: parentID, Record: rec}, Holder: o.Node, Rev: e.Revision()}
		return nil
	})
	if err != nil {
		return rendezvous.HeldCall{}, fmt.Errorf("natsreg: held call %s: %w", callID, err)
	}
	return h, nil
}

// TakeCall makes this node the holder of h's call if h.Holder still is
// (rendezvous.OpenCalls).
func (r *Registry) TakeCall(h rendezvous.HeldCall) error {
	key := callKey(h.ParentID, h.Record)
	if err := r.setHolder(h.Record.CallID, openEntry{Node: r.node, Key: key}, h.Rev); err != nil {
		return fmt.Errorf("natsreg: take call %s: %w", h.Record.CallID, err)
	}
	return nil
}

// setHolder writes an open call's entry if it is still at rev.
func (r *Registry) setHolder(callID string, o openEntry, rev uint64) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return r.retry(func(ctx context.Context) error {
		_, err := r.open.Update(ctx, callID, b, rev)
		switch {
		case err == nil:
			return permanent{nil}
		case errors.Is(err, jetstream.ErrKeyNotFound):
			return permanent{rendezvous.ErrNotFound}
		case errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			// Did a lost acknowledgement hide our own write?
			e, gerr := r.open.Get(ctx, callID)
			if gerr == nil && string(e.Value()) == string(b) {
				return permanent{nil}
			}
			if errors.Is(gerr, jetstream.ErrKeyNotFound) {
				return permanent{rendezvous.ErrNotFound}
			}
			return permanent{rendezvous.ErrCallTaken}
		}
		return err
	})
}

// deleteCallLog deletes a pairing's log and its open calls' index entries
// (Unpair).
func (r *Registry) deleteCallLog(parentID string) error {
	keys, err := r.callKeys(parentID, "*")
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := r.remove(r.open, callIDOfKey(k)); err != nil {
			return err
		}
		if err := r.remove(r.calls, k); err != nil {
			return err
		}
	}
	return nil
}

// put writes a key whatever it holds, with the registry's retries.
func (r *Registry) put(kv jetstream.KeyValue, key string, value []byte) error {
	return r.retry(func(ctx context.Context) error {
		if _, err := kv.Put(ctx, key, value); err != nil {
			return err
		}
		return permanent{nil}
	})
}

// remove deletes a key of a bucket with markerTTL, with the registry's
// retries. An absent key is no error and writes nothing: a delete writes a
// marker, which is kept for markerTTL.
func (r *Registry) remove(kv jetstream.KeyValue, key string) error {
	_, err := r.removeFound(kv, key)
	return err
}

// removeFound is remove, reporting whether it deleted the key (false: it
// was not there).
func (r *Registry) removeFound(kv jetstream.KeyValue, key string) (deleted bool, err error) {
	err = r.retry(func(ctx context.Context) error {
		deleted = false
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return permanent{nil}
		}
		if err != nil {
			return err
		}
		err = kv.Purge(ctx, key, jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(markerTTL))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return errConflict // written meanwhile: look again
		}
		if err != nil {
			return err
		}
		deleted = true
		return permanent{nil}
	})
	return deleted, err
}
