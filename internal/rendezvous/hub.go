package rendezvous

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// hub is all routing state, behind one mutex. Every method that takes the
// lock runs to completion without blocking on a client (sends are queued, see
// session.send), so the lock is held only for map work and short bbolt
// transactions.
//
// The rule that keeps a stranger away from a child: a message reaches another
// socket only through
//   - terminalOf(parent socket): the terminal socket whose stored pairing names that parent, or
//   - parentsOf(terminal socket): the sockets of the parent its stored pairing names, or
//   - a call's two bound sockets, which were chosen by those two functions when the call rang, or
//   - a pending pairing request, which carries only proofs and IDs, never a path to a call.
type hub struct {
	srv   *Server
	log   *slog.Logger
	store Registry

	// pairingWrites counts the pairing writes this hub made (pending,
	// complete, drop, unpair), each under mu: join reads the registry
	// before it takes mu, and reads again under it when one came between.
	pairingWrites atomic.Uint64

	mu         sync.Mutex
	closed     bool
	all        map[*session]bool            // every open socket, logged in or not
	terminals  map[string]*session          // device ID → its one socket
	parents    map[string]map[*session]bool // parent ID → its sockets (tabs)
	calls      map[string]*call             // call ID → call in progress
	deviceCall map[string]*call             // device ID → its call in progress (at most one)
	pending    map[string]*pendingPair      // pair ID → request waiting for the terminal
	// reads counts the call-log reads pushCallLog started (added under mu
	// while open): the server waits for them before it closes the store.
	reads sync.WaitGroup

	ipLimit, deviceLimit *limiter
}

// call is one call in progress between a terminal and its parent.
type call struct {
	id           string
	deviceID     string
	parentID     string
	fromTerminal bool
	terminal     *session // the terminal's socket
	// parent is the caller, or the tab that accepted; nil while a parent is
	// being rung. Once the call is answered, a nil terminal or parent is a
	// side whose socket went away: the call waits ResumeGrace for it to
	// come back (resume) before it ends.
	parent *session
	// prepared is the tab that asked for the terminal's offer while the
	// call rings (prepare: for the parent's own call, the tab that rang):
	// offer, answer and candidates go between it and the terminal before
	// anyone accepts. nil: none, or once the call is answered (parent is
	// the bound tab then).
	prepared *session
	answered bool
	// alive is the last time both sides were known to be in the call: the
	// end a call gets when a side never comes back.
	alive      time.Time
	rec        protocol.CallRecord
	candidates map[*session]int
	timer      *time.Timer
	// The caller's signed ring (its nonce, time and signature), forwarded
	// to the callee (and to parent tabs that open while the call rings).
	nonce, signedAt, signature string
	// reachable: a child's ring whose parent can be woken without an open
	// page (a push subscription, a number): it rings on with no parent
	// socket, for the parent to open the page and answer (hub_notify.go).
	reachable bool
	// escalation texts the parent if the ring is still unanswered after
	// notifier.sms_after; nil without a number.
	escalation *time.Timer
	// phone: the parent's number when the child rang ("" none), read
	// before the hub's lock (ringReads).
	phone string
	// probing: a parent's new socket resumes while its old one is still
	// bound, and the old one is being pinged (probeHeld).
	probing bool
}

// pendingPair is a pair_request forwarded to a terminal, awaiting its answer.
type pendingPair struct {
	id       string
	deviceID string
	page     *session // nil once a confirmed request's page has gone
	terminal *session
	timer    *time.Timer
	step     pairStep
}

func newHub(srv *Server) *hub {
	return &hub{
		srv:         srv,
		log:         srv.log,
		store:       srv.store,
		all:         map[*session]bool{},
		terminals:   map[string]*session{},
		parents:     map[string]map[*session]bool{},
		calls:       map[string]*call{},
		deviceCall:  map[string]*call{},
		pending:     map[string]*pendingPair{},
		ipLimit:     newLimiter(srv.cfg.PairRequestsPerMinutePerIP),
		deviceLimit: newLimiter(srv.cfg.PairRequestsPerMinutePerDevice),
	}
}

func (h *hub) now() time.Time { return h.srv.now().UTC() }

// add records a new socket before it logs in, so closeAll reaches it.
func (h *hub) add(s *session) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.all[s] = true
	return true
}

// closeAll closes every socket (server shutdown).
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.all {
		s.closeWith(websocket.StatusGoingAway, "server shutting down")
	}
	for _, c := range h.calls {
		c.timer.Stop()
		h.stopEscalation(c)
	}
	for _, p := range h.pending {
		p.timer.Stop()
	}
}

// terminalOf is the online terminal paired with a parent socket, or nil.
func (h *hub) terminalOf(parent *session) *session {
	t := h.terminals[parent.deviceID]
	if t == nil || t.pairedParent == "" || t.pairedParent != parent.parentID {
		return nil
	}
	return t
}

