package natsreg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tuanju/tuanju/internal/rendezvous"
)

// Router is rendezvous.Cluster on the registry's NATS connection: routing
// between rendezvous nodes (docs/architecture.md, "Routing between nodes").
//
//   - Where each terminal is: tuanju_presence, device ID → its node and
//     parent, kept in memory by JetStream (replicated like the registry,
//     but not worth a disk: a node that starts again rebuilds it as its
//     terminals log in). Each login also says so on tuanju.presence, so
//     that the nodes holding the family's other sockets move them.
//   - A relayed socket: tuanju.node.<home>.open (a request, answered once
//     the home has joined it), then its messages and its close, in order,
//     on tuanju.node.<home>.in; the home's frames for it on
//     tuanju.node.<edge>.out. Headers name the socket and its node.
//   - A call that follows its terminal to another node: that node asks
//     the call's holder to give it up on tuanju.node.<holder>.call (a
//     request, answered once it has; rendezvous handover.go).
//   - Who is alive: each node says so on tuanju.alive every second, with
//     its start's nonce; one silent for five seconds, or heard with another
//     nonce (it started again), is gone, and what it relayed or was relayed
//     is closed or forgotten (rendezvous.ClusterReceiver.NodeGone).
//
// Core NATS, not JetStream, carries the messages: a message whose node
// died with it is the client's to send again after it reconnects, as on
// one node.
type Router struct {
	reg  *Registry
	node string
	boot string

	mu    sync.Mutex
	peers map[string]*peer
}

type peer struct {
	boot string
	seen time.Time
	gone bool
}

const (
	subjPresence = "tuanju.presence"
	subjAlive    = "tuanju.alive"
	aliveEvery   = time.Second
	goneAfter    = 5 * time.Second

	hdrEdge   = "Tuanju-Edge"
	hdrHome   = "Tuanju-Home"
	hdrSID    = "Tuanju-Sid"
	hdrOp     = "Tuanju-Op" // on .in: msg or release; on .out: msg or close
	hdrCode   = "Tuanju-Code"
	hdrReason = "Tuanju-Reason"
)

func subjNode(node, what string) string { return "tuanju.node." + node + "." + what }

// Router makes the registry's connection a node of the cluster.
func (r *Registry) Router() *Router {
	b := make([]byte, 8)
	rand.Read(b)
	return &Router{reg: r, node: r.node, boot: hex.EncodeToString(b), peers: map[string]*peer{}}
}

var _ rendezvous.Cluster = (*Router)(nil)

// Node is this node's name (Options.Node).
func (rt *Router) Node() string { return rt.node }

type presence struct {
	Node   string `json:"node"`
	Parent string `json:"parent,omitempty"`
	Device string `json:"device,omitempty"` // in the event only
}

// SetHome records that deviceID's terminal is on this node, and says so.
// Like the registry's calls it rides out a leader's election, within
// Options.OpTimeout (ctx is not used).
func (rt *Router) SetHome(ctx context.Context, deviceID, parentID string) (uint64, error) {
	b, err := json.Marshal(presence{Node: rt.node, Parent: parentID})
	if err != nil {
		return 0, err
	}
	var rev uint64
	err = rt.reg.retry(func(ctx context.Context) (err error) {
		if rev, err = rt.reg.presence.Put(ctx, deviceID, b); err == nil {
			return permanent{nil}
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("natsreg: record %s's node: %w", deviceID, err)
	}
	ev, err := json.Marshal(presence{Node: rt.node, Parent: parentID, Device: deviceID})
	if err != nil {
		return 0, err
	}
	if err := rt.reg.nc.Publish(subjPresence, ev); err != nil {
		return rev, fmt.Errorf("natsreg: say %s's node: %w", deviceID, err)
	}
	return rev, nil
}

// ClearHome deletes the record at rev; a later one stays.
func (rt *Router) ClearHome(ctx context.Context, deviceID string, rev uint64) error {
	err := rt.reg.retry(func(ctx context.Context) error {
		err := rt.reg.presence.Delete(ctx, deviceID, jetstream.LastRevision(rev))
		var apiErr *jetstream.APIError
		if err == nil || errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return permanent{nil} // done, or replaced by a later login
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("natsreg: clear %s's node: %w", deviceID, err)
	}
	return nil
}

// HomeOf is the node deviceID's terminal was last on, "" if none.
func (rt *Router) HomeOf(ctx context.Context, deviceID string) (string, error) {
	var e jetstream.KeyValueEntry
	err := rt.reg.retry(func(ctx context.Context) (err error) {
		e, err = rt.reg.presence.Get(ctx, deviceID)
		if err == nil || errors.Is(err, jetstream.ErrKeyNotFound) {
			return permanent{err}
		}
		return err
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("natsreg: %s's node: %w", deviceID, err)
	}
	var p presence
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return "", fmt.Errorf("natsreg: %s's node: %w", deviceID, err)
	}
	if p.Node != rt.node && rt.isGone(p.Node) {
		return "", nil
	}
	return p.Node, nil
}

// Open asks home to take a socket; a node that is not there answers at once
// (no responders).
func (rt *Router) Open(ctx context.Context, home string, o rendezvous.RelayOpen) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	reply, err := rt.reg.nc.RequestWithContext(ctx, subjNode(home, "open"), b)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("natsreg: relay to %s: %w", home, rendezvous.ErrNodeGone)
	}
	if err != nil {
		return fmt.Errorf("natsreg: relay to %s: %w", home, err)
	}
	if len(reply.Data) > 0 {
		return fmt.Errorf("natsreg: relay to %s: %s", home, reply.Data)
	}
	rt.answered(home)
	return nil
}

// Forward sends a relayed socket's message to its home.
func (rt *Router) Forward(home, sid string, data []byte) error {
	return rt.toHome(home, sid, "msg", data)
}

// ForwardAcked is Forward that waits for home to say it has the message
// (rendezvous.Cluster); rendezvous.ErrNodeGone when nobody serves home.
func (rt *Router) ForwardAcked(ctx context.Context, home, sid string, data []byte) error {
	m := rt.homeMsg(home, sid, "msg", data)
	if _, err := rt.reg.nc.RequestMsgWithContext(ctx, m); err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("natsreg: to %s: %w", home, rendezvous.ErrNodeGone)
		}
		return fmt.Errorf("natsreg: to %s: %w", home, err)
	}
	return nil
}

