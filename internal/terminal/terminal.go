// Package terminal runs the child's terminal: it keeps the signalling
// connection to the rendezvous server up, feeds button presses and server
// messages into the call state machine (internal/call), and carries out the
// machine's actions — messages, timers, media sessions, lights, the call log.
// One goroutine (Run's loop) owns all of that state.
package terminal

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Config is what the daemon's config file and flags decide.
type Config struct {
	// ServerURL is the rendezvous server's signalling endpoint, ws(s)://host/ws.
	ServerURL string
	// ServerRoots, when set, are the only CAs a wss:// server's certificate
	// may chain to (a programme running its own CA); nil uses the system's.
	ServerRoots *x509.CertPool
	// PublicURL is the server's address as a parent's phone sees it; the
	// pairing URL starts with it.
	PublicURL string
	// Capture says which camera, microphone and profile calls use.
	Capture media.CaptureConfig
	// LoopbackOnly restricts ICE to 127.0.0.1 (tests and the local demo).
	LoopbackOnly bool
	// ICE fits calls to a unit behind a static port forward (see ICEConfig).
	ICE ICEConfig
	// MinBackoff and MaxBackoff bound the reconnect delay.
	MinBackoff, MaxBackoff time.Duration
	Version                string
	// PairWindow is how long the pairing window stays open (zero:
	// DefaultPairWindow); PairWindowFailures wrong proofs close it early
	// (zero: DefaultPairWindowFailures). See pairwindow.go.
	PairWindow         time.Duration
	PairWindowFailures int
	// AutoAnswer is the reunion window; the zero value is off.
	AutoAnswer AutoAnswer
}

// LEDs is the part of device.LEDs the terminal uses.
type LEDs interface{ Show(device.Pattern) error }

// Speaker plays the short sound cues that, with the lights, are all a child
// who cannot read has to go by.
type Speaker interface {
	// PlayCue starts a cue and returns at once.
	PlayCue(cue string)
	// PlayCueWait plays a cue and returns when it has played to its end (or
	// ctx ended): the connect sound must have been heard before the camera
	// opens (see gate.go).
	PlayCueWait(ctx context.Context, cue string) error
}

// Deps are the terminal's hardware and storage.
type Deps struct {
	Store   *terminalstore.Store
	Buttons <-chan device.ButtonEvent
	LEDs    LEDs
	// Speaker may be nil (no speaker fitted): calls are then announced by
	// the light alone.
	Speaker Speaker
	// OnCaptureOpen, if set, is called by the media gate after the light
	// and the sound, right before camera and microphone open: tests record
	// what the terminal shows and plays then (media.Gate.Opening).
	OnCaptureOpen func(media.CaptureConfig)
	// ButtonStuck, if set, reports a button held down far longer than any
	// child would: the terminal then shows "needs repair" until it is freed.
	ButtonStuck func() bool
	// Watchdog, if set, is petted from the loop's health tick and from
	// nowhere else, so a loop that stops turning reboots the board.
	Watchdog interface{ Pet() error }
	Log      *slog.Logger
	// OnStatus, if set, is called (from the loop) whenever Status changes.
	OnStatus func(Status)
	// Now, if set, replaces time.Now as the local wall clock the reunion
	// windows are read on.
	Now func() time.Time
}

// Status is a snapshot for the device panel, the technician and tests.
type Status struct {
	DeviceID   string      `json:"device_id"`
	State      string      `json:"state"`
	Pattern    string      `json:"pattern"`
	Online     bool        `json:"online"`
	Paired     bool        `json:"paired"`
	Pairable   bool        `json:"pairable"` // the pairing window is open
	ParentID   string      `json:"parent_id,omitempty"`
	PeerOnline bool        `json:"peer_online"`
	PairingURL string      `json:"pairing_url,omitempty"`
	CallID     string      `json:"call_id,omitempty"`
	LastCue    string      `json:"last_cue,omitempty"`
	Fault      string      `json:"fault,omitempty"` // what needs repair, e.g. "camera missing"
	Received   media.Stats `json:"received"`        // the parent's media in the current or last call
	Calls      int         `json:"calls"`           // calls this run has ended
}