// parentsOf is the sockets of the parent paired with a terminal socket.
func (h *hub) parentsOf(terminal *session) map[*session]bool {
	if terminal.pairedParent == "" {
		return nil
	}
	return h.parents[terminal.pairedParent]
}

func (h *hub) sendAll(set map[*session]bool, m protocol.Message) {
	for s := range set {
		s.send(m)
	}
}

func boolp(b bool) *bool { return &b }

// join puts a logged-in socket into the routing tables and welcomes it.
func (h *hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

func (h *hub) join(s *session) bool { return h.joinRead(s, h.readForJoin(s)) }

// joinRead is join with the registry read already (readForJoin): the
// reads are made before the lock, since on NATS each is a round trip to
// the cluster, and under the lock it would hold every other socket's
// routing back for it.
func (h *hub) joinRead(s *session, r joinReads) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || !h.all[s] {
		return false
	}
	if h.pairingWrites.Load() != r.writes {
		r = h.readForJoin(s) // a pairing changed meanwhile: read again, under the lock
	}
	switch s.role {
	case protocol.RoleTerminal:
		return h.joinTerminal(s, r)
	case protocol.RoleParent:
		return h.joinParent(s, r)
	default:
		s.send(protocol.Message{Type: protocol.TypeWelcome, Role: protocol.RolePairing, ServerTime: h.now().Truncate(time.Second)})
		return true
	}
}

// dropRevoked disconnects a unit that was just put on the deny list: its
// calls end, its parents see it offline, and the unit is told why.
func (h *hub) dropRevoked(deviceID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.terminals[deviceID]
	if s == nil {
		return
	}
	s.log.Warn("revoked: disconnecting")
	h.leaveTerminal(s, false, false)
	h.sendAll(h.parentsOf(s), protocol.Message{Type: protocol.TypePresence, PeerOnline: boolp(false), Reason: protocol.ReasonRevoked})
	s.sendError(protocol.ErrCodeAuthFailed, revokedText, protocol.Message{})
	s.closeWith(CloseAuthFailed, "revoked")
}

// joinReads is what join reads of the registry for a socket.
type joinReads struct {
	writes    uint64 // hub.pairingWrites before the reads
	parentID  string // terminal: its parent, "" when none
	parentErr error  // terminal: reading its parent failed (not ErrNotFound); parent: its record is gone or unreadable
	pendingID string // terminal: the pairing it has not yet said it stored
}

func (h *hub) readForJoin(s *session) joinReads {
	r := joinReads{writes: h.pairingWrites.Load()}
	switch s.role {
	case protocol.RoleTerminal:
		if pr, ok := h.store.(PairingReader); ok {
			r.parentID, r.pendingID, r.parentErr = pr.PairingState(s.deviceID)
			return r
		}
		var err error
		r.parentID, err = h.store.ParentOf(s.deviceID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			r.parentErr = err
		}
		if pend, err := h.store.PendingOf(s.deviceID); err == nil {
			r.pendingID = pend.PairID
		} else if !errors.Is(err, ErrNotFound) {
			s.log.Error("look up pending pairing", "err", err)
		}
	case protocol.RoleParent:
		_, r.parentErr = h.store.Parent(s.parentID)
	}
	return r
}

func (h *hub) joinTerminal(s *session, r joinReads) bool {
	// Checked again here, under the hub's lock, for a unit revoked between
	// its login and this join: dropRevoked, which takes the same lock, has
	// either seen it joined or it sees the new list now.
	if _, revoked := h.srv.revoked.revoked(s.deviceID); revoked {
		s.sendError(protocol.ErrCodeAuthFailed, revokedText, protocol.Message{Type: protocol.TypeHello})
		return false
	}
	parentID := r.parentID
	if r.parentErr != nil {
		s.log.Error("look up pairing", "err", r.parentErr)
		s.sendError(protocol.ErrCodeInternal, "could not read the pairing", protocol.Message{Type: protocol.TypeHello})
		return false
	}
	replaced := false
	if old := h.terminals[s.deviceID]; old != nil {
		replaced = true
		old.log.Info("replaced by a new login")
		h.leaveTerminal(old, false, true)
		old.closeWith(CloseReplaced, "replaced")
	}
	// A pairing the terminal has not yet said it stored: the welcome
	// names it, and the terminal completes or rejects it (pairing.go).
	pendingID := r.pendingID
	s.pairedParent = parentID
	h.terminals[s.deviceID] = s
	paired := parentID != ""
	peers := h.parentsOf(s)
	s.send(protocol.Message{
		Type: protocol.TypeWelcome, Role: protocol.RoleTerminal, DeviceID: s.deviceID, ParentID: parentID, PairID: pendingID,
		Paired: boolp(paired), PeerOnline: boolp(len(peers) > 0), ServerTime: h.now().Truncate(time.Second),
	})
	if !replaced {
		h.sendAll(peers, protocol.Message{Type: protocol.TypePresence, PeerOnline: boolp(true)})
	}
	return true
}

