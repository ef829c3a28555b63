package terminal

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/internal/terminal/databudget"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// session is the media side of one call: the peer connection, the
// receiver of the parent's media and, once the parent's answer is verified,
// camera and microphone. The terminal always makes the offer.
//
// The offer goes out first, with a sender for each kind of media but
// nothing to send: camera and microphone open (through the gate, with light
// and sound) only for a message signed over a nonce this terminal made
// for the call, so nothing opens for a ring, accept or answer recorded
// from another call, even inside a reunion window. For the child's own
// call that is the parent's accept (it signs this call's ring nonce), and
// they open while offer, answer, ICE and DTLS go their way; for the
// parent's call, the answer (it signs this terminal's accept nonce). Media
// reaches only the DTLS peer whose fingerprint the verified answer names.
//
// A session belongs to the loop: only the loop calls its methods. pion
// calls back on goroutines of its own; those callbacks post events
// (localCandidate, peerState, sourceLost) and touch nothing here.
type session struct {
	callID   string
	pc       *webrtc.PeerConnection
	receiver *media.Receiver
	log      *slog.Logger
	loopback bool
	send     func(protocol.Message)
	post     func(event) // to the loop, never waiting
	// profile is the call's: its rates are what the offer asks the
	// parent's phone to send (askRates).
	profile media.Profile

	// offerHash is pairing.SDPHash of the newest offer as sent: the
	// parent's answer must sign it. restarts is that offer's ICE restart
	// number (0: the first offer): the answer must carry and sign it.
	offerHash string
	restarts  int
	sign      func(protocol.Message, pairing.Binding) (protocol.Message, error)
	// bind is the call's binding the session was made under (both
	// nonces): its offers sign it (with their restart number), and so
	// must the parent's answers.
	bind pairing.Binding
	// voiceOnly: made with no video section (the data budget).
	voiceOnly bool
	// muted: the parent's voice is not played (a prepared call's session
	// until the parent's accept: a page that sent its microphone early
	// would otherwise speak over the child's ringback).
	muted atomic.Bool

	capture *media.Capture // nil until attach
	// opening: the gate was asked to open camera and microphone for this
	// session (openCapture), which it does once per call.
	opening bool
	abr     *media.ABR // the capture's, once it sends (adapt)
	// limit is what the data budget lets the call send since it ran low
	// during the call (limitTo); zero: the call's profile.
	limit  media.Profile
	remote int // remote candidates accepted
	// early holds the parent's candidates that came before its answer (a
	// client may send them first; pion takes none before the remote
	// description): they are added once the answer is applied.
	early  []webrtc.ICECandidateInit
	local  int // local candidates gathered
	closed bool
	done   chan struct{} // closed by close

	// meter counts what the call carries; counted is what of it the
	// month's usage has, as of countedAt (budget.go).
	meter     *databudget.Meter
	counted   databudget.Counts
	countedAt time.Time

	// stages are when the call's media reached each step, from the offer
	// on (markStage): logged once the terminal sends and the path is up,
	// so a call whose picture came late says where it waited.
	stages []stage
	logged bool
}

// stage is one step of a call's media start.
type stage struct {
	name string
	at   time.Time
}

// markStage notes that the call's media reached step name now (the first
// time only) and, once it both sends and is connected, logs every step's
// time since the offer in one line.
func (s *session) markStage(name string) {
	for _, st := range s.stages {
		if st.name == name {
			return
		}
	}
	s.stages = append(s.stages, stage{name, time.Now()})
	if s.logged || !s.reached("sending") || !s.reached("connected") {
		return
	}
	s.logged = true
	attrs := make([]any, 0, 2*len(s.stages))
	for _, st := range s.stages[1:] {
		attrs = append(attrs, st.name+"_ms", st.at.Sub(s.stages[0].at).Milliseconds())
	}
	s.log.Info("call media stages (ms after the offer)", attrs...)
}

func (s *session) reached(name string) bool {
	for _, st := range s.stages {
		if st.name == name {
			return true
		}
	}
	return false
}

// sessionDeps is what a session needs from the terminal.
type sessionDeps struct {
	api      *webrtc.API
	loopback bool
	send     func(protocol.Message)
	// post hands an event to the loop without waiting: pion's callbacks
	// call it.
	post func(event)
	// onAudio, if set, plays the parent's decoded voice (the speaker);
	// muted: not until unmute (a prepared call's, until the accept).
	onAudio func([]int16)
	muted   bool
	log     *slog.Logger
	// cert is the terminal's persistent DTLS certificate, whose
	// fingerprint the parent pinned at pairing; sign signs the offer.
	cert webrtc.Certificate
	sign func(protocol.Message, pairing.Binding) (protocol.Message, error)
	// bind is the call's binding (both nonces) the offers sign.
	bind pairing.Binding
	// voiceOnly: the data budget keeps the call to voice: the offer has
	// no video section at all, so the parent's phone sends none either.
	voiceOnly bool
}

