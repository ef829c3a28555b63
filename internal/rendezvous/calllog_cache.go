package rendezvous

import (
	"bytes"
	"container/list"
	"slices"
	"sync"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// recentLogs keeps in memory the newest MaxCallLog records of the call logs
// read lately, as the bbolt file holds them. Every call's end pushes its
// family's log to the parent's pages (hub.pushCallLog, under the hub's
// lock): read from the file, that was a transaction and 50 JSON decodes per
// call, 15% of the node's CPU at full load (issue 16, BenchmarkCallSetups).
// The store keeps the copy in step with each write it commits, so a read is
// a copy of what the file would give (TestRecentLogsMatchFile).
//
// Only the bbolt Store has one: it is the file's only writer. A node on
// NATS shares its logs with other nodes and reads them from JetStream.
type recentLogs struct {
	mu sync.Mutex
	// gen counts the writes to any log: a read from the file is kept only
	// if no write committed while it ran (fill), or it could hold what the
	// write replaced.
	gen  uint64
	logs map[string]*list.Element // parent ID → its *recentLog in lru
	lru  list.List                // most recently used first
}

// recentLog is one log's newest records, newest first, with their t keys
// (calllog_store.go), which order them as the file does.
type recentLog struct {
	parentID string
	recs     []protocol.CallRecord
	keys     [][]byte
}

// maxRecentLogs bounds the copy: about 10 KB each, 10 MB in all, for the
// families that called lately. Others are read from the file.
const maxRecentLogs = 1024

// get returns a copy of a parent's newest records, if held.
func (c *recentLogs) get(parentID string) ([]protocol.CallRecord, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.logs[parentID]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return slices.Clone(e.Value.(*recentLog).recs), true
}

// generation is the write count to pass to fill after reading the file.
func (c *recentLogs) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// fill keeps what a read of the file returned, unless a write committed
// since gen.
func (c *recentLogs) fill(parentID string, gen uint64, recs []protocol.CallRecord, keys [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.setLocked(parentID, slices.Clone(recs), keys)
}

func (c *recentLogs) setLocked(parentID string, recs []protocol.CallRecord, keys [][]byte) {
	if e, ok := c.logs[parentID]; ok {
		l := e.Value.(*recentLog)
		l.recs, l.keys = recs, keys
		c.lru.MoveToFront(e)
		return
	}
	if c.logs == nil {
		c.logs = make(map[string]*list.Element)
	}
	c.logs[parentID] = c.lru.PushFront(&recentLog{parentID: parentID, recs: recs, keys: keys})
	for c.lru.Len() > maxRecentLogs {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.logs, old.Value.(*recentLog).parentID)
	}
}

// keyedCall is a record as a write committed it, with its t key.
type keyedCall struct {
	parentID string
	rec      protocol.CallRecord
	key      []byte
}

// committed lays records a transaction wrote over the logs held. The
// store calls it after the commit and before its next write to a log
// (Store.logWrites), so the copies change in the file's order.
func (c *recentLogs) committed(writes []keyedCall) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, w := range writes {
		e, ok := c.logs[w.parentID]
		if !ok {
			continue
		}
		l := e.Value.(*recentLog)
		if i := slices.IndexFunc(l.keys, func(k []byte) bool { return bytes.Equal(k, w.key) }); i >= 0 {
			l.recs[i] = w.rec // a call's key never changes
			continue
		}
		// Newest first: the first held key older than the new one.
		i, _ := slices.BinarySearchFunc(l.keys, w.key, func(k, target []byte) int { return bytes.Compare(target, k) })
		if i == len(l.keys) && len(l.keys) >= MaxCallLog {
			continue // older than all the newest held: not among them
		}
		l.recs, l.keys = slices.Insert(l.recs, i, w.rec), slices.Insert(l.keys, i, w.key)
		if len(l.recs) > MaxCallLog {
			l.recs, l.keys = l.recs[:MaxCallLog], l.keys[:MaxCallLog]
		}
	}
}

// seen holds a log as marking it seen left it: recs as they were read
// before, now seen.
func (c *recentLogs) seen(parentID string, recs []protocol.CallRecord, keys [][]byte) {
	recs = slices.Clone(recs)
	for i := range recs {
		recs[i].Seen = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.setLocked(parentID, recs, keys)
}

// dropAll forgets every log.
func (c *recentLogs) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.logs = nil
	c.lru.Init()
}

// drop forgets the logs of parentIDs (deleted, or a write whose outcome is
// unknown).
func (c *recentLogs) drop(parentIDs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, p := range parentIDs {
		if e, ok := c.logs[p]; ok {
			c.lru.Remove(e)
			delete(c.logs, p)
		}
	}
}
