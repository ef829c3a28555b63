package terminal

import (
	"context"
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// do carries out one of the machine's actions. It never runs the machine:
// what an action gives rise to is raised (loop.go) and runs after it.
func (t *Terminal) do(a call.Action) {
	switch a := a.(type) {
	case call.SendRing:
		m, err := t.signRing(a.CallID)
		t.sendSigned(a.CallID, m, err)
	case call.SendAccept:
		m, err := t.signAccept(a.CallID)
		t.sendSigned(a.CallID, m, err)
	case call.SendHangup:
		t.send(protocol.Message{Type: protocol.TypeHangup, CallID: a.CallID, Reason: a.Reason})
	case call.StartMedia:
		t.startMedia(a.CallID, a.Cue)
	case call.StopMedia:
		if t.mediaStop != nil {
			t.mediaStop()
			t.mediaStop = nil
		}
		if t.sess != nil {
			t.countCall(t.sess, time.Now())
			t.sess.close()
			t.setSession(nil)
		}
	case call.StartTimer:
		after := a.After
		if (a.Timer == call.TimerResume || a.Timer == call.TimerRestart) && t.cfg.ResumeGrace > 0 {
			after = t.cfg.ResumeGrace
		}
		t.timers.start(time.Now(), a.Timer, a.Token, after)
	case call.SendResume:
		t.log.Info("resuming the call on the new connection", "call_id", a.CallID)
		t.send(protocol.Message{Type: protocol.TypeResume, CallID: a.CallID})
	case call.RestartMedia:
		t.restartMedia(a.CallID)
	case call.PairAccept:
		t.stopCue() // the pairing ring
		t.acceptPairing(a.PairID)
	case call.PairReject:
		t.stopCue()
		delete(t.tr.pairReq, a.PairID)
		t.send(protocol.Message{Type: protocol.TypePairReject, PairID: a.PairID, Reason: a.Reason})
	case call.PlayCue:
		t.lastCue = a.Cue
		t.log.Debug("sound cue", "cue", a.Cue)
		if t.d.Speaker != nil {
			t.d.Speaker.PlayCue(string(a.Cue))
		}
	case call.CallEnded:
		t.callEnded(a)
	default:
		t.log.Error("unknown action", "action", fmt.Sprintf("%T", a))
	}
}

// showLEDs shows the machine's pattern and remembers it for the gate.
func (t *Terminal) showLEDs() {
	p := t.m.Pattern()
	if err := t.d.LEDs.Show(p); err != nil {
		t.log.Error("cannot show lights", "pattern", p, "err", err)
		t.lit = lights{}
		return
	}
	t.lit = lights{pattern: p, callID: t.m.CallID}
}

// stopCue silences a repeating cue (the ring) where no new cue replaces it.
func (t *Terminal) stopCue() {
	if t.d.Speaker != nil {
		t.d.Speaker.StopCue()
	}
}

// callEnded logs the call, in the call log and in the daemon's log.
func (t *Terminal) callEnded(a call.CallEnded) {
	delete(t.ice, a.CallID)
	delete(t.tr.calls, a.CallID)
	t.calls++
	rec := terminalstore.CallRecord{CallID: a.CallID, Outgoing: a.Outgoing, Answered: a.Answered, Outcome: a.Outcome, EndedAt: time.Now().UTC()}
	t.logCall(rec)
	// What arrived from the parent: the field's only view of a call's
	// quality, and what the kernel-in-the-loop call test checks.
	rx := t.callStats(a.CallID)
	t.log.Info("call ended", "call_id", a.CallID, "outcome", a.Outcome, "outgoing", a.Outgoing,
		"rx_video_frames", rx.VideoFramesDecoded, "rx_video_size", fmt.Sprintf("%dx%d", rx.VideoWidth, rx.VideoHeight),
		"rx_video_decode_errors", rx.VideoDecodeErrors, "rx_audio_samples", rx.AudioSamplesDecoded,
		"rx_audio_frame", rx.AudioFrame())
}

// startMedia turns the in-call light on and makes the call's session,
// which sends the signed offer — or takes the one made for the parent's
// prepare while the call rang, if the accept brought the prepare's nonce
// (prepare.go). Camera and microphone open (openCapture) at once for the
// child's own call, whose parent's accept was verified over this call's
// ring nonce, and for the parent's call once its answer is verified over
// the terminal's accept nonce.
func (t *Terminal) startMedia(callID string, cue call.Cue) {
	if t.conn == nil {
		t.raise(call.MediaFailed{CallID: callID})
		return
	}
	// The machine is already in Connecting, whose light is "in call"; show
	// it now, before anything opens (step would show it after the actions).
	t.showLEDs()
	b := t.tr.calls[callID]
	if b == nil || b.RingNonce == "" || b.AcceptNonce == "" {
		t.log.Error("media for a call whose ring and accept were not both signed", "call_id", callID)
		t.raise(call.MediaFailed{CallID: callID})
		return
	}
	s := t.takePrepared(*b)
	if s == nil {
		var err error
		if s, err = t.newSession(*b, t.m.CallVoiceOnly, false); err != nil {
			t.log.Error("media session failed", "call_id", callID, "err", err)
			t.raise(call.MediaFailed{CallID: callID})
			return
		}
	}
	t.setSession(s)
	t.mediaCue = cue
	if s.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
		t.raise(call.MediaUp{CallID: callID}) // connected while the phone rang
	}
	if !t.m.Outgoing && s.pc.RemoteDescription() != nil {
		// The parent's call, prepared: its answer, signed over the accept
		// nonce chosen for the prepare, came while it rang. The connect
		// sound, then the camera, start now.
		t.openCapture(callID)
	}
	if t.m.Outgoing {
		// The child's own call: the parent's accept signed this call's
		// fresh ring nonce (acceptFromParent), which no accept recorded
		// from another call does. The connect sound, then the camera,
		// start now, while the offer, the answer, ICE and DTLS go their
		// way (or are done: a prepared call): the sound no longer waits
		// for the answer, nor the first picture for the camera's first
		// frame after it.
		t.openCapture(callID)
	}
}

