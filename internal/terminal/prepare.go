package terminal

import (
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Preparing the child's call (docs/protocol.md, "Preparing a call"): while
// the parent's phone rings, a tab of the parent's may send a signed
// prepare with the nonce its accept will bring. The terminal answers it
// with its offer, signed over the ring's nonce and that one, and ICE and
// DTLS are done before anyone answers, so the first picture follows the
// accept by about the camera's first frame and one way across. Nothing is
// sent on that connection — its senders have no track — until the accept
// brings the prepare's nonce: then the call takes it (takePrepared), and
// the connect sound and the camera start as in any child's call.
//
// The parent may prepare the call it rang, too (onOwnPrepare): its prepare
// carries no nonce, and is signed over its ring's nonce alone. The terminal
// chooses its accept nonce then, and its offer brings it; the child's
// press sends the accept with that nonce and takes the prepared
// connection, and the camera opens after the connect sound at once, since
// the parent's answer, signed over that fresh nonce, came while it rang.

// maxPrepares bounds the connections a ringing call makes for prepares:
// one per tab that prepares in turn (the one before it closed).
const maxPrepares = 3

// prepareLog is which prepares the ringing call took (their nonces).
type prepareLog struct {
	callID string
	nonces map[string]bool
}

// onPrepare takes a prepare of the child's ringing call: checked against
// the paired parent's key over this call's ring nonce, then answered with
// a fresh offer (replacing one made for an earlier prepare: a tab that
// closed, another that prepared since).
func (t *Terminal) onPrepare(m protocol.Message) {
	if m.Nonce == "" {
		t.onOwnPrepare(m)
		return
	}
	if m.CallID != t.m.CallID || t.m.State != call.Calling || !t.m.Outgoing || t.conn == nil {
		t.log.Warn("prepare for no call of ours that is ringing", "call_id", m.CallID)
		return
	}
	bind, err := t.prepareFromParent(m)
	if err != nil {
		t.log.Warn("ignoring a prepare not signed by the paired parent", "call_id", m.CallID, "err", err)
		return
	}
	// A replay, or more tabs than a family has: the server lets one tab
	// prepare at a time, so only a server gone wrong sends these.
	if !t.prepares.take(m.CallID, m.Nonce) {
		t.log.Warn("ignoring a prepare replayed or over the limit", "call_id", m.CallID, "limit", maxPrepares)
		return
	}
	t.prepareSession(bind, "call prepared: offer sent while the phone rings")
}

// onOwnPrepare takes the parent's prepare of the call it rang, which rings
// here: signed by the paired parent over its ring's nonce alone (the
// prepare has no nonce), then answered with an offer that brings the
// accept nonce chosen now. Again (the parent's prepared connection
// failed): a fresh nonce and offer, at most maxPrepares a call.
func (t *Terminal) onOwnPrepare(m protocol.Message) {
	b := t.tr.calls[m.CallID]
	if m.CallID != t.m.CallID || t.m.State != call.Ringing || t.m.Outgoing || t.conn == nil ||
		b == nil || b.RingNonce == "" || b.AcceptNonce != "" {
		t.log.Warn("prepare for no call of the parent's that rings here", "call_id", m.CallID)
		return
	}
	if err := t.verifyParent(m, pairing.Binding{CallID: m.CallID, RingNonce: b.RingNonce}); err != nil {
		t.log.Warn("ignoring a prepare not signed by the paired parent", "call_id", m.CallID, "err", err)
		return
	}
	// A prepare of one's own call carries no nonce: its signature tells
	// one from another (a replayed one is the same).
	if !t.prepares.take(m.CallID, m.Signature) {
		t.log.Warn("ignoring a prepare replayed or over the limit", "call_id", m.CallID, "limit", maxPrepares)
		return
	}
	nb := *b
	nb.AcceptNonce, nb.NonceOffered = pairing.NewNonce(), true
	t.prepareSession(nb, "the parent's call prepared: offer sent while the child's terminal rings")
}

// take records a prepare of callID known by key (its nonce, or its
// signature); false: taken before, or the call took maxPrepares already.
func (l *prepareLog) take(callID, key string) bool {
	if l.callID != callID {
		*l = prepareLog{callID: callID}
	}
	if l.nonces[key] || len(l.nonces) >= maxPrepares {
		return false
	}
	if l.nonces == nil {
		l.nonces = map[string]bool{}
	}
	l.nonces[key] = true
	return true
}

// prepareSession replaces the prepared session with one made over bind,
// which sends its offer.
func (t *Terminal) prepareSession(bind pairing.Binding, why string) {
	t.dropPrepared("a new prepare")
	s, err := t.newSession(bind, t.m.VoiceOnly, true)
	if err != nil {
		// The call goes on: its offer is made at the accept.
		t.log.Warn("cannot prepare the call", "call_id", bind.CallID, "err", err)
		return
	}
	t.log.Info(why, "call_id", bind.CallID)
	t.prep = s
}

// preparedNonce is the accept nonce the prepared session's offer brought
// for the parent's call callID, "" if there is none: the child's accept
// brings it, and takes that session.
func (t *Terminal) preparedNonce(callID string) string {
	if s := t.prep; s != nil && s.callID == callID && s.bind.NonceOffered {
		return s.bind.AcceptNonce
	}
	return ""
}

// prepareFromParent checks a prepare: signed by the paired parent over the
// ring's nonce (which only this terminal chose) and its own. It returns the
// binding the prepared offer signs; the call's own binding takes the nonce
// only from the accept.
func (t *Terminal) prepareFromParent(m protocol.Message) (pairing.Binding, error) {
	b := t.tr.calls[m.CallID]
	if b == nil || b.RingNonce == "" || b.AcceptNonce != "" {
		return pairing.Binding{}, fmt.Errorf("terminal: prepare %s: not a ring of ours waiting: %w", m.CallID, ErrProtocol)
	}
	nb := *b
	nb.AcceptNonce = m.Nonce
	if err := t.verifyParent(m, nb); err != nil {
		return pairing.Binding{}, err
	}
	return nb, nil
}

// takePrepared hands over the prepared session for the accepted call bound
// by b, if the accept brought the prepare's nonce and the call's profile is
// the one it was made with; otherwise it drops it (another tab accepted:
// that tab gets a fresh offer) and returns nil.
func (t *Terminal) takePrepared(b pairing.Binding) *session {
	s := t.prep
	if s == nil {
		return nil
	}
	same := s.callID == b.CallID && s.bind.AcceptNonce == b.AcceptNonce && s.bind.RingNonce == b.RingNonce
	if !same || s.voiceOnly != t.m.CallVoiceOnly || s.profile.Name != t.callProfile().Name {
		t.dropPrepared("accepted with another nonce or profile")
		return nil
	}
	t.prep = nil
	s.muted.Store(false)
	s.markStage("accept")
	t.log.Info("the accepted call takes its prepared connection", "call_id", b.CallID, "state", s.pc.ConnectionState().String())
	return s
}

// dropPrepared closes the prepared session, counting what it carried.
func (t *Terminal) dropPrepared(why string) {
	s := t.prep
	if s == nil {
		return
	}
	t.prep = nil
	t.log.Info("dropping the prepared call connection", "call_id", s.callID, "why", why)
	t.countCall(s, time.Now())
	s.close()
}

// prepStale drops a prepared session whose call no longer rings (it was
// declined, cancelled, unanswered, cut off): after every step.
func (t *Terminal) prepStale() {
	ringing := t.m.State == call.Calling || t.m.State == call.Ringing
	if s := t.prep; s != nil && (s.callID != t.m.CallID || !ringing) {
		t.dropPrepared("the call no longer rings")
	}
}

// preparedState takes the prepared session's peer connection state: one
// that fails is dropped (the accept makes a fresh offer); a connected one
// waits for the accept.
func (t *Terminal) preparedState(s *session, st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		s.markStage("connected")
	case webrtc.PeerConnectionStateFailed:
		t.dropPrepared("its connection failed")
	}
}