// Release tells home a relayed socket closed.
func (rt *Router) Release(home, sid string) {
	rt.toHome(home, sid, "release", nil)
}

func (rt *Router) toHome(home, sid, op string, data []byte) error {
	if err := rt.reg.nc.PublishMsg(rt.homeMsg(home, sid, op, data)); err != nil {
		return fmt.Errorf("natsreg: to %s: %w", home, err)
	}
	return nil
}

func (rt *Router) homeMsg(home, sid, op string, data []byte) *nats.Msg {
	m := nats.NewMsg(subjNode(home, "in"))
	m.Header.Set(hdrEdge, rt.node)
	m.Header.Set(hdrSID, sid)
	m.Header.Set(hdrOp, op)
	m.Data = data
	return m
}

// Deliver sends a frame to a relayed socket on edge.
func (rt *Router) Deliver(edge, sid string, f rendezvous.RelayFrame) error {
	m := nats.NewMsg(subjNode(edge, "out"))
	m.Header.Set(hdrHome, rt.node)
	m.Header.Set(hdrSID, sid)
	if f.Close {
		m.Header.Set(hdrOp, "close")
		m.Header.Set(hdrCode, strconv.Itoa(f.Code))
		m.Header.Set(hdrReason, f.Reason)
	} else {
		m.Header.Set(hdrOp, "msg")
		m.Data = f.Data
	}
	if err := rt.reg.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("natsreg: to %s: %w", edge, err)
	}
	return nil
}

// handOver is a tuanju.node.<holder>.call request: give up a call.
type handOver struct {
	Device string `json:"device"`
	Call   string `json:"call"`
}

// HandOver asks holder to give up a call (rendezvous.Cluster.HandOver).
func (rt *Router) HandOver(ctx context.Context, holder, deviceID, callID string) error {
	b, err := json.Marshal(handOver{Device: deviceID, Call: callID})
	if err != nil {
		return err
	}
	reply, err := rt.reg.nc.RequestWithContext(ctx, subjNode(holder, "call"), b)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("natsreg: hand over call %s from %s: %w", callID, holder, rendezvous.ErrNodeGone)
	}
	if err != nil {
		return fmt.Errorf("natsreg: hand over call %s from %s: %w", callID, holder, err)
	}
	if len(reply.Data) > 0 {
		return fmt.Errorf("natsreg: hand over call %s from %s: %s", callID, holder, reply.Data)
	}
	return nil
}

// Gone reports whether node was heard and has since gone silent.
func (rt *Router) Gone(node string) bool { return rt.isGone(node) }

// Heard reports whether node was heard and has not gone silent since.
func (rt *Router) Heard(node string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	p := rt.peers[node]
	return p != nil && !p.gone
}

