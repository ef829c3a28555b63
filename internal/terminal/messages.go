package terminal

import (
	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// message turns a server message into machine events.
func (t *Terminal) message(m protocol.Message) {
	switch m.Type {
	case protocol.TypePresence:
		t.peerOnline = *m.PeerOnline
		t.log.Info("parent presence", "online", t.peerOnline)
	case protocol.TypeRing:
		if err := t.ringFromParent(m); err != nil {
			// Not the paired parent (or a replay): the child hears nothing.
			t.log.Warn("refusing a ring not signed by the paired parent", "call_id", m.CallID, "err", err)
			t.send(protocol.Message{Type: protocol.TypeHangup, CallID: m.CallID, Reason: protocol.ReasonDecline})
			return
		}
		t.ice[m.CallID] = iceInfo{m.ICEServers, m.ICETransportPolicy}
		after := t.autoAnswerAfter(t.d.Now())
		// auto_answer_after=0s: the child's press answers (outside a
		// reunion window); more: answered by itself after that much ringing.
		t.log.Info("ring from the paired parent", "call_id", m.CallID, "auto_answer_after", after)
		t.step(call.IncomingRing{CallID: m.CallID, AutoAnswerAfter: after})
	case protocol.TypeRinging:
		t.ice[m.CallID] = iceInfo{m.ICEServers, m.ICETransportPolicy}
		t.log.Info("parent's phone is ringing", "call_id", m.CallID)
	case protocol.TypeAccept:
		if m.CallID != t.m.CallID || t.m.State != call.Calling {
			t.log.Warn("accept for no call of ours that is ringing", "call_id", m.CallID)
			return
		}
		if err := t.acceptFromParent(m); err != nil {
			// Ends nothing: the child's ring goes on for the real parent
			// (a stolen server login, a forgery or a replay gets here).
			t.log.Warn("ignoring an accept not signed by the paired parent", "call_id", m.CallID, "err", err)
			return
		}
		t.step(call.PeerAccepted{CallID: m.CallID})
	case protocol.TypePrepare:
		t.onPrepare(m)
	case protocol.TypeHangup:
		t.step(call.PeerHangup{CallID: m.CallID, Reason: m.Reason})
	case protocol.TypeResumed:
		if m.CallID != t.m.CallID {
			t.log.Warn("resumed for no call of ours", "call_id", m.CallID)
			return
		}
		if len(m.ICEServers) > 0 {
			t.ice[m.CallID] = iceInfo{m.ICEServers, m.ICETransportPolicy}
		}
		t.log.Info("call resumed", "call_id", m.CallID, "parent_back", *m.PeerOnline)
		t.step(call.Resumed{CallID: m.CallID, PeerOnline: *m.PeerOnline})
	case protocol.TypeAnswer, protocol.TypeCandidate:
		if m.CallID != t.m.CallID {
			t.log.Warn("media signalling for another call", "type", m.Type, "call_id", m.CallID)
			return
		}
		s := t.sess
		if s == nil || s.callID != m.CallID {
			s = t.prep // the call rings, prepared (prepare.go)
		}
		if s == nil || s.callID != m.CallID {
			// The loop sends the offer as it makes the session, so an answer
			// or candidate without one is for nothing of ours.
			t.log.Warn("media signalling before our offer", "type", m.Type, "call_id", m.CallID)
			return
		}
		if m.Type == protocol.TypeCandidate {
			if err := s.candidate(m.Candidate); err != nil {
				t.log.Warn("bad candidate", "err", err)
			}
			return
		}
		if s.restarts > 0 || m.Restart > 0 {
			if s == t.sess {
				t.restartAnswer(m)
			}
			return
		}
		if err := t.answerFromParent(m, s); err != nil {
			// A server in the middle that changed any byte of the answer,
			// or replayed one, ends up here: no media to anyone but the
			// paired parent. The SDP applied below is the one verified.
			t.log.Warn("refusing an answer not signed by the paired parent", "call_id", m.CallID, "err", err)
			t.mediaFailed(s)
			return
		}
		if err := s.answer(m.SDP); err != nil {
			t.log.Warn("bad answer", "err", err)
			t.mediaFailed(s)
			return
		}
		// For the parent's call only now, for an answer signed over this
		// terminal's own accept nonce, do camera and microphone open
		// (with the light and the sound); the child's own call opened
		// them at the parent's verified accept (startMedia), and a
		// prepared call's open only once the accept comes.
		if s == t.sess && !s.opening {
			t.openCapture(m.CallID)
		}
	case protocol.TypePairRequest:
		t.onPairRequest(m)
	case protocol.TypePairConfirm:
		t.onPairConfirm(m)
	case protocol.TypePaired:
		t.onPaired(m)
	case protocol.TypeError:
		t.log.Warn("server error", "code", m.Code, "message", m.Text, "ref_type", m.RefType, "call_id", m.CallID)
		// A refused ring or accept means the server has no such call (busy,
		// not paired, gone): the call is over. Other errors (a candidate
		// over the limit, say) leave the call alone.
		if m.CallID != "" && m.CallID == t.m.CallID && (m.RefType == protocol.TypeRing || m.RefType == protocol.TypeAccept) {
			t.step(call.PeerHangup{CallID: m.CallID, Reason: m.Code})
		}
		if m.CallID != "" && m.CallID == t.m.CallID && m.RefType == protocol.TypeResume {
			t.step(call.ResumeRefused{CallID: m.CallID})
		}
		if m.CallID != "" && m.CallID == t.m.CallID && m.RefType == protocol.TypeOffer {
			t.offerRefused(m)
		}
	case protocol.TypeUnpaired:
		t.unpairConfirmed()
	case protocol.TypeCallLog, protocol.TypeChallenge, protocol.TypeWelcome:
		// Not for terminals.
	default:
		t.log.Warn("unexpected message", "type", m.Type)
	}
}

// restartAnswer takes the parent's answer to an ICE restart offer: it must
// carry the number of the newest restart and sign it, both nonces and the
// hash of exactly that offer (pairing.Binding.Restart). Anything else — an
// earlier answer replayed, a forgery, an answer to an older restart — is
// refused and changes nothing: the media keeps its parameters, and the
// restart timer ends a call whose real answer never comes.
func (t *Terminal) restartAnswer(m protocol.Message) {
	if m.Restart != t.sess.restarts {
		t.log.Warn("refusing an answer for another ICE restart", "call_id", m.CallID, "restart", m.Restart, "ours", t.sess.restarts)
		t.restartRefused++
		return
	}
	if err := t.answerFromParent(m, t.sess); err != nil {
		t.log.Warn("refusing an ICE restart answer not signed by the paired parent", "call_id", m.CallID, "restart", m.Restart, "err", err)
		t.restartRefused++
		return
	}
	if err := t.sess.answer(m.SDP); err != nil {
		t.log.Warn("bad ICE restart answer", "call_id", m.CallID, "err", err)
		t.step(call.MediaFailed{CallID: m.CallID})
		return
	}
	t.log.Info("ICE restart answered", "call_id", m.CallID, "restart", m.Restart)
}

// mediaFailed ends the call's media set-up: the call fails, or, for a
// prepared connection, that connection is dropped and the call rings on
// (the accept makes a fresh offer).
func (t *Terminal) mediaFailed(s *session) {
	if s == t.prep {
		t.dropPrepared("a bad answer")
		return
	}
	t.step(call.MediaFailed{CallID: s.callID})
}

// offerRefused takes the server's refusal of an offer of ours (over its
// rate, say): the parent never saw it, so no answer will come. A prepared
// connection is dropped and the call rings on (the accept makes a fresh
// offer); the call's own first offer fails the call now, as the child
// would otherwise watch "connecting" until ConnectTimeout. An ICE
// restart's offer is left to the restart timer: the path may come back
// by itself.
func (t *Terminal) offerRefused(m protocol.Message) {
	switch s := t.prep; {
	case s != nil && s.callID == m.CallID:
		t.dropPrepared("the server refused its offer: " + m.Code)
	case t.sess != nil && t.sess.callID == m.CallID && t.sess.restarts == 0 && t.sess.pc.RemoteDescription() == nil:
		t.log.Warn("the server refused the call's offer: the call fails", "call_id", m.CallID, "code", m.Code)
		t.mediaFailed(t.sess)
	}
}
