package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/mediatest"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// PhoneConfig configures a Phone.
type PhoneConfig struct {
	// API builds peer connections (media.NewAPI with the caller's network
	// settings).
	API *webrtc.API
	// Capture is what the phone sends: normally synthetic camera and
	// microphone in the low-data profile.
	Capture media.CaptureConfig
	Log     *slog.Logger
	// KeepCall: when the connection drops, keep the call (its media goes
	// on) and wait for Resume to hand over a new connection, as the web
	// app does; otherwise the call ends with the connection.
	KeepCall bool
	// Path, if set, carries the call's media: the phone points every ICE
	// candidate through it (the terminal's at the socket the phone sends
	// into, its own at the one the terminal sends into), so a test can
	// impair or replace the path (SetPath).
	Path *mediatest.Link
	// CandidatesFirst: send the phone's ICE candidates before its answer
	// (all of them: the answer waits for gathering to end), as a client
	// may; otherwise they follow the answer, as from the web app.
	CandidatesFirst bool
	// Prepare: on the terminal's ring, ask for its offer at once
	// (prepare), as the web app does, and answer it with no media, so
	// ICE and DTLS are done before Accept; Accept then sends the
	// phone's camera and microphone on that connection. Likewise for the
	// phone's own ring once it rings (ringing): the terminal's accept
	// with the nonce its offer brought sends them on that connection.
	Prepare bool
}

// Phone is the parent's phone in Go, for the end-to-end tests and
// benchmarks: over a rendezvoustest.Client from DialPaired it answers the
// terminal's offers automatically, as the web app does, really decodes the
// terminal's media, and passes every message on to Events so the caller
// can drive and watch the call (ring, accept, hang up).
type Phone struct {
	conn   *rendezvoustest.Client
	cfg    PhoneConfig
	log    *slog.Logger
	events chan protocol.Message

	restarts, restartsRefused atomic.Int64
	path                      atomic.Pointer[mediatest.Link]

	swap chan *rendezvoustest.Client // Resume's new connection (KeepCall)

	mu   sync.Mutex
	ice  map[string]protocol.Message // ring/ringing per call, for ICE servers
	call *PhoneCall
	last *PhoneCall // the ended call, for its stats
	// opening is the camera and microphone opened for a call answered
	// here (Accept) before its offer came, as the web app opens them as
	// the parent answers (app.js enterCall), while the offer is on its way.
	opening *openingMedia
	runCtx  context.Context // Run's
	// preparing is the call prepared (Prepare) and not accepted yet: its
	// offer is answered with no media.
	preparing string
}

// openingMedia is a call's capture being opened.
type openingMedia struct {
	callID  string
	done    chan struct{}
	capture *media.Capture
	err     error
}

// PhoneCall is the phone's side of one call.
type PhoneCall struct {
	ID        string
	pc        *webrtc.PeerConnection
	capture   *media.Capture
	Receiver  *media.Receiver
	connected chan struct{}
	once      sync.Once
	pending   []protocol.Candidate
	answered  bool
	// nonce: the accept nonce the terminal's offer brought (the phone's
	// own call, prepared); "" none.
	nonce string
	// held: the phone's own candidates while its answer (or restart
	// answer) is not sent yet; answering says whether it is being made.
	held      []protocol.Message
	answering bool
	closed    bool
	mu        sync.Mutex
}

// NewPhone wraps a parent connection.
func NewPhone(conn *rendezvoustest.Client, cfg PhoneConfig) *Phone {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Phone{conn: conn, cfg: cfg, log: log.With("component", "phone"),
		events: make(chan protocol.Message, 256), ice: map[string]protocol.Message{}, swap: make(chan *rendezvoustest.Client, 1)}
	p.path.Store(cfg.Path)
	return p
}

// SetPath makes l the media path for the candidates exchanged from now on
// (a new network: only an ICE restart brings the call onto it).
func (p *Phone) SetPath(l *mediatest.Link) { p.path.Store(l) }

// routeSDP points the candidates of the terminal's sdp (fromTerminal) or
// of the phone's own through the path.
func (p *Phone) routeSDP(sdp string, fromTerminal bool) string {
	l := p.path.Load()
	if l == nil {
		return sdp
	}
	if fromTerminal {
		return l.Rewrite(sdp, mediatest.BtoA)
	}
	return l.Rewrite(sdp, mediatest.AtoB)
}