// Terminal is the running terminal.
type Terminal struct {
	cfg  Config
	d    Deps
	log  *slog.Logger
	key  *ecdsa.PrivateKey
	cert []byte // device certificate (DER), sent with every login
	// dialer is the HTTP client every signalling dial uses: made once, from
	// cfg.ServerRoots (nil: the default client and the system's CAs).
	dialer   *http.Client
	deviceID string
	secret   pairing.Secret // guarded by mu: a factory reset replaces it
	api      *webrtc.API
	iceNet   *iceNet // sockets of a fixed ICE port, closed when Run ends

	events chan any

	// Owned by the loop.
	m      call.Machine
	conn   *conn
	sess   *session
	ice    map[string]iceInfo
	tr     trust
	window pairWindow
	timers timers // the machine's timers (timers.go)
	// queued and stepping: events raised during a step wait for it (step).
	queued   []call.Event
	stepping bool
	// unpairPending: a factory reset the server has not confirmed yet.
	unpairPending bool
	peerOnline    bool
	parentID      string
	calls         int
	// cameraLostAt is when a camera last failed mid-call (zero: never);
	// faults is what checkHealth found wrong last time.
	cameraLostAt time.Time
	faults       []string
	// refused is set by connectLoop while the server answers our login
	// with auth_failed: a unit it will not accept needs a technician.
	refused   atomic.Bool
	mediaStop context.CancelFunc // ends the opening of the current call's camera and microphone
	mediaCue  call.Cue           // the current call's connect sound, played when they open
	ctx       context.Context    // Run's, for goroutines that report back

	lit     lights                   // what the LEDs show, for the gate
	lastCue atomic.Pointer[call.Cue] // set by the loop and by the gate

	mu     sync.Mutex // guards status, sess and last for readers outside the loop
	status Status
	last   *session // the ended call's session, for its stats
}

type iceInfo struct {
	servers []protocol.ICEServer
	policy  string
}

// Loop-internal events (call.Event values are the machine's).
type (
	connUp   struct{ c *conn }
	connDown struct{ c *conn }
	received struct {
		c *conn
		m protocol.Message
	}
	// sourceLost: the call's camera (or microphone) failed mid-call.
	sourceLost struct {
		callID string
		err    error
	}
	// captureReady: the gate announced and opened camera and microphone
	// for the call (or failed to).
	captureReady struct {
		callID string
		c      *media.Capture
		err    error
	}
)

// New prepares a terminal: it loads the device identity (key and device
// certificate, imported at flash time) and the pairing secret. A unit that
// was never provisioned gets an error wrapping terminalstore.ErrNoIdentity or
// ErrNoCertificate: it cannot log in, so there is nothing to run.
func New(cfg Config, d Deps) (*Terminal, error) {
	if cfg.ServerURL == "" {
		return nil, fmt.Errorf("terminal: no server URL: %w", ErrConfig)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if cfg.PairWindow <= 0 {
		cfg.PairWindow = DefaultPairWindow
	}
	if cfg.PairWindowFailures <= 0 {
		cfg.PairWindowFailures = DefaultPairWindowFailures
	}
	if err := cfg.AutoAnswer.validate(); err != nil {
		return nil, err
	}
	key, err := d.Store.Identity()
	if err != nil {
		return nil, err
	}
	cert, err := d.Store.Certificate()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("terminal: public key: %w", err)
	}
	secret, err := d.Store.PairingSecret()
	if err != nil {
		return nil, err
	}
	se, iceNet, err := settingEngine(cfg.LoopbackOnly, cfg.ICE, d.Log)
	if err != nil {
		return nil, err
	}
	api, err := media.NewAPI(media.APIConfig{SettingEngine: se})
	if err != nil {
		iceNet.Close()
		return nil, err
	}
	t := &Terminal{
		cfg: cfg, d: d, key: key, cert: cert, secret: secret, api: api, iceNet: iceNet, dialer: serverClient(cfg.ServerRoots),
		deviceID: protocol.DeviceID(der),
		events:   make(chan any, 64),
		ice:      map[string]iceInfo{},
		window:   pairWindow{length: cfg.PairWindow, maxFailures: cfg.PairWindowFailures},
	}
	if t.unpairPending, err = d.Store.UnpairPending(); err != nil {
		return nil, err
	}
	t.log = d.Log.With("component", "terminal", "device_id", t.deviceID)
	var parent *terminalstore.Parent
	if p, err := d.Store.Parent(); err == nil {
		t.m.Paired = true
		t.parentID = p.ParentID
		parent = &p
	} else if !errors.Is(err, terminalstore.ErrNotPaired) {
		iceNet.Close()
		return nil, err
	}
	if t.tr, err = loadTrust(d.Store, parent); err != nil {
		iceNet.Close()
		return nil, err
	}
	if t.m.Paired && t.tr.parentKey == nil {
		t.log.Error("the stored pairing has no parent key (made before pairing protocol v2): calls from the parent will be refused; factory-reset and pair again")
	}
	t.publish()
	return t, nil
}