// startSession builds the peer connection, with a sender for video (when
// sendVideo) and for audio and receivers for both, and sends the signed
// offer. What happens later (candidates gathered, the connection up or
// failed) comes to the loop as events through d.post.
func startSession(callID string, ice []protocol.ICEServer, policy string, profile media.Profile, d sessionDeps) (*session, error) {
	s := &session{callID: callID, log: d.log.With("call_id", callID), loopback: d.loopback, send: d.send,
		post: d.post, sign: d.sign, bind: d.bind, voiceOnly: d.voiceOnly, profile: profile, done: make(chan struct{}),
		meter: databudget.NewMeter(), countedAt: time.Now()}
	sendVideo := profile.Video
	cfg := webrtc.Configuration{ICEServers: toICEServers(ice), SDPSemantics: webrtc.SDPSemanticsUnifiedPlan,
		Certificates: []webrtc.Certificate{d.cert}}
	if policy == "relay" {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := d.api.NewPeerConnection(cfg)
	if err != nil {
		return nil, fmt.Errorf("terminal: call %s: peer connection: %w", callID, err)
	}
	s.pc = pc
	onAudio := d.onAudio
	if onAudio != nil && d.muted {
		s.muted.Store(true)
		onAudio = func(pcm []int16) {
			if !s.muted.Load() {
				d.onAudio(pcm)
			}
		}
	}
	s.receiver = media.NewReceiver(media.ReceiverConfig{WriteRTCP: pc.WriteRTCP, OnAudio: onAudio, Log: s.log,
		MaxBitrate: PhoneRateCap(profile)})

	// Video first, as the sections of a browser's offer come: the parent's
	// video is received even when we send none (audio-only profile).
	videoDir := webrtc.RTPTransceiverDirectionSendrecv
	if !sendVideo {
		videoDir = webrtc.RTPTransceiverDirectionRecvonly
	}
	type section struct {
		kind webrtc.RTPCodecType
		dir  webrtc.RTPTransceiverDirection
	}
	sections := []section{{webrtc.RTPCodecTypeVideo, videoDir}, {webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverDirectionSendrecv}}
	if d.voiceOnly {
		// A unit without a camera still receives the parent's face (a
		// recvonly section); a spent budget receives none.
		sections = sections[1:]
	}
	for _, tr := range sections {
		if _, err := pc.AddTransceiverFromKind(tr.kind, webrtc.RTPTransceiverInit{Direction: tr.dir}); err != nil {
			s.close()
			return nil, fmt.Errorf("terminal: call %s: add %s transceiver: %w", callID, tr.kind, err)
		}
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, rr *webrtc.RTPReceiver) {
		s.log.Info("receiving parent's track", "kind", t.Kind().String(), "codec", t.Codec().MimeType)
		if err := s.receiver.Handle(t, rr); err != nil {
			s.log.Warn("parent's track ended", "kind", t.Kind().String(), "err", err)
		}
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		s.post(localCandidate{s, protocol.Message{Type: protocol.TypeCandidate, CallID: callID, Candidate: &protocol.Candidate{
			Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment,
		}}})
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.log.Info("peer connection", "state", st.String())
		switch st {
		case webrtc.PeerConnectionStateConnected, webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected:
			s.post(peerState{s, st})
		}
	})

	offer, err := pc.CreateOffer(nil)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("terminal: call %s: create offer: %w", callID, err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		s.close()
		return nil, fmt.Errorf("terminal: call %s: set local description: %w", callID, err)
	}
	sdp, err := askRates(pc.LocalDescription().SDP, profile)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("terminal: call %s: %w", callID, err)
	}
	if s.offerHash, err = pairing.SDPHash(sdp); err != nil {
		s.close()
		return nil, fmt.Errorf("terminal: call %s: own offer: %w", callID, err)
	}
	om := protocol.Message{Type: protocol.TypeOffer, CallID: callID, SDP: sdp}
	if d.bind.NonceOffered {
		// The parent prepared the call it rang: the offer brings the
		// accept nonce it signs (prepare.go).
		om.Nonce = d.bind.AcceptNonce
	}
	om, err = s.signOffer(om)
	if err != nil {
		s.close()
		return nil, err
	}
	// Candidates gathered meanwhile wait in the loop's queue: they go out
	// after the offer (sendCandidate).
	d.send(om)
	s.markStage("offer")
	return s, nil
}