// route points one candidate line through the path: the terminal's
// (fromTerminal) at the socket the phone sends into, the phone's at the
// one the terminal sends into. False: drop it (not UDP).
func (p *Phone) route(line string, fromTerminal bool) (string, bool) {
	l := p.path.Load()
	if l == nil || line == "" {
		return line, true
	}
	d := mediatest.AtoB
	if fromTerminal {
		d = mediatest.BtoA
	}
	return l.RewriteCandidate(line, d)
}

// Resume hands the phone conn, a new login of the same parent, in place of
// the connection it lost, and resumes the call in progress on it.
func (p *Phone) Resume(ctx context.Context, conn *rendezvoustest.Client) error {
	c := p.Current()
	if c == nil {
		return fmt.Errorf("phone: no call to resume")
	}
	p.mu.Lock()
	old := p.conn
	p.mu.Unlock()
	conn.TakeCall(old, c.ID)
	p.swap <- conn
	return conn.Send(ctx, protocol.Message{Type: protocol.TypeResume, CallID: c.ID})
}

// Events delivers every message the server sends, after the phone acted on it.
func (p *Phone) Events() <-chan protocol.Message { return p.events }

// Conn is the signalling connection.
func (p *Phone) Conn() *rendezvoustest.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn
}

// Run handles messages until the connection or ctx ends.
func (p *Phone) Run(ctx context.Context) error {
	p.mu.Lock()
	p.runCtx = ctx
	p.mu.Unlock()
	defer close(p.events)
	defer p.endCall()
	defer func() {
		p.mu.Lock()
		o := p.opening
		p.opening = nil
		p.mu.Unlock()
		o.drop()
	}()
	for {
		m, err := p.Conn().Recv(ctx)
		if err != nil && p.cfg.KeepCall && p.Current() != nil && ctx.Err() == nil {
			p.log.Info("connection lost; the call goes on until it is resumed", "err", err)
			select {
			case c := <-p.swap:
				p.mu.Lock()
				p.conn = c
				p.mu.Unlock()
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err != nil {
			return err
		}
		switch m.Type {
		case protocol.TypeRing, protocol.TypeAccept:
			if err := p.Conn().FromTerminal(m, time.Now()); err != nil {
				// As the web app: a ring or accept the terminal did not sign
				// is not the child; it is dropped, and a call it claims ends.
				p.log.Warn("dropping a message not from the paired terminal", "type", m.Type, "err", err)
				p.Conn().Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: m.CallID, Reason: protocol.ReasonFailed})
				continue
			}
		}
		switch m.Type {
		case protocol.TypeRing, protocol.TypeRinging:
			p.mu.Lock()
			p.ice[m.CallID] = m
			prepare := p.cfg.Prepare
			if prepare {
				p.preparing = m.CallID
			}
			p.mu.Unlock()
			if prepare {
				p.Conn().Send(ctx, protocol.Message{Type: protocol.TypePrepare, CallID: m.CallID})
			}
		case protocol.TypeAccept:
			p.openMedia(m.CallID) // the child answered the phone's ring
			p.mu.Lock()
			prepared := p.preparing == m.CallID
			p.preparing = ""
			c := p.call
			p.mu.Unlock()
			if prepared && c != nil && c.ID == m.CallID && c.nonce == m.Nonce {
				// The prepared connection carries the call: camera and
				// microphone join it. An accept with another nonce: the
				// terminal dropped it, and a fresh offer follows.
				go p.sendMedia(ctx, c)
			}
		case protocol.TypeOffer:
			if m.Restart > 0 {
				if err := p.restart(ctx, m); err != nil {
					p.restartsRefused.Add(1)
					p.log.Warn("refusing an ICE restart offer", "restart", m.Restart, "err", err)
				}
				break
			}
			if err := p.answer(ctx, m); err != nil {
				p.log.Error("cannot answer offer", "err", err)
				p.Conn().Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: m.CallID, Reason: protocol.ReasonFailed})
			}
		case protocol.TypeResumed:
			// As the web app: the relay may have restarted with the
			// server, so the terminal's ICE restart must gather with the
			// fresh TURN credentials resumed brings.
			if c := p.Current(); c != nil && c.ID == m.CallID && len(m.ICEServers) > 0 {
				cfg := c.pc.GetConfiguration()
				cfg.ICEServers = iceServers(m.ICEServers)
				if err := c.pc.SetConfiguration(cfg); err != nil {
					p.log.Warn("keeping the old ICE servers", "err", err)
				}
			}
		case protocol.TypeCandidate:
			if c := p.Current(); c != nil && c.ID == m.CallID {
				cand := *m.Candidate
				var ok bool
				if cand.Candidate, ok = p.route(cand.Candidate, true); ok {
					c.addCandidate(cand)
				}
			}
		case protocol.TypeHangup:
			if c := p.Current(); c != nil && c.ID == m.CallID {
				p.endCall()
			}
		}
		select {
		case p.events <- m:
		default:
			p.log.Warn("phone event queue full; dropping", "type", m.Type)
		}
	}
}

