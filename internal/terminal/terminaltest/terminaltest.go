// Package terminaltest has fakes for driving a terminal.Terminal without
// sockets: Server and Conn stand in for the rendezvous server
// (terminal.Deps.Dial), Parent signs what the paired parent's phone would,
// and LEDs records the patterns shown. Everything works inside a
// testing/synctest bubble, where synctest.Wait proves the terminal's loop
// has handled all it was given.
package terminaltest

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// ErrClosed is what Receive returns once the connection is closed.
var ErrClosed = errors.New("terminaltest: connection closed")

// Server is a fake rendezvous server for one terminal: each Dial logs in at
// once with the welcome it is given, unless Refuse has set an error.
type Server struct {
	mu      sync.Mutex
	welcome protocol.Message
	refuse  error
	conns   []*Conn
}

// NewServer returns a server that welcomes the terminal as paired or not,
// with the parent online or not.
func NewServer(paired, parentOnline bool) *Server {
	return &Server{welcome: protocol.Message{Type: protocol.TypeWelcome, Paired: &paired, PeerOnline: &parentOnline}}
}

// EditWelcome changes the welcome of the following logins (a pending
// pairing's pair_id, the server's parent_id, …).
func (s *Server) EditWelcome(f func(*protocol.Message)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.welcome)
}

// Dial is a terminal.DialFunc.
func (s *Server) Dial(ctx context.Context) (terminal.ServerConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.refuse != nil {
		return nil, s.refuse
	}
	c := &Conn{welcome: s.welcome, in: make(chan protocol.Message, 64), done: make(chan struct{})}
	s.conns = append(s.conns, c)
	return c, nil
}

// Refuse makes the following logins fail with err (nil: succeed again).
// An error wrapping terminal.ErrAuthFailed is a refused device certificate.
func (s *Server) Refuse(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = err
}

// Conn is the latest connection, or nil before the first login.
func (s *Server) Conn() *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) == 0 {
		return nil
	}
	return s.conns[len(s.conns)-1]
}

// Logins is how many logins succeeded.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Conn is one fake signalling connection: a terminal.ServerConn on the
// terminal's side, Deliver and Sent on the test's.
type Conn struct {
	welcome protocol.Message
	in      chan protocol.Message
	done    chan struct{}
	once    sync.Once

	mu   sync.Mutex
	sent []protocol.Message
}

var _ terminal.ServerConn = (*Conn)(nil)

// Welcome is the server's welcome at login.
func (c *Conn) Welcome() protocol.Message { return c.welcome }

// Send records m, unless the connection is closed.
func (c *Conn) Send(m protocol.Message) {
	select {
	case <-c.done:
		return
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, m)
}

// Receive returns the next delivered message, or ErrClosed once the
// connection is closed.
func (c *Conn) Receive(ctx context.Context) (protocol.Message, error) {
	select {
	case m := <-c.in:
		return m, nil
	case <-c.done:
		return protocol.Message{}, ErrClosed
	case <-ctx.Done():
		return protocol.Message{}, ctx.Err()
	}
}

// Close ends the connection, from either side; safe to repeat.
func (c *Conn) Close() { c.once.Do(func() { close(c.done) }) }

// Closed reports whether the connection was closed.
func (c *Conn) Closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Deliver hands m to the terminal as the server would relay it.
func (c *Conn) Deliver(m protocol.Message) { c.in <- m }

// Sent returns what the terminal sent so far.
func (c *Conn) Sent() []protocol.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sent)
}

// TakeSent returns what the terminal sent since the last TakeSent.
func (c *Conn) TakeSent() []protocol.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.sent
	c.sent = nil
	return out
}

// Parent is the paired parent's phone: it signs rings and accepts with its
// key, as the parent's page does.
type Parent struct {
	ID  string
	key *ecdsa.PrivateKey
}

// NewParent makes a parent with a fresh key.
func NewParent() (*Parent, error) {
	key, err := pairing.NewKey()
	if err != nil {
		return nil, fmt.Errorf("terminaltest: parent key: %w", err)
	}
	return &Parent{ID: protocol.NewID(), key: key}, nil
}

// PairWith stores p as the terminal's paired parent, as a completed pairing
// would.
func (p *Parent) PairWith(store *terminalstore.Store) error {
	enc, err := pairing.EncodePublicKey(&p.key.PublicKey)
	if err != nil {
		return fmt.Errorf("terminaltest: %w", err)
	}
	return store.SetParent(terminalstore.Parent{ParentID: p.ID, PairedAt: time.Now().UTC(), PublicKey: enc})
}

// Ring is the parent's signed ring for callID, with a fresh nonce.
func (p *Parent) Ring(callID string) (protocol.Message, error) {
	m := protocol.Message{Type: protocol.TypeRing, CallID: callID, Nonce: pairing.NewNonce()}
	return p.sign(m, pairing.Binding{CallID: callID, RingNonce: m.Nonce})
}

// Accept is the parent's signed accept of the terminal's ring.
func (p *Parent) Accept(ring protocol.Message) (protocol.Message, error) {
	m := protocol.Message{Type: protocol.TypeAccept, CallID: ring.CallID, Nonce: pairing.NewNonce()}
	return p.sign(m, pairing.Binding{CallID: ring.CallID, RingNonce: ring.Nonce, AcceptNonce: m.Nonce})
}

// Prepare is the parent's signed prepare of the terminal's ringing call.
func (p *Parent) Prepare(ring protocol.Message) (protocol.Message, error) {
	m := protocol.Message{Type: protocol.TypePrepare, CallID: ring.CallID, Nonce: pairing.NewNonce()}
	return p.sign(m, pairing.Binding{CallID: ring.CallID, RingNonce: ring.Nonce, AcceptNonce: m.Nonce})
}

// PrepareOwn is the parent's signed prepare of the call it rang (ring):
// no nonce, signed over the ring's alone.
func (p *Parent) PrepareOwn(ring protocol.Message) (protocol.Message, error) {
	m := protocol.Message{Type: protocol.TypePrepare, CallID: ring.CallID}
	return p.sign(m, pairing.Binding{CallID: ring.CallID, RingNonce: ring.Nonce})
}

func (p *Parent) sign(m protocol.Message, b pairing.Binding) (protocol.Message, error) {
	sig, err := pairing.SignCall(p.key, m.Type, b, m.SDP, time.Now())
	if err != nil {
		return m, fmt.Errorf("terminaltest: sign %s: %w", m.Type, err)
	}
	m.SignedAt, m.Signature = sig.SignedAt, sig.Signature
	return m, nil
}

// LEDs records every pattern shown.
type LEDs struct {
	mu    sync.Mutex
	shown []device.Pattern
}

// Show records p.
func (l *LEDs) Show(p device.Pattern) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shown = append(l.shown, p)
	return nil
}

// Last is the pattern shown last ("" before the first).
func (l *LEDs) Last() device.Pattern {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.shown) == 0 {
		return ""
	}
	return l.shown[len(l.shown)-1]
}