// Serve subscribes this node's subjects and starts its heartbeat.
func (rt *Router) Serve(r rendezvous.ClusterReceiver) (func(), error) {
	nc := rt.reg.nc
	var subs []*nats.Subscription
	stop := func() {
		for _, s := range subs {
			s.Unsubscribe()
		}
	}
	sub := func(subject string, h nats.MsgHandler) error {
		s, err := nc.Subscribe(subject, h)
		if err != nil {
			stop()
			return fmt.Errorf("natsreg: subscribe %s: %w", subject, err)
		}
		subs = append(subs, s)
		return nil
	}
	err := errors.Join(
		sub(subjNode(rt.node, "open"), func(m *nats.Msg) {
			var o rendezvous.RelayOpen
			err := json.Unmarshal(m.Data, &o)
			if err == nil {
				err = r.Opened(o)
			}
			var answer []byte
			if err != nil {
				answer = []byte(err.Error())
			}
			m.Respond(answer)
		}),
		sub(subjNode(rt.node, "call"), func(m *nats.Msg) {
			var h handOver
			err := json.Unmarshal(m.Data, &h)
			if err == nil {
				// Its own goroutine: the answer waits for the call log,
				// and the subscription's other requests must not.
				go func() {
					var answer []byte
					if err := r.GiveUpCall(h.Device, h.Call); err != nil {
						answer = []byte(err.Error())
					}
					m.Respond(answer)
				}()
				return
			}
			m.Respond([]byte(err.Error()))
		}),
		sub(subjNode(rt.node, "in"), func(m *nats.Msg) {
			if m.Reply != "" {
				m.Respond(nil) // ForwardAcked: it is here
			}
			edge, sid := m.Header.Get(hdrEdge), m.Header.Get(hdrSID)
			switch m.Header.Get(hdrOp) {
			case "msg":
				r.Forwarded(edge, sid, m.Data)
			case "release":
				r.Released(edge, sid)
			}
		}),
		sub(subjNode(rt.node, "out"), func(m *nats.Msg) {
			f := rendezvous.RelayFrame{Data: m.Data}
			if m.Header.Get(hdrOp) == "close" {
				f.Close = true
				f.Code, _ = strconv.Atoi(m.Header.Get(hdrCode))
				f.Reason = m.Header.Get(hdrReason)
			}
			r.Delivered(m.Header.Get(hdrHome), m.Header.Get(hdrSID), f)
		}),
		sub(subjPresence, func(m *nats.Msg) {
			var p presence
			if json.Unmarshal(m.Data, &p) == nil && p.Device != "" {
				r.HomeChanged(p.Device, p.Parent, p.Node)
			}
		}),
		sub(subjAlive, func(m *nats.Msg) {
			node, boot, ok := strings.Cut(string(m.Data), " ")
			if !ok || node == "" || boot == "" || node == rt.node {
				return
			}
			if rt.heard(node, boot) {
				r.NodeGone(node) // started again: what it held is gone
			}
		}),
	)
	if err != nil {
		return nil, err
	}
	// The server has the subscriptions once this returns: a node that
	// starts serving takes a relay or a forward sent the moment after,
	// rather than the sender hearing no one is there.
	if err := nc.Flush(); err != nil {
		stop()
		return nil, fmt.Errorf("natsreg: subscribe this node's subjects: %w", err)
	}
	done := make(chan struct{})
	go rt.beat(r, done)
	return func() { close(done); stop() }, nil
}

// beat says this node is alive, and finds the nodes that no longer are.
func (rt *Router) beat(r rendezvous.ClusterReceiver, done <-chan struct{}) {
	t := time.NewTicker(aliveEvery)
	defer t.Stop()
	msg := []byte(rt.node + " " + rt.boot)
	for {
		rt.reg.nc.Publish(subjAlive, msg)
		for _, n := range rt.silent(time.Now()) {
			r.NodeGone(n)
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// heard notes a heartbeat; true when it comes from a new start of a node
// heard before.
func (rt *Router) heard(node, boot string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	p := rt.peers[node]
	if p == nil {
		rt.peers[node] = &peer{boot: boot, seen: time.Now()}
		return false
	}
	// A node known only from an answer (answered) has no start nonce yet:
	// its first heartbeat gives it one.
	restarted := p.boot != "" && p.boot != boot && !p.gone
	p.boot, p.seen, p.gone = boot, time.Now(), false
	return restarted
}

// answered notes a node that answered this one (it took a relay) as
// heard now, if it was not heard before: this node may have started less
// than a heartbeat ago, and a home that dies before its first heartbeat
// arrives must still go silent here, and what was relayed to it be closed
// (TestAcceptToDeadNode/idle), not wait forever on a node never heard.
func (rt *Router) answered(node string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.peers[node] == nil {
		rt.peers[node] = &peer{seen: time.Now()}
	}
}

// silent marks gone, and returns, the nodes not heard for goneAfter.
func (rt *Router) silent(now time.Time) []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []string
	for n, p := range rt.peers {
		if !p.gone && now.Sub(p.seen) > goneAfter {
			p.gone = true
			out = append(out, n)
		}
	}
	return out
}

// isGone: node was heard and has gone silent. A node never heard is not
// called gone: this one may have just started; a dead one refuses the
// relay at once (no responders).
func (rt *Router) isGone(node string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	p := rt.peers[node]
	return p != nil && p.gone
}