// Current is the call in progress, or nil.
func (p *Phone) Current() *PhoneCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.call
}

// Last is the most recent call that ended, or nil.
func (p *Phone) Last() *PhoneCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Ring calls the terminal and returns the new call's ID.
func (p *Phone) Ring(ctx context.Context) (string, error) {
	id := protocol.NewID()
	return id, p.Conn().Send(ctx, protocol.Message{Type: protocol.TypeRing, CallID: id})
}

// Accept answers the terminal's ring.
func (p *Phone) Accept(ctx context.Context, callID string) error {
	if err := p.Conn().Send(ctx, protocol.Message{Type: protocol.TypeAccept, CallID: callID}); err != nil {
		return err
	}
	p.mu.Lock()
	prepared := p.preparing == callID
	p.preparing = ""
	c := p.call
	p.mu.Unlock()
	p.openMedia(callID)
	if prepared && c != nil && c.ID == callID {
		// The offer was answered while the phone rang: camera and
		// microphone join that connection as they open.
		go p.sendMedia(ctx, c)
	}
	return nil
}

// sendMedia puts the capture opened at Accept on c's senders, which the
// answer made with stand-in tracks (a browser's senders with no track).
// It runs aside: opening a capture takes a while.
func (p *Phone) sendMedia(ctx context.Context, c *PhoneCall) {
	capture, err := p.takeMedia(ctx, c.ID)
	if err != nil {
		p.log.Error("phone: open media for the prepared call", "err", err)
		return
	}
	c.mu.Lock()
	if c.capture != nil || c.closed {
		c.mu.Unlock()
		capture.Close()
		return
	}
	c.capture = capture
	c.mu.Unlock()
	for _, tr := range capture.Tracks() {
		for _, s := range c.pc.GetSenders() {
			if s.Track() != nil && s.Track().Kind() == tr.Kind() {
				if err := s.ReplaceTrack(tr); err != nil {
					p.log.Error("phone: send media on the prepared call", "kind", tr.Kind().String(), "err", err)
					return
				}
			}
		}
	}
	p.adapt(c.pc, capture)
	capture.RequestKeyFrame()
}

// adapt makes capture follow pc's bandwidth estimate, as a browser's
// congestion control does.
func (p *Phone) adapt(pc *webrtc.PeerConnection, capture *media.Capture) {
	if bw := media.BandwidthOf(pc); bw != nil {
		if _, err := capture.StartABR(media.ABRConfig{Ladder: media.ABRLadder(), Bandwidth: bw, Log: p.log}); err != nil {
			p.log.Warn("phone: adaptive bitrate not started", "err", err)
		}
	}
}

// openMedia starts opening the capture for callID, for answer to take.
func (p *Phone) openMedia(callID string) {
	o := &openingMedia{callID: callID, done: make(chan struct{})}
	p.mu.Lock()
	old, ctx := p.opening, p.runCtx
	p.opening = o
	p.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	old.drop()
	go func() {
		defer close(o.done)
		g, err := media.NewGate(answered{}, answered{})
		if err == nil {
			o.capture, err = g.Open(ctx, p.cfg.Capture)
		}
		o.err = err
	}()
}

// drop closes a capture opened for a call that never took it.
func (o *openingMedia) drop() {
	if o == nil {
		return
	}
	go func() {
		<-o.done
		if o.capture != nil {
			o.capture.Close()
		}
	}()
}

// takeMedia is the capture openMedia opened for callID, or one opened now.
func (p *Phone) takeMedia(ctx context.Context, callID string) (*media.Capture, error) {
	p.mu.Lock()
	o := p.opening
	if o != nil && o.callID == callID {
		p.opening = nil
	}
	p.mu.Unlock()
	if o == nil || o.callID != callID {
		g, err := media.NewGate(answered{}, answered{})
		if err != nil {
			return nil, err
		}
		return g.Open(ctx, p.cfg.Capture)
	}
	select {
	case <-o.done:
		return o.capture, o.err
	case <-ctx.Done():
		o.drop()
		return nil, ctx.Err()
	}
}

// Hangup ends, cancels or declines a call.
func (p *Phone) Hangup(ctx context.Context, callID, reason string) error {
	p.endCall()
	return p.Conn().Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: callID, Reason: reason})
}

