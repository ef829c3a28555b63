package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Cluster is how a rendezvous node reaches the others (issue 16). A
// family's terminal is on one node, its home; a parent's socket or a
// pairing page that reaches another node is relayed to the home's hub, so
// that routing within a family stays in one hub, under one lock, as it is
// on a single node, and the rule that keeps a stranger from a child
// (hub.go) is checked in one place. natsreg implements it on NATS subjects
// and a key-value bucket; nil is one node.
//
// A node trusts another with the identities that node authenticated, and
// nothing more: the home checks each relayed message as it checks its own
// sockets' (role, allowed types, signatures).
type Cluster interface {
	// Node is this node's name.
	Node() string
	// SetHome records that deviceID's terminal is on this node; parentID
	// is its parent ("" while unpaired), for the nodes holding that
	// parent's sockets. It returns the record's revision for ClearHome.
	SetHome(ctx context.Context, deviceID, parentID string) (uint64, error)
	// ClearHome removes the record SetHome made, unless a later login
	// (here or on another node) has replaced it.
	ClearHome(ctx context.Context, deviceID string, rev uint64) error
	// HomeOf is the node deviceID's terminal was last on, "" if none.
	HomeOf(ctx context.Context, deviceID string) (string, error)
	// Open asks node home to take a socket of this node's, and returns once
	// it has (its first frames, such as a welcome, are on their way back).
	Open(ctx context.Context, home string, o RelayOpen) error
	// Forward sends one of a relayed socket's messages to its home, in the
	// order they came.
	Forward(home, sid string, data []byte) error
	// ForwardAcked is Forward that returns once home has the message;
	// ErrNodeGone when no node of that name is there.
	ForwardAcked(ctx context.Context, home, sid string, data []byte) error
	// Release tells home that a relayed socket closed, after its messages.
	Release(home, sid string)
	// Deliver sends a frame from this node's hub to a relayed socket on
	// node edge.
	Deliver(edge, sid string, f RelayFrame) error
	// HandOver asks node holder to give up deviceID's call callID, whose
	// terminal is on this node now (handover.go); ErrNodeGone when no node
	// of that name is there.
	HandOver(ctx context.Context, holder, deviceID, callID string) error
	// Gone reports whether node was heard and has since gone silent.
	Gone(node string) bool
	// Heard reports whether node was heard and has not gone silent.
	Heard(node string) bool
	// Serve hands r what other nodes send this one, until stop.
	Serve(r ClusterReceiver) (stop func(), err error)
}

// ClusterReceiver is what a node does with what other nodes send it
// (Cluster.Serve). Calls of one kind come one at a time, in order.
type ClusterReceiver interface {
	// Opened: a socket on node o.Edge is relayed to this node's hub.
	Opened(o RelayOpen) error
	// Forwarded: a relayed socket's message.
	Forwarded(edge, sid string, data []byte)
	// Released: a relayed socket closed on its node.
	Released(edge, sid string)
	// Delivered: a frame for one of this node's sockets, from its home.
	Delivered(home, sid string, f RelayFrame)
	// HomeChanged: deviceID's terminal logged in on node.
	HomeChanged(deviceID, parentID, node string)
	// NodeGone: node stopped answering (or started again, forgetting its
	// sockets).
	NodeGone(node string)
	// GiveUpCall: deviceID's terminal took its call callID to another
	// node (Cluster.HandOver).
	GiveUpCall(deviceID, callID string) error
}

// RelayOpen is a socket a node relays to another: who it authenticated.
type RelayOpen struct {
	Edge     string `json:"edge"` // the node the socket is on
	SID      string `json:"sid"`  // its name there
	Role     string `json:"role"` // parent or pairing
	ParentID string `json:"parent_id,omitempty"`
	DeviceID string `json:"device_id,omitempty"`
	IP       string `json:"ip"` // the client's address, for the per-address limits
}

// RelayFrame is one frame from a home's hub to a relayed socket: a message,
// or the close that ends it.
type RelayFrame struct {
	Data   []byte
	Close  bool
	Code   int
	Reason string
}

// ErrNodeGone is Cluster.Open's answer when no node of that name is
// there to take the socket.
var ErrNodeGone = errors.New("rendezvous: no such node")

// relayRoute is where this node's relayed socket goes.
type relayRoute struct {
	home, sid, deviceID string
}

// clusterWait bounds what a socket waits for the cluster: longer than a
// registry call's own limit (natsreg: 20 s, a leader's election), which
// the records of where terminals are share.
const clusterWait = 25 * time.Second

