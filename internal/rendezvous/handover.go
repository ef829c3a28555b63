package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// A call follows its family to another node (issue 16, "nothing lost when
// a node dies"). An answered call lives in the hub of its terminal's node,
// and its record in the registry's log. A node that dies takes the hub's
// half with it; the terminal logs in on another node and resumes the call
// there (resume.go), and so does the parent. The registry says which node
// holds each open call (OpenCalls), so the terminal's new node can take it:
//
//   - The terminal's resume of a call its new hub does not hold reads the
//     call from the log, scoped to its own pairing (a stranger's call ID
//     finds nothing), and asks the node holding it to give it up
//     (Cluster.HandOver). A gone node does not answer and needs no asking.
//     A live one lets go of the call unless its terminal is still bound
//     there, closes the parent's socket still bound to it (CloseMoved: it
//     reconnects to where the terminal now is), and answers once its own
//     writes of the call are in the log.
//   - The new node then takes the call with a compare-and-set on the
//     holder (OpenCalls.TakeCall), so two nodes never both hold it, and
//     puts it in its hub as a call waiting for both sides; the resume goes
//     on as on one node.
//   - A parent's resume that reaches the terminal's node before the
//     terminal's own waits there, and is bound when the terminal's resume
//     takes the call; the page's own 75 s wait bounds it.
//   - A node that cannot ask or take (the cluster electing a leader) closes
//     the socket with 1013: the client logs in again and resumes again,
//     within its 75 s.
//   - A node that starts again holds the answered calls it left open,
//     ended in the log, to be resumed in its hub (restore) or given up to
//     the node their terminal comes back to.
//   - What nobody takes: once a node has been gone for a third past
//     ResumeGrace (goneCallsAfter), the live nodes end its open calls in the log as
//     interrupted, as a node that starts again ends its own
//     (CloseOpenCalls). A node no node now running has heard (it went
//     while they all restarted) is never seen to go: its calls are ended
//     by sweepUnheard.
//
// Tests: natsreg TestCallFollowsTerminal (a live move, a stranger's
// resume), TestCallFollowsTerminalAfterRestart, TestNodeLoss (calls in progress through SIGKILL of their node),
// TestGoneNodesCallsClosed.

// OpenCalls is a Registry shared by several nodes, which says which node
// holds each open call.
type OpenCalls interface {
	// HeldCall is parentID's call callID while its log has it open, or
	// ended by its node's restart, which holds it to be resumed (restore);
	// ErrNotFound otherwise, and for another pairing's call.
	HeldCall(parentID, callID string) (HeldCall, error)
	// TakeCall makes this node the holder of h's call, if h.Holder still
	// is; ErrCallTaken if another node took it first, ErrNotFound if it
	// ended meanwhile.
	TakeCall(h HeldCall) error
	// CloseHeldCalls ends, as interrupted, the open calls node holds (it
	// is gone) and returns them.
	CloseHeldCalls(node string) ([]OpenCall, error)
	// CallHolders lists the nodes that hold open calls.
	CallHolders() ([]string, error)
}

// HeldCall is an open call and the node holding it ("" none).
type HeldCall struct {
	OpenCall
	Holder string
	Rev    uint64 // the holder's record, for TakeCall's compare-and-set
}

// goneCallsAfter is how long after a node is gone its calls nobody took
// are ended: a third past the resume grace (75 s: 100 s), which is the
// clients' own wait too.
func goneCallsAfter(grace time.Duration) time.Duration { return grace + grace/3 }

// handOverWait bounds a node's answer to HandOver, including its wait for
// its call-log writes.
const handOverWait = 10 * time.Second

// takeover is what a resume read off the hub's lock, for a call this hub
// does not hold.
type takeover struct {
	call  *OpenCall // taken: put it in the hub
	wait  bool      // a parent's resume before its terminal's: held
	retry bool      // the cluster did not answer: the client tries again
}