// DeviceID is the terminal's ID on the rendezvous server.
func (t *Terminal) DeviceID() string { return t.deviceID }

// PairingURL is what the label's QR code carries.
func (t *Terminal) PairingURL() string {
	return pairing.URL(t.cfg.PublicURL, t.deviceID, t.pairingSecret())
}

func (t *Terminal) pairingSecret() pairing.Secret {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.secret
}

// Status returns the latest snapshot; safe from any goroutine.
func (t *Terminal) Status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.status
	switch {
	case t.sess != nil:
		s.Received = t.sess.stats()
	case t.last != nil:
		s.Received = t.last.stats()
	}
	return s
}

// Preview returns the camera picture of the call in progress, or nil: the
// camera is open only during a call.
func (t *Terminal) Preview() image.Image {
	t.mu.Lock()
	s := t.sess
	t.mu.Unlock()
	if s == nil {
		return nil
	}
	if c := s.media(); c != nil {
		return c.Preview()
	}
	return nil
}

// Screen returns the parent's latest decoded picture during a call, or nil:
// what a terminal with a screen shows.
func (t *Terminal) Screen() image.Image {
	t.mu.Lock()
	s := t.sess
	t.mu.Unlock()
	if s == nil || s.receiver == nil {
		return nil
	}
	return s.receiver.LatestFrame()
}

// healthEvery is how often the loop checks the hardware's health.
const healthEvery = time.Second

// Run runs until ctx ends. It is called once: at its end it closes the
// terminal's sockets.
func (t *Terminal) Run(ctx context.Context) error {
	t.ctx = ctx
	defer t.iceNet.Close()
	health := time.NewTicker(healthEvery)
	defer health.Stop()
	defer t.timers.stop()
	t.showLEDs()
	if !t.m.Paired {
		// The pairing URL carries the label's secret: never logged. The
		// technician prints it with `terminald label`.
		t.log.Info("terminal is not paired: scan the QR label on the unit with the parent's phone")
		// A fresh (or reset) unit is pairable after boot; the power-on is
		// the physical act.
		t.openPairWindow("unpaired at boot")
	}
	go t.connectLoop(ctx)
	defer func() {
		if t.sess != nil {
			t.sess.close()
		}
		if t.conn != nil {
			t.conn.close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-t.d.Buttons:
			if !ok {
				t.d.Buttons = nil
				continue
			}
			t.button(ev)
		case ev := <-t.events:
			t.handle(ctx, ev)
		case now := <-t.timers.C():
			for _, to := range t.timers.fire(now) {
				t.step(to)
			}
		case <-health.C:
			t.checkHealth()
			t.checkPairWindow(time.Now())
			t.petWatchdog()
		}
		t.publish()
	}
}

func (t *Terminal) button(ev device.ButtonEvent) {
	switch ev.Kind {
	case device.Press:
		t.step(call.Press{NewCallID: protocol.NewID()})
	case device.LongPress:
		t.step(call.LongPress{})
	case device.Hold:
		// The long press two seconds in has done its work (hung up,
		// declined); on an unpaired terminal the hold also opens pairing.
		if !t.m.Paired {
			t.openPairWindow("button held")
		}
	}
	// No hold resets the unit, however long, in a call or out of one: the
	// factory reset is a power-up gesture (BootReset, reset.go).
}

// post hands an event to the loop from another goroutine.
func (t *Terminal) post(ctx context.Context, ev any) {
	select {
	case t.events <- ev:
	case <-ctx.Done():
	}
}