// JoinCluster makes this server one node of c. It is called once, before
// the server serves.
func (s *Server) JoinCluster(c Cluster) error {
	s.cluster = c
	s.relayed = map[string]*session{}
	s.relayedDev = map[string]map[*session]bool{}
	s.remotes = map[string]*session{}
	stop, err := c.Serve(clusterPort{s})
	if err != nil {
		return fmt.Errorf("rendezvous: join the cluster: %w", err)
	}
	s.clusterStop = stop
	go s.sweepSplit()
	go s.sweepUnheard()
	return nil
}

// splitSweep is how often a node looks for families it serves apart from
// their terminal, and splitSweepMax how many terminals it looks up a time.
const (
	splitSweep    = 10 * time.Second
	splitSweepMax = 1000
)

// sweepSplit is the safety net under HomeChanged, whose messages are not
// stored: a parent served here (its terminal offline when it logged in)
// whose terminal has since logged in elsewhere, and this node missed the
// word (its link to NATS was down, say), is moved all the same, within
// splitSweep.
func (s *Server) sweepSplit() {
	t := time.NewTicker(splitSweep)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		for dev, parentID := range s.hub.apart(splitSweepMax) {
			ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
			home, err := s.cluster.HomeOf(ctx, dev)
			cancel()
			if err == nil && home != "" && home != s.cluster.Node() {
				clusterPort{s}.HomeChanged(dev, parentID, home)
			}
		}
	}
}

// homeElsewhere is the other node deviceID's terminal is on, "" when it is
// on this one, on none, or the cluster does not answer (the socket is then
// served here, as on one node).
func (s *Server) homeElsewhere(sess *session, deviceID string) string {
	if s.cluster == nil || deviceID == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(sess.ctx, clusterWait)
	defer cancel()
	home, err := s.cluster.HomeOf(ctx, deviceID)
	if err != nil {
		sess.log.Warn("cluster: where is the terminal? serving the socket here", "err", err)
		return ""
	}
	if home == s.cluster.Node() {
		return ""
	}
	return home
}

// parentsHome is, for a parent's socket, the other node its terminal is on.
func (s *Server) parentsHome(sess *session) string {
	if sess.role != protocol.RoleParent {
		return ""
	}
	return s.homeElsewhere(sess, sess.deviceID)
}

// openRelay routes sess to home's hub. false with no error: home is gone
// (ErrNodeGone), its terminal with it, and the caller serves the socket
// here until the terminal logs in somewhere (HomeChanged). An error: home
// is there but did not take the socket in time (its registry electing a
// leader, say); the caller has the client try again rather than serve it
// here, where its terminal is not.
func (s *Server) openRelay(sess *session, home, deviceID string) (bool, error) {
	r := &relayRoute{home: home, sid: protocol.NewID(), deviceID: deviceID}
	sess.relay = r
	s.clusterMu.Lock()
	s.relayed[r.sid] = sess
	set := s.relayedDev[deviceID]
	if set == nil {
		set = map[*session]bool{}
		s.relayedDev[deviceID] = set
	}
	set[sess] = true
	s.clusterMu.Unlock()
	ctx, cancel := context.WithTimeout(sess.ctx, clusterWait)
	defer cancel()
	err := s.cluster.Open(ctx, home, RelayOpen{
		Edge: s.cluster.Node(), SID: r.sid, Role: sess.role, ParentID: sess.parentID, DeviceID: deviceID, IP: sess.ip,
	})
	if err != nil {
		s.unrelay(sess)
		if errors.Is(err, ErrNodeGone) {
			sess.log.Info("cluster: the terminal's last node is gone; serving the socket here", "home", home)
			return false, nil
		}
		sess.log.Warn("cluster: the terminal's node did not take the socket", "home", home, "err", err)
		s.cluster.Release(home, r.sid) // in case it took it after all
		return false, err
	}
	sess.log = sess.log.With("home", home)
	return true, nil
}

// unrelay forgets sess's route (its socket closed, or the route failed).
func (s *Server) unrelay(sess *session) {
	r := sess.relay
	if r == nil {
		return
	}
	s.clusterMu.Lock()
	defer s.clusterMu.Unlock()
	if s.relayed[r.sid] == sess {
		delete(s.relayed, r.sid)
	}
	if set := s.relayedDev[r.deviceID]; set != nil {
		delete(set, sess)
		if len(set) == 0 {
			delete(s.relayedDev, r.deviceID)
		}
	}
	sess.relay = nil
}

// closeRelayed ends a relayed socket: its home is told, then the route goes.
func (s *Server) closeRelayed(sess *session) {
	if r := sess.relay; r != nil {
		s.cluster.Release(r.home, r.sid)
		s.unrelay(sess)
	}
}