func (h *hub) joinParent(s *session, r joinReads) bool {
	// The token was checked before; a factory reset since has deleted the
	// parent (an unpair counts as a pairing write: join read again), and
	// its login must not join.
	if r.parentErr != nil {
		s.log.Info("parent gone between login and join (terminal reset)", "err", r.parentErr)
		return false
	}
	set := h.parents[s.parentID]
	if set == nil {
		set = map[*session]bool{}
		h.parents[s.parentID] = set
	}
	set[s] = true
	term := h.terminalOf(s)
	welcome := protocol.Message{
		Type: protocol.TypeWelcome, Role: protocol.RoleParent, ParentID: s.parentID, DeviceID: s.deviceID,
		Paired: boolp(true), PeerOnline: boolp(term != nil), ServerTime: h.now().Truncate(time.Second),
	}
	if term != nil {
		welcome.Health, welcome.Faults, welcome.Budget = term.health, term.faults, term.budget
	}
	if _, revoked := h.srv.revoked.revoked(s.deviceID); revoked && term == nil {
		welcome.Reason = protocol.ReasonRevoked
	}
	s.send(welcome)
	h.sendCallLog(s, false)
	if len(set) == 1 && term != nil {
		term.send(protocol.Message{Type: protocol.TypePresence, PeerOnline: boolp(true)})
	}
	// A tab that opens while the child is calling rings too.
	if c := h.deviceCall[s.deviceID]; c != nil && c.fromTerminal && !c.answered && c.parentID == s.parentID {
		s.send(h.ringMessage(protocol.TypeRing, c))
	}
	return true
}

// leave removes a socket from the hub when it closes.
func (h *hub) leave(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.all, s)
	if s.left {
		return
	}
	s.left = true
	if s.relay != nil && s.role == protocol.RoleParent {
		return // routed by its terminal's node, never joined here (cluster.go)
	}
	switch s.role {
	case protocol.RoleTerminal:
		if h.terminals[s.deviceID] == s {
			h.leaveTerminal(s, true, !s.abused.Load())
		}
	case protocol.RoleParent:
		h.leaveParent(s)
	case protocol.RolePairing:
		for id, p := range h.pending {
			if p.page != s {
				continue
			}
			if p.step == stepConfirmed {
				// The page holds its credential already: the terminal
				// may still complete, and the page learns it at login.
				p.page = nil
				continue
			}
			p.timer.Stop()
			delete(h.pending, id)
		}
	}
	if s.role != "" {
		s.log.Info("disconnected")
	}
}

// leaveTerminal ends what the terminal's socket was part of. presence is
// false when a new login replaces the socket: the terminal never went away.
// keep: an answered call waits for the terminal to resume it (not for a
// unit that was revoked).
func (h *hub) leaveTerminal(s *session, presence, keep bool) {
	s.left = true
	delete(h.terminals, s.deviceID)
	if c := h.deviceCall[s.deviceID]; c != nil && c.terminal == s {
		if keep && c.answered {
			h.detach(c, s)
		} else {
			h.toParentSide(c, hangupMsg(c.id, protocol.ReasonPeerLeft))
			h.finishCall(c, protocol.ReasonPeerLeft, c.fromTerminal)
		}
	}
	for id, p := range h.pending {
		if p.terminal == s {
			// A confirmed pairing stays pending in the store until the
			// terminal's next login decides it.
			p.timer.Stop()
			delete(h.pending, id)
			if p.page != nil {
				p.page.sendError(protocol.ErrCodeDeviceOffline, "the terminal disconnected", protocol.Message{Type: protocol.TypePairRequest, PairID: p.id})
			}
		}
	}
	if presence {
		h.sendAll(h.parentsOf(s), protocol.Message{Type: protocol.TypePresence, PeerOnline: boolp(false)})
	}
}

func (h *hub) leaveParent(s *session) {
	set := h.parents[s.parentID]
	delete(set, s)
	if c := h.deviceCall[s.deviceID]; c != nil && c.parentID == s.parentID {
		if c.prepared == s {
			// Another tab may prepare the ringing call now; the terminal
			// drops the old offer's connection when it does, or when the
			// call is accepted with another nonce.
			c.prepared = nil
		}
		switch {
		case c.parent == s && c.answered && !s.abused.Load():
			h.detach(c, s)
		case c.parent == s || (c.parent == nil && !c.answered && len(set) == 0 && !c.reachable):
			if c.terminal != nil {
				c.terminal.send(hangupMsg(c.id, protocol.ReasonPeerLeft))
			}
			h.finishCall(c, protocol.ReasonPeerLeft, !c.fromTerminal)
		}
	}
	if len(set) == 0 {
		delete(h.parents, s.parentID)
		if t := h.terminalOf(s); t != nil {
			t.send(protocol.Message{Type: protocol.TypePresence, PeerOnline: boolp(false)})
		}
	}
}

