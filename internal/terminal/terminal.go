// Package terminal runs the child's terminal: it keeps the signalling
// connection to the rendezvous server up, feeds button presses and server
// messages into the call state machine (internal/call), and carries out the
// machine's actions — messages, timers, media sessions, lights, the call log.
//
// One goroutine, Run's loop (loop.go), owns all of that state. Workers (the
// connection's reader, the media gate) and pion's callbacks never touch it:
// they post events to the loop. Readers outside the loop (Status, Preview,
// Screen, the gate's light check) read the view the loop publishes at the
// end of each turn (status.go).
//
// Files: loop.go (Run, events, step), server.go (the connection),
// messages.go (server messages), actions.go (the machine's actions),
// health.go, status.go, trust.go (signatures and pairing), session.go (a
// call's media), gate.go (the never-silent rule), roles.go (the parts).
package terminal

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
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
	// ServerURL is the rendezvous server's signalling endpoint,
	// ws(s)://host/ws (needed unless Deps.Dial is set).
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
	// PingInterval and PongTimeout are how the terminal notices a dead
	// link (zero: DefaultPingInterval, DefaultPongTimeout; see linkCheck).
	PingInterval, PongTimeout time.Duration
	// ResumeGrace replaces call.ResumeGrace (tests shorten it): how long a
	// call goes on without signalling, or with its media restarting.
	ResumeGrace time.Duration
	Version     string
	// PairWindow is how long the pairing window stays open (zero:
	// DefaultPairWindow); PairWindowFailures wrong proofs close it early
	// (zero: DefaultPairWindowFailures). See pairwindow.go.
	PairWindow         time.Duration
	PairWindowFailures int
	// AutoAnswer is the reunion window; the zero value is off.
	AutoAnswer AutoAnswer
	// DataBudget is the unit's monthly data budget in bytes; 0 is none
	// (calls are counted all the same). As it runs low calls start on
	// leaner profiles, and spent, voice only (budget.go).
	DataBudget int64
	// BudgetFlush is how often a call's bytes are written while it lasts
	// (zero: DefaultBudgetFlush).
	BudgetFlush time.Duration
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
	// Watchdog may be nil (none fitted).
	Watchdog Watchdog
	Log      *slog.Logger
	// OnStatus, if set, is called (from the loop) whenever Status changes.
	OnStatus func(Status)
	// Now, if set, replaces time.Now as the local wall clock the reunion
	// windows are read on.
	Now func() time.Time
	// Dial, if set, replaces the websocket client for Config.ServerURL
	// (tests pass terminaltest's fake server).
	Dial DialFunc
	// NetChanged, if set, receives when the unit's network changed (an
	// address or route appeared: internal/terminal/netwatch): a reconnect
	// waiting out its backoff tries at once.
	NetChanged <-chan struct{}
	// PairFault, if set, is called at each step of pairing (trust.go);
	// true stops the terminal there as a crash would. Tests only.
	PairFault func(PairFaultPoint) bool
}