// setHome records a terminal that is joining this node's hub, paired as r
// read (readForJoin, which join then uses too). false: it could not, and
// the terminal must log in again: served here unrecorded, its parent's
// sockets on other nodes would never find it.
func (s *Server) setHome(sess *session, r joinReads) bool {
	if s.cluster == nil {
		return true
	}
	if r.parentErr != nil {
		sess.log.Warn("cluster: could not read the terminal's parent; its parent's other nodes are not told", "err", r.parentErr)
	}
	ctx, cancel := context.WithTimeout(sess.ctx, clusterWait)
	defer cancel()
	rev, err := s.cluster.SetHome(ctx, sess.deviceID, r.parentID)
	if err != nil {
		sess.log.Warn("cluster: could not record the terminal's node; it logs in again", "err", err)
		return false
	}
	sess.homeRev.Store(rev)
	return true
}

// clearHome removes a leaving terminal's record.
func (s *Server) clearHome(sess *session) {
	rev := sess.homeRev.Load()
	if s.cluster == nil || rev == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	if err := s.cluster.ClearHome(ctx, sess.deviceID, rev); err != nil {
		sess.log.Debug("cluster: clear the terminal's node", "err", err)
	}
}

// clusterPort is the Server as a ClusterReceiver; apart from Server so that
// its methods are not the Server's API.
type clusterPort struct{ s *Server }

func remoteKey(edge, sid string) string { return edge + "/" + sid }

// Opened makes a session for a socket on another node and joins it here.
func (p clusterPort) Opened(o RelayOpen) error {
	s := p.s
	switch {
	case o.Edge == "" || o.SID == "":
		return errors.New("rendezvous: relay open without its node and socket")
	case o.Role == protocol.RoleParent && (o.ParentID == "" || o.DeviceID == ""):
		return errors.New("rendezvous: relayed parent without its IDs")
	case o.Role != protocol.RoleParent && o.Role != protocol.RolePairing:
		return fmt.Errorf("rendezvous: a %q socket is not relayed", o.Role)
	}
	key := remoteKey(o.Edge, o.SID)
	sess := newSession(nil, o.IP, s.cfg.SendQueueDepth, s.log.With("remote", o.IP, "edge", o.Edge))
	sess.counted = s.health.error
	sess.barrier = s.callLog
	sess.outlet = func(f outFrame) bool {
		err := s.cluster.Deliver(o.Edge, o.SID, RelayFrame{Data: f.data, Close: f.close, Code: int(f.code), Reason: f.reason})
		if f.close || err != nil {
			p.forget(key, sess)
		}
		return err == nil
	}
	sess.role, sess.parentID, sess.deviceID = o.Role, o.ParentID, o.DeviceID
	if o.Role == protocol.RoleParent {
		sess.log = sess.log.With("role", "parent", "parent", o.ParentID, "device", o.DeviceID)
	} else {
		sess.log = sess.log.With("role", "pairing")
	}
	if !s.hub.add(sess) {
		return errors.New("rendezvous: shutting down")
	}
	sess.startRelayed(s.cfg.WriteTimeout, sess.log)
	s.clusterMu.Lock()
	if old := s.remotes[key]; old != nil {
		s.clusterMu.Unlock()
		s.hub.leave(sess)
		return errors.New("rendezvous: relay open for a socket already open")
	}
	s.remotes[key] = sess
	s.clusterMu.Unlock()
	// A pairing page was welcomed by its own node; a parent is welcomed
	// here, where its terminal is.
	if o.Role == protocol.RoleParent && !s.hub.join(sess) {
		p.forget(key, sess)
		return errors.New("rendezvous: the parent could not join")
	}
	sess.loggedIn = true
	sess.log.Info("logged in (relayed)")
	return nil
}

// forget takes a relayed socket out of this hub.
func (p clusterPort) forget(key string, sess *session) {
	s := p.s
	s.clusterMu.Lock()
	if s.remotes[key] == sess {
		delete(s.remotes, key)
	}
	s.clusterMu.Unlock()
	s.hub.leave(sess)
	sess.closing.Store(true)
	sess.cancel()
}

func (p clusterPort) remote(edge, sid string) *session {
	p.s.clusterMu.Lock()
	defer p.s.clusterMu.Unlock()
	return p.s.remotes[remoteKey(edge, sid)]
}

// Forwarded handles a relayed socket's message as its own node would have:
// checked again here, since this hub decides what it lets through.
func (p clusterPort) Forwarded(edge, sid string, data []byte) {
	s := p.s
	sess := p.remote(edge, sid)
	if sess == nil {
		// Not one of ours (this node started again since): the socket's
		// node closes it, and the client reconnects and is routed afresh.
		s.cluster.Deliver(edge, sid, RelayFrame{Close: true, Code: int(CloseMoved), Reason: "routed afresh"})
		return
	}
	m, err := protocol.Decode(data)
	if err == nil {
		err = checkClientMessage(m)
	}
	if err != nil {
		sess.log.Warn("cluster: a relayed message its node should have refused", "err", err)
		return
	}
	s.hub.handle(sess, m)
}