// connectLoop keeps one signalling connection up, reconnecting with backoff
// and jitter.
func (t *Terminal) connectLoop(ctx context.Context) {
	b := backoff{min: t.cfg.MinBackoff, max: t.cfg.MaxBackoff}
	for ctx.Err() == nil {
		c, err := dial(ctx, t.cfg.ServerURL, t.dialer, t.key, t.cert, t.cfg.Version, t.log)
		if err != nil {
			wait := b.next()
			t.refused.Store(errors.Is(err, ErrAuthFailed))
			if errors.Is(err, ErrAuthFailed) {
				// Reachable but refused: most likely this unit's device
				// certificate (expired, or from a program CA the server
				// does not trust). Retrying cannot fix that, but a server
				// being reconfigured can, so keep trying, slowly; the
				// health check shows needs-repair meanwhile.
				t.log.Error("the rendezvous server refused this unit's login: check its device certificate (terminald identity show)", "err", err, "retry_in", wait.Round(time.Millisecond))
			} else {
				t.log.Warn("cannot reach the rendezvous server", "err", err, "retry_in", wait.Round(time.Millisecond))
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			continue
		}
		t.refused.Store(false)
		up := time.Now()
		t.post(ctx, connUp{c})
		err = c.read(ctx, func(m protocol.Message) { t.post(ctx, received{c, m}) })
		c.close()
		t.post(ctx, connDown{c})
		if ctx.Err() != nil {
			return
		}
		if time.Since(up) > time.Minute {
			b.reset()
		}
		wait := b.next()
		t.log.Warn("signalling connection lost", "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

func (t *Terminal) handle(ctx context.Context, ev any) {
	switch ev := ev.(type) {
	case connUp:
		t.conn = ev.c
		w := ev.c.welcome
		serverPaired := w.Paired != nil && *w.Paired
		t.peerOnline = w.PeerOnline != nil && *w.PeerOnline
		if serverPaired != t.m.Paired {
			// The terminal's own store decides: a server that says
			// "not paired" must not be able to clear the parent and open
			// the way to a new one (only a local factory reset does that).
			t.log.Warn("pairing differs between terminal and server; keeping the terminal's", "terminal", t.m.Paired, "server", serverPaired)
		}
		t.setClock(w.ServerTime)
		t.log.Info("connected to the rendezvous server", "paired", t.m.Paired, "parent_online", t.peerOnline)
		// A reset the server has not heard of goes first, before anything
		// can reach the old parent.
		t.sendUnpair()
		t.step(call.Connected{Paired: t.m.Paired})
	case connDown:
		if ev.c != t.conn {
			return
		}
		t.conn = nil
		t.peerOnline = false
		t.step(call.Disconnected{})
	case received:
		if ev.c == t.conn {
			t.message(ctx, ev.m)
		}
	case captureReady:
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
		if err := t.sess.attach(ev.c); err != nil {
			t.log.Error("cannot send camera and microphone", "call_id", ev.callID, "err", err)
			t.step(call.MediaFailed{CallID: ev.callID})
		}
	case sourceLost:
		t.log.Error("camera or microphone lost mid-call: ending the call, showing needs-repair", "call_id", ev.callID, "err", ev.err)
		t.cameraLostAt = time.Now()
		t.checkHealth()
	case call.Event:
		t.step(ev)
	}
}

// message turns a server message into machine events.
func (t *Terminal) message(ctx context.Context, m protocol.Message) {
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
		if after > 0 {
			t.log.Info("ring inside a reunion window: answering after the ring", "call_id", m.CallID, "after", after)
		}
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
	case protocol.TypeHangup:
		t.step(call.PeerHangup{CallID: m.CallID, Reason: m.Reason})
	case protocol.TypeAnswer, protocol.TypeCandidate:
		if m.CallID != t.m.CallID {
			t.log.Warn("media signalling for another call", "type", m.Type, "call_id", m.CallID)
			return
		}
		if t.sess == nil || t.sess.callID != m.CallID {
			// The loop sends the offer as it makes the session, so an answer
			// or candidate without one is for nothing of ours.
			t.log.Warn("media signalling before our offer", "type", m.Type, "call_id", m.CallID)
			return
		}
		if m.Type == protocol.TypeCandidate {
			if err := t.sess.candidate(m.Candidate); err != nil {
				t.log.Warn("bad candidate", "err", err)
			}
			return
		}
		if err := t.answerFromParent(m, t.sess.offerHash); err != nil {
			// A server in the middle that changed any byte of the answer,
			// or replayed one, ends up here: no media to anyone but the
			// paired parent. The SDP applied below is the one verified.
			t.log.Warn("refusing an answer not signed by the paired parent", "call_id", m.CallID, "err", err)
			t.step(call.MediaFailed{CallID: m.CallID})
			return
		}
		if err := t.sess.answer(m.SDP); err != nil {
			t.log.Warn("bad answer", "err", err)
			t.step(call.MediaFailed{CallID: m.CallID})
			return
		}
		// Only now, for an answer signed over this terminal's own nonce,
		// do camera and microphone open (with the light and the sound).
		t.openCapture(m.CallID)
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
	case protocol.TypeUnpaired:
		t.unpairConfirmed()
	case protocol.TypeCallLog, protocol.TypeChallenge, protocol.TypeWelcome:
		// Not for terminals.
	default:
		t.log.Warn("unexpected message", "type", m.Type)
	}
}

// step runs the machine and carries out its actions.
//
// An event raised while actions are being carried out (a ring that could
// not be signed, media that could not start) waits until all of the
// current step's actions are done, then runs as a step of its own: an
// action never re-enters the machine half-way through another step, so the
// last light and sound are always those of the machine's last state.
func (t *Terminal) step(ev call.Event) {
	t.queued = append(t.queued, ev)
	if t.stepping {
		return
	}
	t.stepping = true
	defer func() { t.stepping = false }()
	for len(t.queued) > 0 {
		ev := t.queued[0]
		t.queued = t.queued[1:]
		before := t.m.State
		var acts []call.Action
		t.m, acts = call.Next(t.m, ev)
		if t.m.State != before {
			t.log.Info("call state", "from", before.String(), "to", t.m.State.String(), "event", fmt.Sprintf("%T", ev))
		}
		for _, a := range acts {
			t.do(a)
		}
	}
	t.showLEDs()
}

func (t *Terminal) showLEDs() {
	p := t.m.Pattern()
	if err := t.d.LEDs.Show(p); err != nil {
		t.log.Error("cannot show lights", "pattern", p, "err", err)
		t.lit.set("", "")
		return
	}
	t.lit.set(p, t.m.CallID)
}

func (t *Terminal) setLastCue(c call.Cue) { t.lastCue.Store(&c) }

// stopCue silences a repeating cue (the ring) where no new cue replaces it.
func (t *Terminal) stopCue() {
	if s, ok := t.d.Speaker.(interface{ StopCue() }); ok {
		s.StopCue()
	}
}

func (t *Terminal) send(m protocol.Message) {
	if t.conn == nil {
		t.log.Warn("not connected; message dropped", "type", m.Type)
		return
	}
	t.conn.send(m)
}

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
			t.sess.close()
			t.setSession(nil)
		}
	case call.StartTimer:
		t.timers.start(time.Now(), a.Timer, a.Token, a.After)
	case call.PairAccept:
		t.stopCue() // the pairing ring
		t.acceptPairing(a.PairID)
	case call.PairReject:
		t.stopCue()
		delete(t.tr.pairReq, a.PairID)
		t.send(protocol.Message{Type: protocol.TypePairReject, PairID: a.PairID, Reason: a.Reason})
	case call.PlayCue:
		t.setLastCue(a.Cue)
		t.log.Debug("sound cue", "cue", a.Cue)
		if t.d.Speaker != nil {
			t.d.Speaker.PlayCue(string(a.Cue))
		}
	case call.CallEnded:
		delete(t.ice, a.CallID)
		delete(t.tr.calls, a.CallID)
		t.calls++
		rec := terminalstore.CallRecord{CallID: a.CallID, Outgoing: a.Outgoing, Answered: a.Answered, Outcome: a.Outcome, EndedAt: time.Now().UTC()}
		if err := t.d.Store.AppendCall(rec); err != nil {
			t.log.Error("cannot log the call", "err", err)
		}
		// What arrived from the parent: the field's only view of a call's
		// quality, and what the kernel-in-the-loop call test checks.
		rx := t.callStats(a.CallID)
		t.log.Info("call ended", "call_id", a.CallID, "outcome", a.Outcome, "outgoing", a.Outgoing,
			"rx_video_frames", rx.VideoFramesDecoded, "rx_video_size", fmt.Sprintf("%dx%d", rx.VideoWidth, rx.VideoHeight),
			"rx_video_decode_errors", rx.VideoDecodeErrors, "rx_audio_samples", rx.AudioSamplesDecoded)
	default:
		t.log.Error("unknown action", "action", fmt.Sprintf("%T", a))
	}
}