// allowed says which messages each role may send after login.
var allowed = map[string]map[string]bool{
	protocol.RoleTerminal: {
		protocol.TypeRing: true, protocol.TypeAccept: true, protocol.TypeHangup: true, protocol.TypeOffer: true,
		protocol.TypeCandidate: true, protocol.TypePairAccept: true, protocol.TypePairReject: true,
		protocol.TypePairComplete: true,
		protocol.TypeUnpair:       true, protocol.TypeResume: true, protocol.TypeStatus: true,
	},
	protocol.RoleParent: {
		protocol.TypeRing: true, protocol.TypeAccept: true, protocol.TypeHangup: true, protocol.TypeAnswer: true,
		protocol.TypeCandidate: true, protocol.TypeCallLog: true, protocol.TypeResume: true, protocol.TypePrepare: true,
		protocol.TypePushSubscribe: true, protocol.TypePushUnsubscribe: true, protocol.TypePhoneSet: true,
		protocol.TypePhoneClear: true, protocol.TypeNotifyStatus: true, protocol.TypePing: true,
	},
	protocol.RolePairing: {protocol.TypePairRequest: true, protocol.TypePairConfirm: true, protocol.TypePing: true},
}

// handle applies one valid message from a logged-in socket.
//
// The hub's lock is for map work: what reads the disk or checks a signature
// is done outside it where the message allows (a call_log request; an
// accept's signature, checked before and confirmed for the same call
// under the lock), so one family's disk read never holds up another's ring
// (BenchmarkCallSetups). The call log pushed when a call ends is read
// under it, to keep its place in the order of messages.
func (h *hub) handle(s *session, m protocol.Message) {
	var signed *signedAccept
	var pre *ringReads
	var took *takeover
	switch {
	case m.Type == protocol.TypeRing:
		if pre = h.readForRing(s, m); pre != nil {
			defer h.srv.callLog.doneChecking(pre.began)
		}
	case m.Type == protocol.TypeResume:
		took = h.readForResume(s, m)
	case m.Type == protocol.TypeCallLog:
		if h.admit(s, m) {
			h.sendCallLog(s, true)
		}
		return
	case (m.Type == protocol.TypeAccept || m.Type == protocol.TypePrepare) && s.role == protocol.RoleParent:
		signed = h.checkAccept(s, m)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.left || h.closed {
		return
	}
	if !allowed[s.role][m.Type] {
		s.sendError(protocol.ErrCodeNotAllowed, fmt.Sprintf("%s is not allowed for a %s", m.Type, s.role), m)
		return
	}
	switch m.Type {
	case protocol.TypeRing:
		h.ring(s, m, pre)
	case protocol.TypeAccept:
		h.accept(s, m, signed)
	case protocol.TypePrepare:
		h.prepare(s, m, signed)
	case protocol.TypeOffer, protocol.TypeAnswer, protocol.TypeCandidate:
		h.relay(s, m)
	case protocol.TypeHangup:
		h.hangup(s, m)
	case protocol.TypeResume:
		if !h.takeOver(s, m, took) {
			h.resume(s, m)
		}
	case protocol.TypePairRequest:
		h.pairRequest(s, m)
	case protocol.TypePairAccept:
		h.pairAccept(s, m)
	case protocol.TypePairConfirm:
		h.pairConfirm(s, m)
	case protocol.TypePairComplete:
		h.pairComplete(s, m)
	case protocol.TypePairReject:
		h.pairReject(s, m)
	case protocol.TypeUnpair:
		h.unpair(s, m)
	case protocol.TypeStatus:
		h.status(s, m)
	case protocol.TypePing:
		s.send(protocol.Message{Type: protocol.TypePong})
	default:
		if notifyTypes[m.Type] {
			h.handleNotify(s, m)
		}
	}
}

func hangupMsg(callID, reason string) protocol.Message {
	return protocol.Message{Type: protocol.TypeHangup, CallID: callID, Reason: reason}
}

// ringMessage is a ring or ringing with fresh TURN credentials. Each side
// of a call gets its own (ring: the callee, ringing: the caller), so the
// per-credential allocation quota is per party. A ring carries the caller's
// signature.
func (h *hub) ringMessage(typ string, c *call) protocol.Message {
	m := protocol.Message{
		Type: typ, CallID: c.id,
		ICEServers: h.srv.iceServers(c.id + "/" + typ), ICETransportPolicy: h.srv.cfg.ICETransportPolicy,
	}
	if typ == protocol.TypeRing {
		m.Nonce, m.SignedAt, m.Signature = c.nonce, c.signedAt, c.signature
	}
	return m
}

// ringReads is what a ring reads of the registry, read before the hub's
// lock (readForRing): on NATS each read is a round trip, and under the lock
// one family's ring would wait for every other's.
type ringReads struct {
	parentID string // the pairing the reads are for
	used     bool   // the call ID is in its log
	err      error
	// began is the epoch of the callLog.hasFrom that read used; ring
	// finishes the check under the lock (usedSince).
	began     uint64
	reachable bool   // a child's ring: the parent can be woken with no page open
	phone     string // a child's ring: the number the notifier would text
}

// readForRing reads what s's ring needs; nil for a socket with no pairing
// (ring refuses it).
func (h *hub) readForRing(s *session, m protocol.Message) *ringReads {
	h.mu.Lock()
	parentID := s.parentID
	if s.role == protocol.RoleTerminal {
		parentID = s.pairedParent
	}
	h.mu.Unlock()
	if parentID == "" || m.CallID == "" {
		return nil
	}
	r := &ringReads{parentID: parentID}
	r.used, r.began, r.err = h.srv.callLog.hasFrom(parentID, m.CallID)
	if s.role == protocol.RoleTerminal {
		r.reachable, r.phone = h.reachable(parentID)
	}
	return r
}

func (h *hub) ring(s *session, m protocol.Message, pre *ringReads) {
	c := &call{id: m.CallID, candidates: map[*session]int{}, nonce: m.Nonce, signedAt: m.SignedAt, signature: m.Signature}
	var callee map[*session]bool
	if s.role == protocol.RoleTerminal {
		if s.pairedParent == "" {
			h.setupRefused(s, protocol.ReasonNotPaired)
			s.sendError(protocol.ErrCodeNotPaired, "this terminal has no parent yet", m)
			return
		}
		c.deviceID, c.parentID, c.fromTerminal, c.terminal = s.deviceID, s.pairedParent, true, s
		callee = h.parentsOf(s)
	} else {
		c.deviceID, c.parentID, c.parent = s.deviceID, s.parentID, s
		if c.terminal = h.terminalOf(s); c.terminal != nil {
			callee = map[*session]bool{c.terminal: true}
		}
	}
	if old := h.deviceCall[c.deviceID]; old != nil && old.waiting() && old.parentID == c.parentID {
		// A side of this pairing rings, so it is not in the call that waits
		// for it (it restarted, or lost the call while away): that call is
		// over, and must not make the new one busy.
		h.sendTo(old.terminal, hangupMsg(old.id, protocol.ReasonPeerLeft))
		h.sendTo(old.parent, hangupMsg(old.id, protocol.ReasonPeerLeft))
		h.finishCall(old, reasonNotResumed, false)
	}
	if h.deviceCall[c.deviceID] != nil {
		h.setupRefused(s, protocol.ReasonBusy)
		s.sendError(protocol.ErrCodeBusy, "a call is already in progress", m)
		return
	}
	if h.calls[c.id] != nil {
		s.sendError(protocol.ErrCodeNotAllowed, "call_id is in use", m)
		return
	}
	if pre == nil || pre.parentID != c.parentID {
		// Paired again since the reads: read now, under the lock.
		pre = &ringReads{parentID: c.parentID}
		pre.used, pre.began, pre.err = h.srv.callLog.hasFrom(c.parentID, c.id)
		defer h.srv.callLog.doneChecking(pre.began)
		if c.fromTerminal {
			pre.reachable, pre.phone = h.reachable(c.parentID)
		}
	}
	// A call of this ID logged since the read is waiting to be written
	// (calls are logged under this lock), or was written since.
	used, err := pre.used || h.srv.callLog.usedSince(c.parentID, c.id, pre.began), pre.err
	if err != nil {
		s.log.Error("ring", "err", err)
		s.sendError(protocol.ErrCodeInternal, "could not start the call", m)
		return
	}
	if used {
		s.sendError(protocol.ErrCodeNotAllowed, "call_id was used before; pick a fresh random one", m)
		return
	}
	c.rec = protocol.CallRecord{CallID: c.id, Direction: protocol.DirFromParent, StartedAt: h.now(), Outcome: protocol.OutcomeRinging}
	if c.fromTerminal {
		c.rec.Direction = protocol.DirFromTerminal
	}
	h.srv.health.callsStarted.WithLabelValues(c.rec.Direction).Inc()
	log := h.log.With("call", c.id, "device", c.deviceID, "parent", c.parentID, "direction", c.rec.Direction)

	// A parent with no page open who can be woken (Web Push, a number)
	// is rung all the same: the notification brings the page, which logs
	// in and gets the ring (joinParent).
	c.reachable, c.phone = c.fromTerminal && pre.reachable, pre.phone
	if len(callee) == 0 && !c.reachable {
		// Nobody to ring: the call is over before it started, and the
		// parent must still see that the child tried.
		c.rec.EndedAt, c.rec.Outcome = c.rec.StartedAt, protocol.OutcomeMissed
		h.srv.callLog.put(c.parentID, c.rec)
		h.srv.health.setupFailed(protocol.ReasonUnavailable)
		h.srv.health.callsEnded.WithLabelValues(c.rec.Outcome).Inc()
		s.send(hangupMsg(c.id, protocol.ReasonUnavailable))
		h.pushCallLog(c.parentID)
		log.Info("call ended", "outcome", protocol.OutcomeMissed, "reason", protocol.ReasonUnavailable)
		return
	}
	// The ring never waits on this write: a full disk costs the log an
	// entry (retried, counted, logged by callLog), never the call.
	h.srv.callLog.put(c.parentID, c.rec)
	h.calls[c.id] = c
	h.deviceCall[c.deviceID] = c
	s.send(h.ringMessage(protocol.TypeRinging, c))
	ring := h.ringMessage(protocol.TypeRing, c)
	h.sendAll(callee, ring)
	c.timer = time.AfterFunc(h.srv.cfg.RingTimeout, func() { h.ringTimeout(c) })
	h.notifyRing(c) // never waits (hub_notify.go)
	log.Info("ringing", "callee_sockets", len(callee), "reachable", c.reachable)
}

// admit reports whether s, still in the hub, may send m; not_allowed
// answers a role that may not.
func (h *hub) admit(s *session, m protocol.Message) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.left || h.closed {
		return false
	}
	if !allowed[s.role][m.Type] {
		s.sendError(protocol.ErrCodeNotAllowed, fmt.Sprintf("%s is not allowed for a %s", m.Type, s.role), m)
		return false
	}
	return true
}