// restart answers the terminal's ICE restart offer for the call in
// progress, as the web app does: only an offer the paired terminal signed
// over this call's binding and a restart number above the last (checked
// by FromTerminal) is applied; anything else changes nothing.
func (p *Phone) restart(ctx context.Context, offer protocol.Message) error {
	c := p.Current()
	if c == nil || c.ID != offer.CallID {
		return fmt.Errorf("phone: restart offer for no call in progress")
	}
	if err := p.Conn().FromTerminal(offer, time.Now()); err != nil {
		return err
	}
	c.mu.Lock()
	c.answering = true
	c.mu.Unlock()
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: p.routeSDP(offer.SDP, true)}); err != nil {
		c.mu.Lock()
		c.answering = false // nothing was gathered for an offer not applied
		c.mu.Unlock()
		return fmt.Errorf("phone: restart offer: %w", err)
	}
	ans, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("phone: restart answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("phone: restart local description: %w", err)
	}
	p.restarts.Add(1)
	return p.sendAnswer(ctx, c, gathered, protocol.Message{Type: protocol.TypeAnswer, CallID: c.ID, SDP: p.routeSDP(ans.SDP, false), Restart: offer.Restart})
}

// Restarts counts the ICE restart offers the phone answered, and refused.
func (p *Phone) Restarts() (answered, refused int64) {
	return p.restarts.Load(), p.restartsRefused.Load()
}

func (p *Phone) answer(ctx context.Context, offer protocol.Message) error {
	if err := p.Conn().FromTerminal(offer, time.Now()); err != nil {
		return err
	}
	p.mu.Lock()
	ring := p.ice[offer.CallID]
	p.mu.Unlock()
	cfg := webrtc.Configuration{ICEServers: iceServers(ring.ICEServers)}
	if ring.ICETransportPolicy == "relay" {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	p.mu.Lock()
	prepared := p.preparing == offer.CallID
	p.mu.Unlock()
	var capture *media.Capture
	if !prepared {
		var err error
		if capture, err = p.takeMedia(ctx, offer.CallID); err != nil {
			return fmt.Errorf("phone: open media: %w", err)
		}
	}
	pc, err := p.cfg.API.NewPeerConnection(cfg)
	if err != nil {
		capture.Close()
		return fmt.Errorf("phone: peer connection: %w", err)
	}
	c := &PhoneCall{ID: offer.CallID, pc: pc, capture: capture, connected: make(chan struct{}), nonce: offer.Nonce}
	c.Receiver = media.NewReceiver(media.ReceiverConfig{WriteRTCP: pc.WriteRTCP, Log: p.log})
	pc.OnTrack(func(t *webrtc.TrackRemote, rr *webrtc.RTPReceiver) { c.Receiver.Handle(t, rr) })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			c.once.Do(func() { close(c.connected) })
			c.mu.Lock()
			capture := c.capture
			c.mu.Unlock()
			if capture != nil {
				capture.RequestKeyFrame()
			}
		}
	})
	c.answering = true
	pc.OnICECandidate(func(ic *webrtc.ICECandidate) {
		if ic == nil {
			return
		}
		j := ic.ToJSON()
		line, ok := p.route(j.Candidate, false)
		if !ok {
			return
		}
		m := protocol.Message{Type: protocol.TypeCandidate, CallID: c.ID, Candidate: &protocol.Candidate{
			Candidate: line, SDPMid: j.SDPMid, SDPMLineIndex: j.SDPMLineIndex, UsernameFragment: j.UsernameFragment}}
		c.mu.Lock()
		if c.answering {
			c.held = append(c.held, m)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		p.Conn().Send(context.Background(), m)
	})
	p.mu.Lock()
	old := p.call
	p.call = c
	// Accept came between the offer and now, and found no call to send
	// on: the media join once the answer is out (else Accept does it).
	late := prepared && p.preparing != offer.CallID
	p.mu.Unlock()
	if old != nil {
		old.close()
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: p.routeSDP(offer.SDP, true)}); err != nil {
		return fmt.Errorf("phone: remote offer: %w", err)
	}
	// Send our media on the transceivers the offer created, as a browser does,
	// and follow the connection's bandwidth estimate, as a browser's
	// congestion control does. A prepared call answers with stand-ins, as
	// a browser's senders with no track yet: sendMedia replaces them.
	tracks, err := standIns(offer.SDP)
	if capture != nil {
		tracks = capture.Tracks()
	}
	if err != nil {
		return err
	}
	for _, tr := range tracks {
		if err := attach(pc, tr); err != nil {
			return err
		}
	}
	if capture != nil {
		p.adapt(pc, capture)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("phone: create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("phone: set local description: %w", err)
	}
	c.mu.Lock()
	c.answered = true
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, cand := range pending {
		c.addCandidate(cand)
	}
	if err := p.sendAnswer(ctx, c, gathered, protocol.Message{Type: protocol.TypeAnswer, CallID: c.ID, SDP: p.routeSDP(ans.SDP, false)}); err != nil {
		return err
	}
	if late {
		go p.sendMedia(ctx, c)
	}
	return nil
}