// Released: the relayed socket closed on its node.
func (p clusterPort) Released(edge, sid string) {
	if sess := p.remote(edge, sid); sess != nil {
		p.forget(remoteKey(edge, sid), sess)
	}
}

// Delivered writes a frame from a socket's home to the socket.
func (p clusterPort) Delivered(home, sid string, f RelayFrame) {
	s := p.s
	s.clusterMu.Lock()
	sess := s.relayed[sid]
	s.clusterMu.Unlock()
	if sess == nil {
		s.cluster.Release(home, sid) // closed here meanwhile
		return
	}
	if f.Close {
		sess.closeWith(websocket.StatusCode(f.Code), f.Reason)
		return
	}
	if sess.closing.Load() {
		return
	}
	if !sess.enqueue(outFrame{data: f.Data}) {
		sess.log.Warn("send queue full, dropping client")
		sess.count(errSendQueueFull)
		sess.drop()
	}
}

// HomeChanged moves what this node holds of a family whose terminal has
// logged in on node: its parent's sockets routed to another node, or
// served here while the terminal is elsewhere, reconnect (CloseMoved) and
// are routed afresh; a terminal socket left here is replaced, as a second
// login on one node replaces the first.
func (p clusterPort) HomeChanged(deviceID, parentID, node string) {
	s := p.s
	if node == "" {
		return
	}
	var move []*session
	s.clusterMu.Lock()
	for sess := range s.relayedDev[deviceID] {
		if sess.relay != nil && sess.relay.home != node && sess.role == protocol.RoleParent {
			move = append(move, sess)
		}
	}
	s.clusterMu.Unlock()
	var term *session
	if node != s.cluster.Node() {
		var parents []*session
		term, parents = s.hub.movedAway(deviceID, parentID)
		move = append(move, parents...)
	}
	for _, sess := range move {
		sess.log.Info("cluster: the terminal is on another node; the socket reconnects there", "node", node)
		sess.closeWith(CloseMoved, "terminal on another node")
	}
	if term != nil {
		term.log.Info("replaced by a login on another node", "node", node)
		term.closeWith(CloseReplaced, "replaced")
	}
}

// NodeGone closes what this node relayed to node, and forgets what node
// relayed here.
func (p clusterPort) NodeGone(node string) {
	s := p.s
	var relayed []*session
	remotes := map[string]*session{}
	s.clusterMu.Lock()
	for _, sess := range s.relayed {
		if sess.relay != nil && sess.relay.home == node {
			relayed = append(relayed, sess)
		}
	}
	for key, sess := range s.remotes {
		if edge, _, _ := strings.Cut(key, "/"); edge == node { // node names hold no "/"
			remotes[key] = sess
		}
	}
	s.clusterMu.Unlock()
	if len(relayed)+len(remotes) > 0 {
		s.log.Warn("cluster: a node is gone", "node", node, "relayed_there", len(relayed), "relayed_here", len(remotes))
	}
	for _, sess := range relayed {
		sess.closeWith(CloseMoved, "node gone")
	}
	for key, sess := range remotes {
		p.forget(key, sess)
	}
	time.AfterFunc(goneCallsAfter(s.cfg.ResumeGrace), func() { s.closeGoneCalls(node) })
}

// GiveUpCall lets the node deviceID's terminal is on now take its call.
func (p clusterPort) GiveUpCall(deviceID, callID string) error {
	return p.s.giveUpCall(deviceID, callID)
}

// apart returns up to max terminals (device → parent) whose parent has
// sockets served here while the terminal has none here.
func (h *hub) apart(max int) map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]string{}
	for parentID, set := range h.parents {
		if len(out) >= max {
			break
		}
		for s := range set {
			if s.outlet == nil && h.terminals[s.deviceID] == nil {
				out[s.deviceID] = parentID
			}
			break // one socket says which terminal
		}
	}
	return out
}

// movedAway returns what this hub holds of deviceID's family now that its
// terminal is on another node: a terminal socket still here, and the
// parent's sockets served here. The caller closes them.
func (h *hub) movedAway(deviceID, parentID string) (term *session, parents []*session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	term = h.terminals[deviceID]
	if parentID != "" {
		for s := range h.parents[parentID] {
			if s.outlet == nil && s.deviceID == deviceID {
				parents = append(parents, s)
			}
		}
	}
	return term, parents
}

// Online reports whether a terminal is connected now: to this node, or, on
// several nodes, to a live node that recorded it (the fleet view of any
// node sees every node's terminals).
func (s *Server) Online(deviceID string) bool {
	if s.hub.online(deviceID) {
		return true
	}
	if s.cluster == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	home, err := s.cluster.HomeOf(ctx, deviceID)
	return err == nil && home != "" && home != s.cluster.Node()
}
