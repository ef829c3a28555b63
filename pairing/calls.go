package pairing

import (
	"fmt"
	"sync"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// maxCalls is how many calls' bindings Calls keeps: a party takes part in
// one call at a time, so this is only a bound on what a flood can make it
// hold.
const maxCalls = 64

// Calls is one party's record of its recent calls' bindings: what each
// ring, accept and offer that crossed added to its call. Both ends sign and
// verify over it, and a relay that re-signs needs it too. The zero value is
// ready; it is safe for concurrent use.
type Calls struct {
	mu    sync.Mutex
	calls map[string]Binding
	order []string // call IDs, oldest first
}

// Get returns the call's binding so far: only its CallID for a call not
// seen.
func (c *Calls) Get(callID string) Binding {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.calls[callID]; ok {
		return b
	}
	return Binding{CallID: callID}
}

// Add extends the binding of m's call by m, in the protocol's order — a
// ring starts a call not seen before, an accept or prepare adds its nonce
// to a ring not yet accepted (an accept after a prepare brings the same
// one), an offer its SDP's hash to an accepted or prepared call not yet
// offered, an answer needs an offer — and records it if check (nil: none)
// passes on the extended binding. It returns what m is signed over.
func (c *Calls) Add(m protocol.Message, check func(Binding) error) (Binding, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, seen := c.calls[m.CallID]
	b := old
	var wrong string
	switch m.Type {
	case protocol.TypeRing:
		if seen {
			wrong = "ring of a call seen before"
		}
		b = Binding{CallID: m.CallID, RingNonce: m.Nonce}
	case protocol.TypePrepare:
		switch {
		case old.RingNonce == "" || (old.AcceptNonce != "" && !old.NonceOffered):
			wrong = "prepare of no ring waiting for one"
		case m.Nonce == "":
			// The caller's own call: the callee's offer brings the nonce
			// (again, after a prepared connection that failed).
			b = Binding{CallID: m.CallID, RingNonce: old.RingNonce, Prepared: true}
		case old.Prepared:
			wrong = "second prepare"
		default:
			b.AcceptNonce, b.Prepared = m.Nonce, true
		}
	case protocol.TypeAccept:
		// After a prepare, the accept brings the prepare's nonce: the
		// offer and answer already signed it. After the callee's offer to
		// the caller's prepare, the callee's accept brings that offer's
		// nonce, or a fresh one whose fresh offer follows (its prepared
		// connection was dropped).
		prepared := old.Prepared && m.Nonce == old.AcceptNonce
		if old.RingNonce == "" || (old.AcceptNonce != "" && !prepared && !old.NonceOffered) {
			wrong = "accept of no ring waiting for one"
		}
		if old.NonceOffered && m.Nonce != old.AcceptNonce {
			b = Binding{CallID: m.CallID, RingNonce: old.RingNonce}
		}
		b.AcceptNonce, b.Prepared, b.NonceOffered = m.Nonce, false, false
	case protocol.TypeOffer:
		switch {
		case m.Nonce != "" && (m.Restart != 0 || !old.Prepared || old.AcceptNonce != "" || old.OfferHash != ""):
			wrong = "offer with a nonce for no call its caller prepared"
		case m.Nonce != "":
			b.AcceptNonce, b.NonceOffered = m.Nonce, true
		case m.Restart == 0 && (old.AcceptNonce == "" || old.OfferHash != ""):
			wrong = "offer for no accepted call waiting for one"
		case m.Restart > 0 && (old.OfferHash == "" || m.Restart <= old.Restart):
			// An ICE restart follows the first offer, each with a higher
			// number: an earlier one replayed is refused.
			wrong = "ICE restart offer out of order"
		}
		h, err := SDPHash(m.SDP)
		if err != nil {
			return Binding{}, err
		}
		b.OfferHash, b.Restart = h, m.Restart
	case protocol.TypeAnswer:
		if old.OfferHash == "" {
			wrong = "answer to no offer"
		}
		if m.Restart != old.Restart {
			wrong = "answer to another offer than the last"
		}
	default:
		return Binding{}, fmt.Errorf("pairing: %q is not a signed call message: %w", m.Type, ErrBadProof)
	}
	if wrong != "" {
		return Binding{}, fmt.Errorf("pairing: %s %s: %s: %w", m.Type, m.CallID, wrong, ErrOutOfOrder)
	}
	if check != nil {
		if err := check(b); err != nil {
			return Binding{}, err
		}
	}
	c.put(b)
	return b, nil
}

// Observe records what a ring, accept, prepare or offer adds to its call's binding
// whatever came before: for a party that checks nothing, as a relay or a
// server test's client.
func (c *Calls) Observe(m protocol.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.calls[m.CallID]
	if !ok {
		b = Binding{CallID: m.CallID}
	}
	switch m.Type {
	case protocol.TypeRing:
		b = Binding{CallID: m.CallID, RingNonce: m.Nonce}
	case protocol.TypeAccept, protocol.TypePrepare:
		b.AcceptNonce, b.Prepared, b.NonceOffered = m.Nonce, m.Type == protocol.TypePrepare, false
	case protocol.TypeOffer:
		if m.Nonce != "" {
			b.AcceptNonce, b.NonceOffered = m.Nonce, true
		}
		b.OfferHash, _ = SDPHash(m.SDP)
		b.Restart = m.Restart
	default:
		return
	}
	c.put(b)
}

// Set records b as its call's binding: for a party that carries a call
// over to a new connection (resume) and its bindings with it.
func (c *Calls) Set(b Binding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.put(b)
}

// put records b, forgetting the oldest call beyond maxCalls.
func (c *Calls) put(b Binding) {
	if c.calls == nil {
		c.calls = map[string]Binding{}
	}
	if _, ok := c.calls[b.CallID]; !ok {
		c.order = append(c.order, b.CallID)
		if len(c.order) > maxCalls {
			delete(c.calls, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.calls[b.CallID] = b
}