// signedAccept is a parent's accept or prepare whose signature was checked
// outside the hub's lock, for the call that was ringing then.
type signedAccept struct {
	call *call
	ok   bool
}

// checkAccept checks a parent's accept or prepare of the child's ring
// against the call ringing now, outside the hub's lock; nil when there is
// nothing to check (no such call, not the child's ring: accept and prepare
// refuse it or need no check).
func (h *hub) checkAccept(s *session, m protocol.Message) *signedAccept {
	h.mu.Lock()
	c := h.calls[m.CallID]
	if c == nil || c.answered || !c.fromTerminal || !isCallee(s, c) {
		h.mu.Unlock()
		return nil
	}
	parentID, nonce := c.parentID, c.nonce // set when the call rang; never change
	h.mu.Unlock()
	return &signedAccept{call: c, ok: h.parentSigned(s, parentID, c.id, nonce, m)}
}

// setupRefused counts a ring the hub refused before it rang (the
// terminal has no parent, a call is in progress): a setup started and
// failed at once. h.mu is held.
func (h *hub) setupRefused(s *session, reason string) {
	dir := protocol.DirFromParent
	if s.role == protocol.RoleTerminal {
		dir = protocol.DirFromTerminal
	}
	h.srv.health.callsStarted.WithLabelValues(dir).Inc()
	h.srv.health.setupFailed(reason)
}