// cameraSettle is how long a camera that failed mid-call must be back before
// the fault clears: a camera being re-plugged comes and goes for a moment.
const cameraSettle = 3 * time.Second

// checkHealth raises "needs repair" while hardware a call needs is broken —
// the button stuck, the camera gone — or the server refuses this unit's
// credentials, and clears it when all is well again.
func (t *Terminal) checkHealth() {
	var faults []string
	if t.d.ButtonStuck != nil && t.d.ButtonStuck() {
		faults = append(faults, "call button stuck")
	}
	if err := media.CameraPresent(t.cfg.Capture); err != nil {
		faults = append(faults, "camera missing")
	} else if !t.cameraLostAt.IsZero() && time.Since(t.cameraLostAt) < cameraSettle {
		faults = append(faults, "camera failed mid-call")
	}
	if t.refused.Load() {
		faults = append(faults, "device certificate refused by the server")
	}
	changed := fmt.Sprint(faults) != fmt.Sprint(t.faults)
	t.faults = faults
	switch {
	case len(faults) > 0 && (t.m.State != call.Fault || changed):
		t.log.Error("showing needs-repair", "faults", faults)
		t.step(call.FaultRaised{})
	case len(faults) == 0 && t.m.State == call.Fault:
		t.log.Info("hardware is well again", "was", "needs repair")
		t.step(call.FaultCleared{})
	}
}