// signOffer signs one of the session's offers over its binding and, for
// an ICE restart's, its number.
func (s *session) signOffer(m protocol.Message) (protocol.Message, error) {
	b := s.bind
	b.Restart = m.Restart
	return s.sign(m, b)
}

// restart makes and sends a signed ICE restart offer: new ICE credentials,
// so both ends gather and check paths afresh (a new network, a relay that
// restarted), with servers, if any, as the new TURN servers. The DTLS
// session and the media tracks stay; the parent's answer must sign this
// offer's hash and number (messages.go).
func (s *session) restart(servers []protocol.ICEServer) error {
	if s.closed {
		return fmt.Errorf("terminal: call %s: restart of a closed session: %w", s.callID, ErrProtocol)
	}
	if s.restarts >= protocol.MaxRestarts {
		return fmt.Errorf("terminal: call %s: %d ICE restarts: %w", s.callID, s.restarts, ErrProtocol)
	}
	if len(servers) > 0 {
		cfg := s.pc.GetConfiguration()
		cfg.ICEServers = toICEServers(servers)
		if err := s.pc.SetConfiguration(cfg); err != nil {
			s.log.Warn("ICE restart: keeping the old ICE servers", "err", err)
		}
	}
	// The last restart's offer may never have been answered (lost, or its
	// answer refused): pion takes no second local offer then (and no
	// rollback), so that offer goes out again under the new number; its
	// ICE credentials are still fresh, as nothing answered them.
	if s.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		offer, err := s.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
		if err != nil {
			return fmt.Errorf("terminal: call %s: ICE restart offer: %w", s.callID, err)
		}
		if err := s.pc.SetLocalDescription(offer); err != nil {
			return fmt.Errorf("terminal: call %s: ICE restart: set local description: %w", s.callID, err)
		}
	}
	sdp, err := askRates(s.pc.LocalDescription().SDP, s.profile)
	if err != nil {
		return fmt.Errorf("terminal: call %s: ICE restart: %w", s.callID, err)
	}
	h, err := pairing.SDPHash(sdp)
	if err != nil {
		return fmt.Errorf("terminal: call %s: own restart offer: %w", s.callID, err)
	}
	om, err := s.signOffer(protocol.Message{Type: protocol.TypeOffer, CallID: s.callID, SDP: sdp, Restart: s.restarts + 1})
	if err != nil {
		return err
	}
	s.restarts++
	s.offerHash = h
	s.local = 0 // a new socket's candidates count afresh at the server
	s.log.Info("ICE restart offer", "restart", s.restarts)
	s.send(om)
	return nil
}

// attach sends cap's camera and microphone in the call: called once the
// parent's verified answer has been applied and the gate has announced and
// opened them. The session owns cap from here on, also when attach fails.
func (s *session) attach(cap *media.Capture) error {
	if s.closed || s.capture != nil {
		cap.Close()
		return fmt.Errorf("terminal: call %s: media for a session that is closed or has media: %w", s.callID, ErrProtocol)
	}
	s.capture = cap
	go func() {
		select {
		case err := <-cap.Lost():
			s.post(sourceLost{callID: s.callID, err: err})
		case <-s.done:
		}
	}()
	for _, track := range cap.Tracks() {
		sender := s.senderFor(track.Kind())
		if sender == nil {
			return fmt.Errorf("terminal: call %s: no %s sender in the offer", s.callID, track.Kind())
		}
		if err := sender.ReplaceTrack(track); err != nil {
			return fmt.Errorf("terminal: call %s: send %s: %w", s.callID, track.Kind(), err)
		}
	}
	s.adapt(cap)
	s.requestKeyFrame()
	s.markStage("sending")
	return nil
}

// adapt makes cap follow the connection's bandwidth estimate along the
// ladder (media.ABR): bitrate, frame rate, picture size, audio only, and
// back. The capture stops it when it is detached or closed. A call that
// cannot adapt still goes on at its profile's rate.
func (s *session) adapt(cap *media.Capture) {
	bw := media.BandwidthOf(s.pc)
	if bw == nil {
		s.log.Warn("no bandwidth estimate for the call: sending at the profile's rate")
		return
	}
	abr, err := cap.StartABR(media.ABRConfig{Ladder: media.ABRLadder(), Bandwidth: bw, Log: s.log})
	if err != nil {
		s.log.Warn("adaptive bitrate not started: sending at the profile's rate", "err", err)
		return
	}
	s.abr = abr
	if s.limit.Name != "" {
		abr.Limit(s.limit) // the budget ran low before the camera opened
	}
}