// Terminal is the running terminal.
type Terminal struct {
	cfg      Config
	d        Deps
	log      *slog.Logger
	key      *ecdsa.PrivateKey
	cert     []byte // device certificate (DER), sent with every login
	dial     DialFunc
	deviceID string
	secret   pairing.Secret // the label's: set by New, never changed while running
	api      *webrtc.API
	iceNet   *iceNet // sockets of a fixed ICE port, closed when Run ends

	// events is how workers and callbacks reach the loop (loop.go).
	events chan event
	// view is what the loop last published, for readers outside it
	// (status.go); notified is the status OnStatus was last given.
	view     atomic.Pointer[view]
	notified Status

	// Everything below belongs to the loop.
	ctx  context.Context // Run's, for the workers the loop starts
	m    call.Machine
	conn ServerConn
	sess *session // the current call's media
	// prep is the offer's connection made for the parent's prepare while
	// the child's call rings (prepare.go): the call's session once the
	// parent's accept brings the prepare's nonce.
	prep     *session
	prepares prepareLog // the prepares the ringing call took
	last     *session   // the ended call's, for its stats
	ice      map[string]iceInfo
	tr       trust
	window   pairWindow
	timers   timers // the machine's timers (timers.go)
	// queued and stepping: events raised during a step wait for it (step).
	queued   []call.Event
	stepping bool
	// unpairPending: a factory reset the server has not confirmed yet.
	unpairPending bool
	peerOnline    bool
	parentID      string
	calls         int
	// restartRefused: ICE restart answers refused (messages.go).
	restartRefused int
	// cameraLostAt is when a camera last failed mid-call (zero: never);
	// faults is what checkHealth found wrong last time.
	cameraLostAt time.Time
	faults       []string
	// faultParts are the protocol's names of the parts at fault (health.go);
	// reported is the status the current connection last carried (nil: none
	// yet).
	faultParts []string
	reported   *protocol.Message
	// refused: the server answered the last login with auth_failed; a unit
	// it will not accept needs a technician.
	refused   bool
	mediaStop context.CancelFunc // ends the opening of the current call's camera and microphone
	mediaCue  call.Cue           // the current call's connect sound, played when they open
	lit       lights             // what the LEDs show, for the gate
	lastCue   call.Cue           // the last cue played (by an action or the gate)
	// unlogged: call records the disk did not take yet; stateWriteFailures
	// counts every failed write (statewrites.go).
	unlogged           unlogged
	stateWriteFailures int
	// usage is the month's data usage as last written (budget.go).
	usage terminalstore.Usage
}

type iceInfo struct {
	servers []protocol.ICEServer
	policy  string
}

// New prepares a terminal: it loads the device identity (key and device
// certificate, imported at flash time) and the pairing secret. A unit that
// was never provisioned gets an error wrapping terminalstore.ErrNoIdentity or
// ErrNoCertificate: it cannot log in, so there is nothing to run.
func New(cfg Config, d Deps) (*Terminal, error) {
	if cfg.ServerURL == "" && d.Dial == nil {
		return nil, fmt.Errorf("terminal: no server URL: %w", ErrConfig)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PongTimeout <= 0 {
		cfg.PongTimeout = DefaultPongTimeout
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
	if cfg.BudgetFlush <= 0 {
		cfg.BudgetFlush = DefaultBudgetFlush
	}
	if cfg.DataBudget < 0 {
		return nil, fmt.Errorf("terminal: data budget %d bytes: %w", cfg.DataBudget, ErrConfig)
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
	grace := call.ResumeGrace
	if cfg.ResumeGrace > 0 {
		grace = cfg.ResumeGrace
	}
	se, iceNet, err := settingEngine(cfg.LoopbackOnly, cfg.ICE, grace, d.Log)
	if err != nil {
		return nil, err
	}
	api, err := media.NewAPI(media.APIConfig{SettingEngine: se})
	if err != nil {
		iceNet.Close()
		return nil, err
	}
	t := &Terminal{
		cfg: cfg, d: d, key: key, cert: cert, secret: secret, api: api, iceNet: iceNet,
		deviceID: protocol.DeviceID(der),
		events:   make(chan event, eventQueue),
		ice:      map[string]iceInfo{},
		window:   pairWindow{length: cfg.PairWindow, maxFailures: cfg.PairWindowFailures},
	}
	if t.unpairPending, err = d.Store.UnpairPending(); err != nil {
		return nil, err
	}
	t.log = d.Log.With("component", "terminal", "device_id", t.deviceID)
	if t.usage, err = d.Store.DataUsage(); err != nil {
		// Counting starts again rather than keep the child from calling.
		t.log.Error("the stored data usage does not read: counting from zero", "err", err)
	}
	t.m.VoiceOnly = t.budgetVoiceOnly()
	t.dial = d.Dial
	if t.dial == nil {
		client := serverClient(cfg.ServerRoots)
		t.dial = func(ctx context.Context) (ServerConn, error) {
			return dial(ctx, cfg.ServerURL, client, t.key, t.cert, cfg.Version, linkCheck{cfg.PingInterval, cfg.PongTimeout}, t.log)
		}
	}
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
	t.notify()
	return t, nil
}

// DeviceID is the terminal's ID on the rendezvous server.
func (t *Terminal) DeviceID() string { return t.deviceID }

// PairingURL is what the label's QR code carries.
func (t *Terminal) PairingURL() string {
	return pairing.URL(t.cfg.PublicURL, t.deviceID, t.secret)
}
