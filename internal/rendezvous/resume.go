package rendezvous

import (
	"context"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// Resuming a call (docs/protocol.md, "Resuming a call"). Media flows
// between the two ends, not through the server's sockets, so a call does not
// end when a signalling socket does: an answered call whose terminal or
// parent socket closes — or both, across a server restart — waits
// ResumeGrace for that side to send resume on a new socket, and ends
// (interrupted) if it does not.
//
// Who may resume is the routing rule of the hub (hub.go): the terminal
// socket logged in as the call's device and paired with its parent, or a
// socket of that parent. Nothing else binds a socket to a call, and the
// ends trust the server no more than before: the terminal applies new media
// parameters only from an ICE restart answer signed by the paired parent
// over its own newest offer (pairing.Binding.Restart).

// reasonNotResumed ends a call whose side did not come back: logged as
// interrupted. Internal; the side that is there is told peer_left.
const reasonNotResumed = "not_resumed"

// waiting reports whether an answered call waits for a side to resume.
func (c *call) waiting() bool { return c.answered && (c.terminal == nil || c.parent == nil) }

// sendTo sends m to s, or drops it when s is nil (a side that is away).
func (h *hub) sendTo(s *session, m protocol.Message) {
	if s != nil {
		s.send(m)
	}
}

// detach unbinds socket s, which is going away, from its answered call c
// and starts the grace (again) for its return.
func (h *hub) detach(c *call, s *session) {
	if c.terminal == s {
		c.terminal = nil
	}
	if c.parent == s {
		c.parent = nil
	}
	delete(c.candidates, s)
	c.alive = h.now()
	if h.closed {
		// Shutting down: the call stays open in the log, and the next
		// start offers it to be resumed (restore).
		c.timer.Stop()
		return
	}
	h.startGrace(c)
	h.log.Info("call waits for a side to resume", "call", c.id, "device", c.deviceID, "parent", c.parentID,
		"terminal_here", c.terminal != nil, "parent_here", c.parent != nil, "grace", h.srv.cfg.ResumeGrace)
}

func (h *hub) startGrace(c *call) {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = time.AfterFunc(h.srv.cfg.ResumeGrace, func() { h.graceOver(c) })
}

// graceOver ends a call whose side did not come back in time.
func (h *hub) graceOver(c *call) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls[c.id] != c || h.closed || !c.waiting() {
		return
	}
	m := hangupMsg(c.id, protocol.ReasonPeerLeft)
	h.sendTo(c.terminal, m)
	h.sendTo(c.parent, m)
	h.finishCall(c, reasonNotResumed, false)
}

// resumeProbeTimeout bounds the wait for the pong of a parent's old socket
// when a new one resumes its call (probeHeld), below PongTimeout: a phone
// that moved from Wi-Fi to 4G waits this long for its call, not the
// ping loop's round.
const resumeProbeTimeout = 5 * time.Second

// resume binds s to its call again, if s is the side that call waits for.
// Anything else is unknown_call, and the call is not touched.
func (h *hub) resume(s *session, m protocol.Message) { h.resumeCall(s, m, true) }

func (h *hub) resumeCall(s *session, m protocol.Message, probe bool) {
	c := h.calls[m.CallID]
	refuse := func() {
		s.sendError(protocol.ErrCodeUnknownCall, "no call of yours waits to be resumed with this call_id", m)
	}
	if c == nil || !c.answered || c.deviceID != s.deviceID {
		refuse()
		return
	}
	switch s.role {
	case protocol.RoleTerminal:
		if c.terminal != nil || s.pairedParent != c.parentID {
			refuse()
			return
		}
		c.terminal = s
	case protocol.RoleParent:
		if s.parentID != c.parentID {
			refuse()
			return
		}
		if c.parent != nil {
			if c.parent == s || !probe || c.probing {
				refuse()
				return
			}
			h.probeHeld(c, c.parent, s, m)
			return
		}
		c.parent = s
	default:
		refuse()
		return
	}
	c.alive = h.now()
	if c.rec.Outcome != protocol.OutcomeAnswered || !c.rec.EndedAt.IsZero() {
		// A call restored after a restart (restore): in progress again.
		c.rec.Outcome, c.rec.EndedAt = protocol.OutcomeAnswered, time.Time{}
		h.srv.callLog.put(c.parentID, c.rec)
	}
	back := !c.waiting()
	if back {
		c.timer.Stop()
	}
	h.log.Info("call resumed", "call", c.id, "device", c.deviceID, "parent", c.parentID, "by", s.role, "both_here", back)
	s.send(h.resumedMessage(c, s, back))
	if back {
		// The side that waited learns it too: the terminal then restarts
		// ICE if its media is down.
		other := c.terminal
		if s == c.terminal {
			other = c.parent
		}
		other.send(h.resumedMessage(c, other, true))
	}
}

// probeHeld answers a parent's resume from a new socket while the call
// still holds an old socket of that parent: a phone that changed networks
// (Wi-Fi to 4G) comes back before the server has seen its old socket die,
// which the ping loop notices only after PingInterval and PongTimeout, by
// when the call is lost. The old socket is pinged: one that does not answer
// within resumeProbeTimeout is dropped and the new socket takes the call;
// one that answers is alive (the parent's other tab, say), and the resume
// is refused as before. A terminal needs none of this: its new login
// replaces its old socket (CloseReplaced). Runs under h.mu; the ping does
// not.
func (h *hub) probeHeld(c *call, old, s *session, m protocol.Message) {
	c.probing = true
	timeout := min(h.srv.cfg.PongTimeout, resumeProbeTimeout)
	go func() {
		ctx, cancel := context.WithTimeout(old.ctx, timeout)
		err := old.conn.Ping(ctx)
		cancel()
		h.mu.Lock()
		defer h.mu.Unlock()
		c.probing = false
		if s.left || h.closed {
			return
		}
		if err != nil && h.calls[c.id] == c && c.parent == old {
			h.log.Info("a resuming parent's old socket did not answer a ping: the new one takes the call",
				"call", c.id, "parent", c.parentID, "err", err)
			old.drop()
			h.detach(c, old)
		}
		h.resumeCall(s, m, false)
	}()
}

// resumedMessage is a resumed for one side, with fresh TURN credentials of
// its own (the relay may have restarted with the server).
func (h *hub) resumedMessage(c *call, s *session, both bool) protocol.Message {
	return protocol.Message{
		Type: protocol.TypeResumed, CallID: c.id, PeerOnline: boolp(both),
		ICEServers: h.srv.iceServers(c.id + "/" + s.role), ICETransportPolicy: h.srv.cfg.ICETransportPolicy,
	}
}

// restore puts the answered calls a stopped server left open (closed in the
// log as interrupted at this start, Store.CloseOpenCalls) back as calls
// waiting for both sides: the ends still hold their media and resume them.
// A call nobody resumes within the grace stays as the log has it.
func (h *hub) restore(open []OpenCall) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range open {
		if o.Record.AnsweredAt.IsZero() {
			continue // rang only: nobody holds media for it
		}
		p, err := h.store.Parent(o.ParentID)
		if err != nil {
			continue // unpaired since
		}
		if h.calls[o.Record.CallID] != nil || h.deviceCall[p.DeviceID] != nil {
			continue
		}
		h.waitingCall(p.DeviceID, o, o.Record.EndedAt)
		h.log.Info("call left open by the last run waits to be resumed", "call", o.Record.CallID, "device", p.DeviceID, "parent", o.ParentID, "grace", h.srv.cfg.ResumeGrace)
	}
}