// isCallee reports whether s may answer c.
func isCallee(s *session, c *call) bool {
	if c.fromTerminal {
		return s.role == protocol.RoleParent && s.parentID == c.parentID
	}
	return s == c.terminal
}

func (h *hub) accept(s *session, m protocol.Message, signed *signedAccept) {
	c := h.calls[m.CallID]
	if c == nil || c.answered || !isCallee(s, c) {
		s.sendError(protocol.ErrCodeUnknownCall, "no call of yours is ringing with this call_id", m)
		return
	}
	if c.fromTerminal && !h.signedFor(s, c, m, signed) {
		// Changes nothing: the child's ring goes on for the real phone.
		s.sendError(protocol.ErrCodeNotAllowed, "accept not signed by the paired parent", m)
		return
	}
	c.rec.AnsweredAt, c.rec.Outcome = h.now(), protocol.OutcomeAnswered
	h.srv.callLog.put(c.parentID, c.rec) // never refuses the accept (see ring)
	c.answered = true
	h.srv.health.callsAnswered.Inc()
	c.alive = c.rec.AnsweredAt
	c.timer.Stop()
	h.notifyAnswered(c)
	if c.fromTerminal {
		c.parent, c.prepared = s, nil
		for o := range h.parents[c.parentID] {
			if o != s {
				o.send(hangupMsg(c.id, protocol.ReasonAnsweredElsewhere))
			}
		}
		c.terminal.send(m)
	} else {
		c.prepared = nil
		c.parent.send(m)
	}
	h.log.Info("call answered", "call", c.id, "device", c.deviceID, "parent", c.parentID)
}

// signedFor reports whether m, a parent's accept or prepare of the child's
// ringing call c, is signed with the parent's paired key over c's ring:
// pre's answer when it was checked for c, else checked now (the call
// changed between the check outside the lock and now: rare).
func (h *hub) signedFor(s *session, c *call, m protocol.Message, pre *signedAccept) bool {
	if pre != nil && pre.call == c {
		return pre.ok
	}
	return h.parentSigned(s, c.parentID, c.id, c.nonce, m)
}

