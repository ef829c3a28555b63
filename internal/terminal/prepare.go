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
	if m.CallID != t.m.CallID || t.m.State != call.Calling || !t.m.Outgoing || t.conn == nil {
		t.log.Warn("prepare for no call of ours that is ringing", "call_id", m.CallID)
		return
	}
	bind, err := t.prepareFromParent(m)
	if err != nil {
		t.log.Warn("ignoring a prepare not signed by the paired parent", "call_id", m.CallID, "err", err)
		return
	}
	if t.prepares.callID != m.CallID {
		t.prepares = prepareLog{callID: m.CallID}
	}
	if t.prepares.nonces[m.Nonce] || len(t.prepares.nonces) >= maxPrepares {
		// A replay, or more tabs than a family has: the server lets one
		// tab prepare at a time, so only a server gone wrong sends these.
		t.log.Warn("ignoring a prepare replayed or over the limit", "call_id", m.CallID, "limit", maxPrepares)
		return
	}
	if t.prepares.nonces == nil {
		t.prepares.nonces = map[string]bool{}
	}
	t.prepares.nonces[m.Nonce] = true
	t.dropPrepared("a new prepare")
	s, err := t.newSession(bind, t.m.VoiceOnly, true)
	if err != nil {
		// The call goes on: its offer is made at the accept.
		t.log.Warn("cannot prepare the call", "call_id", m.CallID, "err", err)
		return
	}
	t.log.Info("call prepared: offer sent while the phone rings", "call_id", m.CallID)
	t.prep = s
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
	if s := t.prep; s != nil && (s.callID != t.m.CallID || t.m.State != call.Calling) {
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