// newSession makes a session for the call bound by bind (its nonces),
// which sends its signed offer; voiceOnly: the data budget keeps the call
// to voice; muted: the parent's voice is not played until unmuted.
func (t *Terminal) newSession(bind pairing.Binding, voiceOnly, muted bool) (*session, error) {
	info := t.ice[bind.CallID]
	var onAudio func([]int16)
	if t.d.Speaker != nil {
		onAudio = t.d.Speaker.WritePCM
	}
	deps := sessionDeps{
		api: t.api, onAudio: onAudio, loopback: t.cfg.LoopbackOnly, log: t.log, cert: t.tr.cert,
		sign: t.sign, bind: bind,
		// The session sends on whatever connection is up: a call outlives
		// its signalling connection (call.Machine.Resuming).
		send:  t.send,
		post:  t.postNow,
		muted: muted,
	}
	profile := t.callProfile()
	if voiceOnly && profile.Video {
		profile = media.AudioOnly
	}
	if profile.Name != t.cfg.Capture.Profile.Name {
		st := t.budgetState()
		t.log.Info("the data budget lowers the call", "call_id", bind.CallID, "profile", profile.Name,
			"configured", t.cfg.Capture.Profile.Name, "used", st.Used, "total", st.Total)
	}
	deps.voiceOnly = voiceOnly
	return startSession(bind.CallID, info.servers, info.policy, profile, deps)
}

// restartMedia makes the call's signed ICE restart offer, with the TURN
// servers of the last resumed (the relay may have restarted with the
// server). A restart that cannot be made fails the call.
func (t *Terminal) restartMedia(callID string) {
	if t.sess == nil || t.sess.callID != callID {
		return
	}
	t.sess.meter.Read(t.sess.pc) // the old path's pair goes: keep its count
	if err := t.sess.restart(t.ice[callID].servers); err != nil {
		t.log.Error("ICE restart failed", "call_id", callID, "err", err)
		t.raise(call.MediaFailed{CallID: callID})
	}
}

// peerStateChanged takes the session's peer connection state from pion.
func (t *Terminal) peerStateChanged(s *session, st webrtc.PeerConnectionState) {
	if s == t.prep {
		t.preparedState(s, st)
		return
	}
	if s != t.sess {
		return // an ended call's
	}
	switch st {
	case webrtc.PeerConnectionStateDisconnected:
		t.step(call.MediaDown{CallID: s.callID})
	case webrtc.PeerConnectionStateConnected:
		if s == t.sess {
			s.requestKeyFrame() // the first key frame may have gone out before SRTP was ready
			s.markStage("connected")
		}
		t.step(call.MediaUp{CallID: s.callID})
	case webrtc.PeerConnectionStateFailed:
		t.step(call.MediaFailed{CallID: s.callID})
	}
}

// openCapture announces the call and opens camera and microphone through
// the gate, off the loop (the connect sound and opening a camera take a
// while), and reports back with captureReady.
func (t *Terminal) openCapture(callID string) {
	if t.mediaStop != nil {
		t.mediaStop()
	}
	ctx, cancel := context.WithTimeout(t.ctx, call.ConnectTimeout)
	t.mediaStop = cancel
	cue := t.mediaCue
	profile := t.cfg.Capture.Profile
	if t.sess != nil && t.sess.callID == callID {
		profile = t.sess.profile
		t.sess.opening = true
		t.sess.markStage("sound")
	}
	// The gate finds the in-call light in the published view: publish
	// it now, in the step that turned it on (startMedia), not after it.
	t.publish()
	go func() {
		defer cancel()
		c, err := t.openMedia(ctx, callID, cue, profile)
		select {
		case t.events <- captureReady{callID, c, err}:
		case <-t.ctx.Done():
			if c != nil {
				c.Close()
			}
		}
	}()
}

// captureOpened takes the gate's camera and microphone into the call they
// were opened for, or closes them when that call is over.
func (t *Terminal) captureOpened(ev captureReady) {
	current := t.sess != nil && t.sess.callID == ev.callID && ev.callID == t.m.CallID
	if ev.err != nil {
		if !current {
			t.log.Info("media start of an ended call stopped", "call_id", ev.callID, "err", ev.err)
			return
		}
		t.log.Error("camera and microphone did not open", "call_id", ev.callID, "err", ev.err)
		t.step(call.MediaFailed{CallID: ev.callID})
		return
	}
	if !current {
		t.log.Info("media start of an ended call stopped: closing what opened", "call_id", ev.callID)
		ev.c.Close() // the call ended while they were opening
		return
	}
	t.sess.markStage("camera_open")
	if err := t.sess.attach(ev.c); err != nil {
		t.log.Error("cannot send camera and microphone", "call_id", ev.callID, "err", err)
		t.step(call.MediaFailed{CallID: ev.callID})
	}
}

// callStats returns what the session of call id received; zero when that
// call never had media.
func (t *Terminal) callStats(id string) media.Stats {
	for _, s := range []*session{t.sess, t.last} {
		if s != nil && s.callID == id {
			return s.stats()
		}
	}
	return media.Stats{}
}

// setSession makes s the current session; the previous one is kept for its
// final stats.
func (t *Terminal) setSession(s *session) {
	if t.sess != nil {
		t.last = t.sess
	}
	t.sess = s
}