// parentSigned checks a parent's accept of the child's ring with the key
// the parent paired with, over the ring's nonce, as the terminal will: an
// accept the terminal would refuse must not take the call from the real
// phone (the other tabs would be told "answered elsewhere" and the child
// would hear nothing). This guards against a stolen server login; against
// a compromised server, the terminal's own check is what holds.
func (h *hub) parentSigned(s *session, parentID, callID, ringNonce string, m protocol.Message) bool {
	p, err := h.store.Parent(parentID)
	if err != nil {
		s.log.Error("accept: parent record", "err", err)
		return false
	}
	if p.PublicKey == "" {
		// Paired before the server kept keys: the terminal still checks.
		s.log.Warn("accept from a pairing without a stored parent key; the terminal alone checks it", "call", callID)
		return true
	}
	pub, err := pairing.ParsePublicKey(p.PublicKey)
	if err != nil {
		s.log.Error("accept: stored parent key", "err", err)
		return false
	}
	b := pairing.Binding{CallID: callID, RingNonce: ringNonce, AcceptNonce: m.Nonce}
	err = pairing.VerifyCall(pub, m.Type, b, "", pairing.CallSig{SignedAt: m.SignedAt, Signature: m.Signature}, h.now())
	if err != nil {
		s.log.Warn("refusing an accept not signed by the paired parent", "call", callID, "err", err)
		return false
	}
	return true
}

// prepare forwards a parent tab's prepare of the child's ringing call to
// the terminal, which answers it with its offer (docs/protocol.md,
// "Preparing a call"). One tab per call prepares: the first. Its signature
// is checked as an accept's is, so a stolen server login cannot take the
// call's one prepared tab from the real phone.
func (h *hub) prepare(s *session, m protocol.Message, signed *signedAccept) {
	c := h.calls[m.CallID]
	if m.Nonce == "" {
		h.prepareOwn(s, m, c)
		return
	}
	if c == nil || c.answered || !c.fromTerminal || !isCallee(s, c) || c.terminal == nil {
		s.sendError(protocol.ErrCodeUnknownCall, "no call of yours is ringing with this call_id", m)
		return
	}
	switch {
	case !h.signedFor(s, c, m, signed):
		s.sendError(protocol.ErrCodeNotAllowed, "prepare not signed by the paired parent", m)
		return
	case c.prepared != nil:
		s.sendError(protocol.ErrCodeNotAllowed, "this call is prepared already", m)
		return
	}
	c.prepared = s
	c.terminal.send(m)
}

// prepareOwn takes the parent's prepare of its own ringing call (no
// nonce: the terminal's offer brings the one its accept will): only from
// the socket that rang, which the call is bound to already, so there is no
// slot for another tab to take, and no signature the server need check
// (the terminal checks it). Again after a prepared connection that failed:
// the terminal makes at most 3 a call.
func (h *hub) prepareOwn(s *session, m protocol.Message, c *call) {
	if c == nil || c.answered || c.fromTerminal || c.parent != s || c.terminal == nil {
		s.sendError(protocol.ErrCodeUnknownCall, "no call you rang is ringing with this call_id", m)
		return
	}
	c.prepared = s
	c.terminal.send(m)
}

// relay forwards offer, answer and candidate between the two sockets bound
// to an answered call, or while a call rings between the terminal and the
// tab that prepared it (the child's call), or that rang (the parent's own,
// prepared), and nowhere else.
func (h *hub) relay(s *session, m protocol.Message) {
	c := h.calls[m.CallID]
	if c == nil {
		s.sendError(protocol.ErrCodeUnknownCall, "no call of yours is active with this call_id", m)
		return
	}
	parent := c.parent
	if !c.answered {
		parent = c.prepared
	}
	if parent == nil || (s != c.terminal && s != parent) || (!c.answered && m.Restart > 0) {
		s.sendError(protocol.ErrCodeUnknownCall, "no call of yours is active with this call_id", m)
		return
	}
	switch {
	case m.Type == protocol.TypeOffer && s != c.terminal:
		s.sendError(protocol.ErrCodeNotAllowed, "the terminal makes the offer", m)
		return
	case m.Type == protocol.TypeAnswer && s != parent:
		s.sendError(protocol.ErrCodeNotAllowed, "the parent makes the answer", m)
		return
	case m.Type == protocol.TypeOffer && m.Restart > 0:
		// An ICE restart: both ends gather their candidates afresh.
		clear(c.candidates)
	case m.Type == protocol.TypeCandidate:
		if c.candidates[s] >= protocol.MaxCandidates {
			s.sendError(protocol.ErrCodeNotAllowed, fmt.Sprintf("more than %d candidates", protocol.MaxCandidates), m)
			return
		}
		c.candidates[s]++
	}
	other := c.terminal
	if s == c.terminal {
		other = parent
	}
	// nil: the other side is away; what it missed, an ICE restart after
	// it resumes replaces.
	h.sendTo(other, m)
}

func (h *hub) hangup(s *session, m protocol.Message) {
	c := h.calls[m.CallID]
	if c == nil {
		s.sendError(protocol.ErrCodeUnknownCall, "no call of yours with this call_id", m)
		return
	}
	member := s == c.terminal || s == c.parent
	ringingTab := c.fromTerminal && !c.answered && s.role == protocol.RoleParent && s.parentID == c.parentID
	if !member && !ringingTab {
		s.sendError(protocol.ErrCodeUnknownCall, "no call of yours with this call_id", m)
		return
	}
	fwd := hangupMsg(c.id, m.Reason)
	if s.role == protocol.RoleTerminal {
		h.toParentSide(c, fwd)
	} else {
		h.sendTo(c.terminal, fwd)
		if c.parent == nil { // other tabs still ringing
			for o := range h.parents[c.parentID] {
				if o != s {
					o.send(fwd)
				}
			}
		}
	}
	byCaller := (s.role == protocol.RoleTerminal) == c.fromTerminal
	h.finishCall(c, m.Reason, byCaller)
}