// readForResume, for a resume of a call this hub does not hold, asks the
// cluster whether the family holds it open elsewhere, and takes it when
// the resume comes from the terminal's side of this hub. nil: the resume
// goes on as on one node.
func (h *hub) readForResume(s *session, m protocol.Message) *takeover {
	oc, ok := h.store.(OpenCalls)
	if h.srv.cluster == nil || !ok || m.CallID == "" {
		return nil
	}
	h.mu.Lock()
	known := h.calls[m.CallID] != nil
	parentID, termHere := s.parentID, false
	switch s.role {
	case protocol.RoleTerminal:
		parentID, termHere = s.pairedParent, true
	case protocol.RoleParent:
		termHere = h.terminalOf(s) != nil
	}
	h.mu.Unlock()
	if known || parentID == "" || (s.role != protocol.RoleTerminal && s.role != protocol.RoleParent) {
		return nil
	}
	held, err := oc.HeldCall(parentID, m.CallID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		s.log.Warn("cluster: could not read the call to resume; the client tries again", "call", m.CallID, "err", err)
		return &takeover{retry: true}
	}
	me := h.srv.cluster.Node()
	if held.Record.AnsweredAt.IsZero() || held.Holder == me {
		// Rang only: nobody holds media for it. Or ours, and no longer
		// in the hub: it ended a moment ago.
		return nil
	}
	if !termHere {
		return &takeover{wait: true}
	}
	if held.Holder != "" {
		ctx, cancel := context.WithTimeout(s.ctx, handOverWait+time.Second)
		err := h.srv.cluster.HandOver(ctx, held.Holder, s.deviceID, m.CallID)
		cancel()
		if err != nil && !errors.Is(err, ErrNodeGone) {
			s.log.Warn("cluster: the call's node did not give it up; the client tries again", "call", m.CallID, "holder", held.Holder, "err", err)
			return &takeover{retry: true}
		}
	}
	if err := oc.TakeCall(held); errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		s.log.Warn("cluster: could not take the call; the client tries again", "call", m.CallID, "holder", held.Holder, "err", err)
		return &takeover{retry: true}
	}
	s.log.Info("cluster: took the call from its node", "call", m.CallID, "from", held.Holder)
	return &takeover{call: &held.OpenCall}
}

// takeOver applies t under the hub's lock; false: the resume goes on as
// on one node.
func (h *hub) takeOver(s *session, m protocol.Message, t *takeover) bool {
	switch {
	case t == nil:
		return false
	case t.retry:
		// No error: a refused resume ends the call at both ends.
		s.closeWith(websocket.StatusTryAgainLater, "try again")
		return true
	case t.wait:
		if h.calls[m.CallID] != nil {
			return false // taken meanwhile
		}
		s.awaiting = m.CallID
		s.log.Info("cluster: the parent's resume waits for its terminal to take the call here", "call", m.CallID)
		return true
	}
	o := *t.call
	if h.calls[o.Record.CallID] == nil {
		if other := h.deviceCall[s.deviceID]; other != nil {
			// A newer call of the family is here: the old one is over.
			rec := o.Record
			CloseInterrupted(&rec)
			h.srv.callLog.put(o.ParentID, rec)
			return false
		}
		h.waitingCall(s.deviceID, o, h.now())
	}
	h.resume(s, m)
	for p := range h.parents[o.ParentID] {
		if p.awaiting == o.Record.CallID {
			p.awaiting = ""
			h.resumeCall(p, protocol.Message{Type: protocol.TypeResume, CallID: o.Record.CallID}, false)
		}
	}
	return true
}

// waitingCall puts an answered call in the hub as one waiting for both
// sides to resume it, alive at alive.
func (h *hub) waitingCall(deviceID string, o OpenCall, alive time.Time) {
	c := &call{id: o.Record.CallID, deviceID: deviceID, parentID: o.ParentID, answered: true,
		fromTerminal: o.Record.Direction == protocol.DirFromTerminal, rec: o.Record,
		alive: alive, candidates: map[*session]int{}}
	h.calls[c.id] = c
	h.deviceCall[c.deviceID] = c
	h.startGrace(c)
}