// limitTo keeps what the call sends at or below p from now on: the data
// budget ran low during the call (budget.go). It never raises a limit;
// it reports whether this one lowered the call's.
func (s *session) limitTo(p media.Profile) bool {
	cur := s.profile
	if s.limit.Name != "" {
		cur = s.limit
	}
	if databudget.Cap(cur, p).Name == cur.Name {
		return false // nothing to lower: voice already, or at or below p
	}
	s.limit = p
	if s.abr != nil {
		s.abr.Limit(p)
	}
	return true
}

// senderFor is the sender of the offer's transceiver of kind, or nil.
func (s *session) senderFor(kind webrtc.RTPCodecType) *webrtc.RTPSender {
	for _, tr := range s.pc.GetTransceivers() {
		if tr.Kind() == kind && tr.Sender() != nil {
			return tr.Sender()
		}
	}
	return nil
}

func (s *session) requestKeyFrame() {
	if c := s.capture; c != nil {
		if _, err := c.RequestKeyFrame(); err != nil {
			s.log.Debug("key frame request", "err", err)
		}
	}
}

// sendCandidate sends one of our ICE candidates to the parent. The loop
// calls it for each localCandidate event, always after the offer has gone
// out (startSession sends it before the loop takes the next event).
func (s *session) sendCandidate(m protocol.Message) {
	if s.closed {
		return
	}
	// The server refuses more than MaxCandidates per side; the first ones
	// (host, then relay) are the useful ones anyway.
	if s.local++; s.local > protocol.MaxCandidates {
		return
	}
	s.send(m)
}

// answer applies the parent's SDP answer.
func (s *session) answer(sdp string) error {
	err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
	if err != nil {
		return fmt.Errorf("terminal: call %s: remote answer: %w", s.callID, err)
	}
	for _, c := range s.early {
		if err := s.pc.AddICECandidate(c); err != nil {
			s.log.Warn("bad candidate", "err", fmt.Errorf("terminal: call %s: add early candidate: %w", s.callID, err))
		}
	}
	s.early = nil
	s.markStage("answer")
	return nil
}

// candidate adds one of the parent's ICE candidates. In loopback-only mode
// (tests, the local demo) a candidate for any other address is dropped, so
// the terminal never sends a connectivity check off the machine.
func (s *session) candidate(c *protocol.Candidate) error {
	if c.Candidate == "" {
		return nil // end of candidates
	}
	if s.loopback && !loopbackCandidate(c.Candidate) {
		s.log.Debug("dropping non-loopback candidate in loopback-only mode", "candidate", c.Candidate)
		return nil
	}
	s.remote++
	if s.remote > protocol.MaxCandidates {
		return fmt.Errorf("terminal: call %s: more than %d remote candidates: %w", s.callID, protocol.MaxCandidates, ErrProtocol)
	}
	init := webrtc.ICECandidateInit{
		Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment,
	}
	if s.pc.RemoteDescription() == nil {
		s.early = append(s.early, init) // bounded by the count above
		return nil
	}
	if err := s.pc.AddICECandidate(init); err != nil {
		return fmt.Errorf("terminal: call %s: add candidate: %w", s.callID, err)
	}
	return nil
}

// loopbackCandidate reports whether an SDP candidate line's address is a
// loopback IP ("candidate:<foundation> <component> <proto> <prio> <addr> <port> typ ...").
func loopbackCandidate(line string) bool {
	f := strings.Fields(line)
	if len(f) < 6 {
		return false
	}
	ip := net.ParseIP(f[4])
	return ip != nil && ip.IsLoopback()
}

func (s *session) stats() media.Stats {
	if s == nil || s.receiver == nil {
		return media.Stats{}
	}
	return s.receiver.Stats()
}

// closeTimeout bounds how long a session may take to close before the
// terminal says so in its log.
const closeTimeout = 10 * time.Second

// close ends the session: tracks off (see media.Capture.Detach), peer
// connection, then camera and microphone. It never blocks its caller (the
// loop): a library hanging in Close would otherwise leave the child with a
// dead button until someone pulls the plug, so the closing runs aside and a
// timer logs a close that takes too long.
func (s *session) close() {
	if s.closed {
		return
	}
	s.closed = true
	close(s.done)
	if s.receiver != nil {
		s.receiver.Stop()
	}
	capture := s.capture
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.pc != nil {
			if capture != nil {
				capture.Detach(s.pc)
			}
			if err := s.pc.Close(); err != nil {
				s.log.Warn("close peer connection", "err", err)
			}
		}
		if capture != nil {
			if err := capture.Close(); err != nil {
				s.log.Warn("close capture", "err", err)
			}
		}
	}()
	go func() {
		select {
		case <-done:
		case <-time.After(closeTimeout):
			s.log.Error("media session is stuck closing; its camera and microphone may stay busy", "after", closeTimeout)
		}
	}()
}

func toICEServers(in []protocol.ICEServer) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(in))
	for _, s := range in {
		out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}