// toParentSide sends to the parent socket bound to the call, or to every tab
// while a parent is being rung.
func (h *hub) toParentSide(c *call, m protocol.Message) {
	if c.parent != nil {
		c.parent.send(m)
		return
	}
	h.sendAll(h.parents[c.parentID], m)
}

func (h *hub) ringTimeout(c *call) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls[c.id] != c || c.answered || h.closed {
		return
	}
	m := hangupMsg(c.id, protocol.ReasonNoAnswer)
	if c.terminal != nil {
		c.terminal.send(m)
	}
	h.toParentSide(c, m)
	h.finishCall(c, protocol.ReasonNoAnswer, false)
}

// outcome is what the call log says about a call that ended for reason.
// A call from the child that nobody answered is "missed" however it ended,
// so the parent sees that the child tried. A parent's call that rang out
// (no_answer, from the page's 45 s timer or the server's) is "missed" too:
// the child was not there; only a parent's own cancel is "cancelled".
func outcome(c *call, reason string, byCaller bool) string {
	switch {
	case reason == reasonNotResumed:
		return protocol.OutcomeInterrupted
	case c.answered && reason == protocol.ReasonFailed:
		return protocol.OutcomeFailed
	case c.answered:
		return protocol.OutcomeAnswered
	case reason == protocol.ReasonFailed:
		return protocol.OutcomeFailed
	case !byCaller && (reason == protocol.ReasonDecline || reason == protocol.ReasonBusy):
		return protocol.OutcomeDeclined
	case byCaller && !c.fromTerminal && reason != protocol.ReasonNoAnswer:
		return protocol.OutcomeCancelled
	default:
		return protocol.OutcomeMissed
	}
}

// finishCall ends a call: forgets it, logs it and pushes the log to the
// parent's sockets. The callers have already told both sides.
func (h *hub) finishCall(c *call, reason string, byCaller bool) {
	c.timer.Stop()
	delete(h.calls, c.id)
	delete(h.deviceCall, c.deviceID)
	c.rec.EndedAt = h.now()
	c.rec.Outcome = outcome(c, reason, byCaller)
	if c.rec.Outcome == protocol.OutcomeInterrupted {
		// The last moment both sides were known to be in it, as for the
		// calls a crash left open (Store.CloseOpenCalls).
		c.rec.EndedAt = c.alive
	}
	attrs := []any{"call", c.id, "device", c.deviceID, "parent", c.parentID, "direction", c.rec.Direction,
		"outcome", c.rec.Outcome, "reason", reason, "duration", c.rec.EndedAt.Sub(c.rec.StartedAt).Round(time.Millisecond)}
	h.srv.callLog.put(c.parentID, c.rec)
	if !c.answered {
		h.srv.health.setupFailed(reason)
	}
	h.srv.health.callsEnded.WithLabelValues(c.rec.Outcome).Inc()
	h.log.Info("call ended", attrs...)
	h.pushCallLog(c.parentID)
	h.notifyEnd(c)
}

// pushCallLog sends the parent's open pages their log. Its place in each
// page's queue is taken here, under the hub's lock, so that it reaches the
// page right behind the hangup it follows and before anything the hub
// sends later (the next ring); the log is read after, outside the lock: on
// NATS a read is a round trip to JetStream (on bbolt a copy,
// calllog_cache.go). A read made later holds every record put before it.
func (h *hub) pushCallLog(parentID string) {
	set := h.parents[parentID]
	if len(set) == 0 || h.closed {
		return
	}
	l := newLaterMsg()
	for s := range set {
		s.sendLater(l)
	}
	h.reads.Go(func() {
		calls, err := h.srv.callLog.read(parentID, false)
		if err != nil {
			h.log.Error("read call log", "parent", parentID, "err", err)
			l.set(nil)
			return
		}
		m := callLogMsg(calls)
		l.set(&m)
	})
}

// sendCallLog answers a parent's call_log request; asking marks them seen.
func (h *hub) sendCallLog(s *session, markSeen bool) {
	calls, err := h.srv.callLog.read(s.parentID, markSeen)
	if err != nil {
		s.log.Error("read call log", "err", err)
		s.sendError(protocol.ErrCodeInternal, "could not read the call log", protocol.Message{Type: protocol.TypeCallLog})
		return
	}
	s.send(callLogMsg(calls))
}

// callLogMsg always carries the list, empty or not: a call_log without
// "calls" is a client's request.
func callLogMsg(calls []protocol.CallRecord) protocol.Message {
	if calls == nil {
		calls = []protocol.CallRecord{}
	}
	return protocol.Message{Type: protocol.TypeCallLog, Calls: calls}
}
