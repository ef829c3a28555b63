package pairing

import (
	"errors"
	"testing"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestCallsAddOrder: Add takes a call's messages only in the protocol's
// order and records only what passes its check; Observe takes anything.
func TestCallsAddOrder(t *testing.T) {
	id := protocol.NewID()
	sdp := "v=0\r\na=fingerprint:" + testFP + "\r\n"
	ring := protocol.Message{Type: protocol.TypeRing, CallID: id, Nonce: NewNonce()}
	accept := protocol.Message{Type: protocol.TypeAccept, CallID: id, Nonce: NewNonce()}
	offer := protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp}
	answer := protocol.Message{Type: protocol.TypeAnswer, CallID: id, SDP: sdp}
	prepare := protocol.Message{Type: protocol.TypePrepare, CallID: id, Nonce: NewNonce()}
	acceptPrepared := protocol.Message{Type: protocol.TypeAccept, CallID: id, Nonce: prepare.Nonce}
	// The caller prepares its own call; the callee's offer brings its nonce.
	callerPrepare := protocol.Message{Type: protocol.TypePrepare, CallID: id}
	nonceOffer := protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp, Nonce: NewNonce()}
	acceptOffered := protocol.Message{Type: protocol.TypeAccept, CallID: id, Nonce: nonceOffer.Nonce}
	restartWithNonce := protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp, Nonce: NewNonce(), Restart: 1}
	refuse := func(Binding) error { return ErrBadProof }
	tests := []struct {
		name   string
		before []protocol.Message // added first, each must pass
		m      protocol.Message
		check  func(Binding) error
		want   error // nil: added
	}{
		{"ring", nil, ring, nil, nil},
		{"ring seen before", []protocol.Message{ring}, ring, nil, ErrOutOfOrder},
		{"accept of no ring", nil, accept, nil, ErrOutOfOrder},
		{"accept", []protocol.Message{ring}, accept, nil, nil},
		{"second accept", []protocol.Message{ring, accept}, accept, nil, ErrOutOfOrder},
		{"offer before the accept", []protocol.Message{ring}, offer, nil, ErrOutOfOrder},
		{"offer", []protocol.Message{ring, accept}, offer, nil, nil},
		{"second offer", []protocol.Message{ring, accept, offer}, offer, nil, ErrOutOfOrder},
		{"answer to no offer", []protocol.Message{ring, accept}, answer, nil, ErrOutOfOrder},
		{"answer", []protocol.Message{ring, accept, offer}, answer, nil, nil},
		{"accept its check refuses", []protocol.Message{ring}, accept, refuse, ErrBadProof},
		{"prepare of no ring", nil, prepare, nil, ErrOutOfOrder},
		{"prepare", []protocol.Message{ring}, prepare, nil, nil},
		{"prepare after the accept", []protocol.Message{ring, accept}, prepare, nil, ErrOutOfOrder},
		{"second prepare", []protocol.Message{ring, prepare}, prepare, nil, ErrOutOfOrder},
		{"offer after the prepare", []protocol.Message{ring, prepare}, offer, nil, nil},
		{"answer before the accept", []protocol.Message{ring, prepare, offer}, answer, nil, nil},
		{"accept with the prepare's nonce", []protocol.Message{ring, prepare, offer, answer}, acceptPrepared, nil, nil},
		{"accept with another nonce than the prepare's", []protocol.Message{ring, prepare, offer}, accept, nil, ErrOutOfOrder},
		{"second accept after a prepare", []protocol.Message{ring, prepare, acceptPrepared}, acceptPrepared, nil, ErrOutOfOrder},
		{"the caller's prepare", []protocol.Message{ring}, callerPrepare, nil, nil},
		{"the caller's prepare of no ring", nil, callerPrepare, nil, ErrOutOfOrder},
		{"the caller's prepare after the accept", []protocol.Message{ring, accept}, callerPrepare, nil, ErrOutOfOrder},
		{"offer with a nonce", []protocol.Message{ring, callerPrepare}, nonceOffer, nil, nil},
		{"offer with a nonce, not prepared", []protocol.Message{ring}, nonceOffer, nil, ErrOutOfOrder},
		{"offer with a nonce after the accept", []protocol.Message{ring, accept}, nonceOffer, nil, ErrOutOfOrder},
		{"offer with a nonce after the callee's prepare", []protocol.Message{ring, prepare}, nonceOffer, nil, ErrOutOfOrder},
		{"second offer with a nonce", []protocol.Message{ring, callerPrepare, nonceOffer}, nonceOffer, nil, ErrOutOfOrder},
		{"restart offer with a nonce", []protocol.Message{ring, callerPrepare}, restartWithNonce, nil, ErrOutOfOrder},
		{"answer to the offer with a nonce", []protocol.Message{ring, callerPrepare, nonceOffer}, answer, nil, nil},
		{"accept with the offer's nonce", []protocol.Message{ring, callerPrepare, nonceOffer, answer}, acceptOffered, nil, nil},
		// Its prepared connection dropped, the callee accepts with a fresh
		// nonce, and a fresh first offer follows.
		{"accept with a fresh nonce after the offer's", []protocol.Message{ring, callerPrepare, nonceOffer, answer}, accept, nil, nil},
		{"fresh offer after the accept with a fresh nonce", []protocol.Message{ring, callerPrepare, nonceOffer, answer, accept}, offer, nil, nil},
		{"prepared again after the offer", []protocol.Message{ring, callerPrepare, nonceOffer}, callerPrepare, nil, nil},
		{"the callee's prepare after the caller's", []protocol.Message{ring, callerPrepare}, prepare, nil, ErrOutOfOrder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Calls
			for _, m := range tc.before {
				if _, err := c.Add(m, nil); err != nil {
					t.Fatalf("Add(%s) before: %v", m.Type, err)
				}
			}
			was := c.Get(id)
			b, err := c.Add(tc.m, tc.check)
			if !errors.Is(err, tc.want) || (tc.want != nil && err == nil) {
				t.Fatalf("Add(%s) = %v, want %v", tc.m.Type, err, tc.want)
			}
			if err != nil {
				if got := c.Get(id); got != was {
					t.Errorf("a refused %s changed the binding: %+v, was %+v", tc.m.Type, got, was)
				}
				return
			}
			if got := c.Get(id); got != b {
				t.Errorf("binding recorded %+v, Add returned %+v", got, b)
			}
		})
	}

	var c Calls
	c.Observe(accept) // out of order: taken all the same
	c.Observe(offer)
	if b := c.Get(id); b.AcceptNonce != accept.Nonce || b.OfferHash == "" || b.RingNonce != "" {
		t.Errorf("Observe recorded %+v", b)
	}
}

// TestCallsForgetsOldest: a flood of rings does not grow the record past
// maxCalls, and the newest calls are kept.
func TestCallsForgetsOldest(t *testing.T) {
	var c Calls
	var ids []string
	for range maxCalls + 10 {
		id := protocol.NewID()
		ids = append(ids, id)
		c.Observe(protocol.Message{Type: protocol.TypeRing, CallID: id, Nonce: NewNonce()})
	}
	if n := len(c.calls); n != maxCalls {
		t.Errorf("Calls holds %d calls, want %d", n, maxCalls)
	}
	if b := c.Get(ids[0]); b.RingNonce != "" {
		t.Error("the oldest call is still held")
	}
	if b := c.Get(ids[len(ids)-1]); b.RingNonce == "" {
		t.Error("the newest call was forgotten")
	}
}