// petWatchdog tells the hardware watchdog the loop is alive. Reaching this
// tick is the proof of life; a full event queue means the loop is falling
// behind, so it is not petted then. A stuck button still pets: a reboot
// cannot fix it and would only loop.
func (t *Terminal) petWatchdog() {
	if t.d.Watchdog == nil {
		return
	}
	if len(t.events) == cap(t.events) {
		t.log.Error("event queue full: not petting the watchdog")
		return
	}
	if err := t.d.Watchdog.Pet(); err != nil {
		t.log.Error("watchdog pet failed", "err", err)
	}
}

// startMedia turns the in-call light on and makes the call's session,
// which sends the signed offer from the loop. Camera and microphone open
// later, once the parent's answer is verified (openCapture).
func (t *Terminal) startMedia(callID string, cue call.Cue) {
	info := t.ice[callID]
	c := t.conn
	if c == nil {
		t.step(call.MediaFailed{CallID: callID})
		return
	}
	// The machine is already in Connecting, whose light is "in call"; show
	// it now, before anything opens (step would show it after the actions).
	t.showLEDs()
	b := t.tr.calls[callID]
	if b == nil || b.RingNonce == "" || b.AcceptNonce == "" {
		t.log.Error("media for a call whose ring and accept were not both signed", "call_id", callID)
		t.step(call.MediaFailed{CallID: callID})
		return
	}
	bind := *b
	var onAudio func([]int16)
	if v, ok := t.d.Speaker.(interface{ WritePCM([]int16) }); ok {
		onAudio = v.WritePCM
	}
	deps := sessionDeps{
		api: t.api, onAudio: onAudio, loopback: t.cfg.LoopbackOnly, log: t.log, cert: t.tr.cert,
		sign: func(m protocol.Message) (protocol.Message, error) { return t.sign(m, bind) },
		// The session sends on the connection the call started on: if that
		// one drops, the call ends anyway.
		send: c.send,
		events: func(ev call.Event) {
			select {
			case t.events <- ev:
			default:
				t.log.Error("event queue full; media event lost")
			}
		},
	}
	s, err := startSession(callID, info.servers, info.policy, t.cfg.Capture.Profile.Video, deps)
	if err != nil {
		t.log.Error("media session failed", "call_id", callID, "err", err)
		t.step(call.MediaFailed{CallID: callID})
		return
	}
	t.setSession(s)
	t.mediaCue = cue
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
	go func() {
		defer cancel()
		c, err := t.openMedia(ctx, callID, cue)
		select {
		case t.events <- captureReady{callID, c, err}:
		case <-t.ctx.Done():
			if c != nil {
				c.Close()
			}
		}
	}()
}

// callStats returns what the session of call id received; zero when that
// call never had media.
func (t *Terminal) callStats(id string) media.Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
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
	t.mu.Lock()
	if t.sess != nil {
		t.last = t.sess
	}
	t.sess = s
	t.mu.Unlock()
}

// publish refreshes the status snapshot.
func (t *Terminal) publish() {
	var st Status
	st.DeviceID = t.deviceID
	st.State = t.m.State.String()
	st.Pattern = string(t.m.Pattern())
	st.Online = t.m.Online
	st.Paired = t.m.Paired
	st.Pairable = t.m.Pairable
	st.PeerOnline = t.peerOnline
	st.CallID = t.m.CallID
	if c := t.lastCue.Load(); c != nil {
		st.LastCue = string(*c)
	}
	st.Calls = t.calls
	st.Fault = strings.Join(t.faults, ", ")
	st.ParentID = t.parentID
	if !t.m.Paired {
		st.PairingURL = t.PairingURL()
	}
	t.mu.Lock()
	changed := st != t.status
	t.status = st
	t.mu.Unlock()
	if changed && t.d.OnStatus != nil {
		t.d.OnStatus(st)
	}
}