// giveUpCall lets another node take a call this hub holds: the family's
// terminal is there now. A call whose terminal is still bound here stays.
// The parent's socket bound to it reconnects (CloseMoved) to the new node.
// It returns once this node's writes of the call are in the log, so none
// lands after the new node's.
func (s *Server) giveUpCall(deviceID, callID string) error {
	h := s.hub
	h.mu.Lock()
	c := h.calls[callID]
	switch {
	case c == nil:
		h.mu.Unlock()
		return nil
	case c.deviceID != deviceID:
		h.mu.Unlock()
		return fmt.Errorf("call %s is not %s's", callID, deviceID)
	case c.terminal != nil:
		h.mu.Unlock()
		return fmt.Errorf("call %s: its terminal is on this node", callID)
	}
	delete(h.calls, callID)
	if h.deviceCall[deviceID] == c {
		delete(h.deviceCall, deviceID)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	h.stopEscalation(c)
	parent := c.parent
	h.mu.Unlock()
	h.log.Info("cluster: gave the call up to its terminal's node", "call", callID, "device", deviceID)
	if parent != nil {
		parent.closeWith(CloseMoved, "call on another node")
	}
	return s.callLog.handOff(callID, handOverWait)
}

// closeGoneCalls ends what a gone node held open, once nobody took it
// (goneCallsAfter). Every live node does it: the registry's
// compare-and-set makes it once.
func (s *Server) closeGoneCalls(node string) {
	select {
	case <-s.stop:
		return // closed: its registry with it
	default:
	}
	oc, ok := s.store.(OpenCalls)
	if !ok || s.cluster == nil || !s.cluster.Gone(node) {
		return
	}
	closed, err := oc.CloseHeldCalls(node)
	if err != nil {
		s.log.Error("cluster: could not end the calls of a gone node", "node", node, "err", err)
	}
	if len(closed) > 0 {
		s.log.Warn("cluster: ended the calls a gone node held and nobody resumed", "node", node, "calls", len(closed))
	}
}

// sweepUnheard ends the open calls of a node this one has not heard at two
// looks in a row, goneCallsAfter apart (a node that is up is heard every
// second). closeGoneCalls covers a node seen to go; this covers one that
// went before every node now running started (a node retired while the
// others restarted within the resume grace), never heard, whose calls
// would otherwise stay open for ever.
func (s *Server) sweepUnheard() {
	oc, ok := s.store.(OpenCalls)
	if !ok {
		return
	}
	every := goneCallsAfter(s.cfg.ResumeGrace)
	var unheard map[string]bool // at the last look
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		holders, err := oc.CallHolders()
		if err != nil {
			s.log.Warn("cluster: could not list the nodes holding calls", "err", err)
			continue
		}
		last := unheard
		unheard = map[string]bool{}
		for _, node := range holders {
			if node == s.cluster.Node() || s.cluster.Heard(node) {
				continue
			}
			unheard[node] = true
			if !last[node] {
				continue // not heard at this look only
			}
			closed, err := oc.CloseHeldCalls(node)
			if err != nil {
				s.log.Error("cluster: could not end the calls of a node not heard", "node", node, "err", err)
			}
			if len(closed) > 0 {
				s.log.Warn("cluster: ended the calls of a node not heard since this one started", "node", node, "calls", len(closed))
			}
		}
	}
}

// handOff returns once every record put so far is committed or has
// failed (at most wait), and drops a record of callID still waiting for
// a retry: the call's new node writes it from now on.
func (l *callLog) handOff(callID string, wait time.Duration) error {
	seq := l.mark()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for ch := l.settledAt(seq); ch != nil; ch = l.settledAt(seq) {
		select {
		case <-ch:
		case <-deadline.C:
			return errors.New("the call log's writes did not settle in time")
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pending, callID)
	return nil
}