// sendAnswer sends the answer and the candidates held meanwhile: after it,
// as the web app does, or before it with CandidatesFirst, once gathering
// has ended. The answer's SDP is the one made before gathering, so the
// candidates travel only in their own messages.
func (p *Phone) sendAnswer(ctx context.Context, c *PhoneCall, gathered <-chan struct{}, answer protocol.Message) error {
	if p.cfg.CandidatesFirst {
		select {
		case <-gathered:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !p.cfg.CandidatesFirst {
		if err := p.Conn().Send(ctx, answer); err != nil {
			return err
		}
	}
	for _, m := range c.held {
		if err := p.Conn().Send(ctx, m); err != nil {
			return err
		}
	}
	c.held, c.answering = nil, false
	if p.cfg.CandidatesFirst {
		return p.Conn().Send(ctx, answer)
	}
	return nil
}

// attach sends a local track. After the remote offer is set, pion's AddTrack
// reuses the offer's transceiver of the same kind, as a browser does.
func attach(pc *webrtc.PeerConnection, tr webrtc.TrackLocal) error {
	if _, err := pc.AddTrack(tr); err != nil {
		return fmt.Errorf("phone: add %s track: %w", tr.Kind(), err)
	}
	return nil
}

func (c *PhoneCall) addCandidate(cand protocol.Candidate) {
	if cand.Candidate == "" {
		return
	}
	c.mu.Lock()
	if !c.answered {
		c.pending = append(c.pending, cand)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: cand.Candidate, SDPMid: cand.SDPMid,
		SDPMLineIndex: cand.SDPMLineIndex, UsernameFragment: cand.UsernameFragment})
}

// Connected is closed when media connects.
func (c *PhoneCall) Connected() <-chan struct{} { return c.connected }

// WireBytes counts the SRTP/SRTCP/DTLS bytes the call's transport received
// and sent: what the parent's data plan pays for, less UDP/IP headers.
func (c *PhoneCall) WireBytes() (received, sent uint64) {
	for _, s := range c.pc.GetStats() {
		if t, ok := s.(webrtc.TransportStats); ok {
			received += t.BytesReceived
			sent += t.BytesSent
		}
	}
	return received, sent
}

// Stats are what the phone received from the terminal.
func (c *PhoneCall) Stats() media.Stats { return c.Receiver.Stats() }

func (c *PhoneCall) close() {
	c.mu.Lock()
	c.closed = true
	capture := c.capture
	c.mu.Unlock()
	if capture != nil {
		capture.Detach(c.pc) // see media.Capture.Detach
	}
	c.pc.Close()
	if capture != nil {
		capture.Close()
	}
}

// standIns are tracks that send nothing, one per media section of offer
// (video, audio): a prepared call's answer sends on them until the
// capture replaces them.
func standIns(offer string) ([]webrtc.TrackLocal, error) {
	var out []webrtc.TrackLocal
	for _, k := range []struct{ kind, mime string }{{"video", webrtc.MimeTypeH264}, {"audio", webrtc.MimeTypeOpus}} {
		if !strings.Contains(offer, "m="+k.kind+" ") {
			continue
		}
		tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: k.mime}, k.kind, "standin")
		if err != nil {
			return nil, fmt.Errorf("phone: stand-in %s track: %w", k.kind, err)
		}
		out = append(out, tr)
	}
	return out, nil
}

func (p *Phone) endCall() {
	p.mu.Lock()
	c := p.call
	p.call = nil
	p.mu.Unlock()
	if c != nil {
		c.close()
		p.mu.Lock()
		p.last = c
		p.mu.Unlock()
	}
}

// answered is the parent's side of the never-silent gate: the parent has
// accepted this call on the phone's own screen, which shows its camera is
// on (a browser does), so there is no light to turn on and no sound to play.
// (This client stands in for that phone in tests, with synthetic sources.)
type answered struct{}

func (answered) InCall() error                  { return nil }
func (answered) Announce(context.Context) error { return nil }

// iceServers are the server's TURN servers as pion takes them.
func iceServers(in []protocol.ICEServer) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(in))
	for _, s := range in {
		out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}
