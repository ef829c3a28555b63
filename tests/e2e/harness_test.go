// Package e2e runs the whole system on loopback: the real rendezvous server
// (signalling, pairing registry, TURN), the real terminal daemon on the
// simulated board (the real button debouncer and LED driver behind it, real
// mediadevices capture and openh264/Opus encoders, real pion WebRTC), and a
// parent's phone — a Go client that decodes what it receives, or real
// headless Chromium running the parent's web app.
package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/simboard"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/media/mediatest"
	"github.com/tuanju/tuanju/media/synth"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// step bounds one step of a test (a message, a state change); media checks
// get their own, longer bound.
const step = 20 * time.Second

type rig struct {
	t     testing.TB
	ctx   context.Context
	srv   *rendezvoustest.Server
	board *simboard.Board
	term  *terminal.Terminal
	store *terminalstore.Store
	// stop stops the terminal and closes its board and state file (like
	// pulling the plug, but clean); it runs at the test's end anyway.
	stop func()
	// opts started this terminal; bootReset is whether the power-up reset
	// gesture (opts.atPowerUp) reset it.
	opts      terminalOpts
	bootReset bool
}

func testLog(t testing.TB) *slog.Logger {
	return teeLog(t, nil)
}

// teeLog logs to the test's output and, when also is set, to also.
func teeLog(t testing.TB, also io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if _, bench := t.(*testing.B); bench {
		level = slog.LevelWarn // keep benchmark output readable
	}
	var w io.Writer = testOutput(t)
	if also != nil {
		w = io.MultiWriter(w, also)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// testOutput is t.Output() until t's cleanups run, then nothing: a
// terminal's or a phone's closing goroutines (a peer connection's last
// callbacks) may still log after the test has stopped them, and writing to
// a finished test's output is a data race in package testing. The cleanup
// is registered before whatever the logger is handed to, so it runs after
// that has been stopped.
func testOutput(t testing.TB) io.Writer {
	g := &guardedWriter{w: t.Output()}
	t.Cleanup(func() {
		g.mu.Lock()
		g.off = true
		g.mu.Unlock()
	})
	return g
}

type guardedWriter struct {
	mu  sync.Mutex
	w   io.Writer
	off bool
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.off {
		return len(p), nil
	}
	return g.w.Write(p)
}

// newRig starts a rendezvous server and one terminal on the simulated board,
// connected but not paired.
func newRig(t testing.TB, configure func(*rendezvous.Config)) *rig {
	return newRigProfile(t, configure, media.LowData)
}

func newRigProfile(t testing.TB, configure func(*rendezvous.Config), p media.Profile) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, configure)
	return startTerminal(t, ctx, srv, terminalOpts{wsURL: srv.WSURL, profile: p})
}

// terminalOpts vary the terminal a test starts; zero values are the defaults.
type terminalOpts struct {
	wsURL string // default: the server's
	// serverRoots: the CAs a wss:// server must chain to (nil: the system's).
	serverRoots *x509.CertPool
	statePath   string // default: a fresh file
	profile     media.Profile
	button      device.ButtonOpts
	watchdog    interface{ Pet() error }
	// speaker wraps the board's speaker; onCaptureOpen is told when the
	// media gate opens camera and microphone (terminal.Deps.OnCaptureOpen).
	speaker       func(terminal.Speaker) terminal.Speaker
	onCaptureOpen func(media.CaptureConfig)
	// cameraSocket is where the synthetic camera plugs in (tests unplug it).
	cameraSocket *synth.Socket
	ice          terminal.ICEConfig
	// pairWindow shortens the pairing window; autoAnswer and now set the
	// reunion window and the clock it is read on.
	pairWindow time.Duration
	autoAnswer terminal.AutoAnswer
	now        func() time.Time
	// refused: the server is expected to refuse this terminal's login (or
	// cannot be reached), so startTerminal does not wait for it to show
	// ready.
	refused bool
	// logTo, if set, also gets the terminal's log (tests that read it);
	// the log goes to the output of the test that starts the terminal.
	logTo io.Writer
	// atPowerUp, if set, is a hand on the button at power-up: the board
	// starts with the button held, terminal.BootReset runs (with
	// resetOpts) as terminald runs it, and atPowerUp moves the finger
	// meanwhile; the terminal starts once BootReset has decided.
	atPowerUp func(*simboard.Board)
	resetOpts device.ResetOpts
	// resetClock, if set, is the wall clock BootReset compares with the
	// call log (terminal.RecentCall).
	resetClock func() time.Time
	// pairFault, if set, is the terminal's crash hook in pairing
	// (terminal.Deps.PairFault).
	pairFault func(terminal.PairFaultPoint) bool
	// resumeGrace shortens how long a call goes on without signalling
	// (terminal.Config.ResumeGrace).
	resumeGrace time.Duration
	// dataBudget and budgetFlush: the monthly data budget in bytes and how
	// often a call's bytes are written (terminal.Config).
	dataBudget  int64
	budgetFlush time.Duration
}

func startTerminal(t testing.TB, ctx context.Context, srv *rendezvoustest.Server, o terminalOpts) *rig {
	t.Helper()
	log := teeLog(t, o.logTo)
	if o.wsURL == "" {
		o.wsURL = srv.WSURL
	}
	if o.statePath == "" {
		o.statePath = filepath.Join(t.TempDir(), "terminal.db")
	}
	if o.profile.Name == "" {
		o.profile = media.LowData
	}
	store, err := terminalstore.Open(o.statePath)
	if err != nil {
		t.Fatal(err)
	}
	rendezvoustest.Provision(t, store) // what flashing does; kept on a reused state file
	board, err := simboard.New(simboard.Options{Logger: log, Button: o.button, HeldAtPowerUp: o.atPowerUp != nil})
	if err != nil {
		t.Fatal(err)
	}
	var speaker terminal.Speaker = board
	if o.speaker != nil {
		speaker = o.speaker(board)
	}
	var bootReset bool
	if o.atPowerUp != nil {
		done := make(chan bool, 1)
		go func() {
			reset, err := terminal.BootReset(ctx, terminal.BootDeps{Button: board.Button(), LEDs: board.LEDs(), Speaker: speaker,
				Store: store, Opts: o.resetOpts, Log: log, Now: o.resetClock})
			if err != nil {
				t.Errorf("reset gesture: %v", err)
			}
			done <- reset
		}()
		o.atPowerUp(board)
		select {
		case bootReset = <-done:
		case <-time.After(step):
			t.Fatal("the reset gesture was still undecided after the hand let go")
		}
	}
	term, err := terminal.New(terminal.Config{
		ServerURL: o.wsURL, PublicURL: srv.URL, ServerRoots: o.serverRoots,
		Capture: media.CaptureConfig{Profile: o.profile, Camera: media.SourceSynthetic,
			Microphone: media.SourceSynthetic, SyntheticSocket: o.cameraSocket, Log: log},
		LoopbackOnly: true, ICE: o.ice, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		Version: "e2e", PairWindow: o.pairWindow, AutoAnswer: o.autoAnswer, ResumeGrace: o.resumeGrace,
		DataBudget: o.dataBudget, BudgetFlush: o.budgetFlush,
	}, terminal.Deps{Store: store, Buttons: board.Button().Events(), ButtonStuck: board.Button().Stuck,
		LEDs: board.LEDs(), Speaker: speaker, Watchdog: o.watchdog, OnCaptureOpen: o.onCaptureOpen, Log: log, Now: o.now,
		PairFault: o.pairFault})
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := term.Run(tctx); err != nil {
			t.Errorf("terminal: %v", err)
		}
	}()
	stop := sync.OnceFunc(func() {
		cancel()
		<-done
		board.Close()
		store.Close()
	})
	t.Cleanup(stop)
	r := &rig{t: t, ctx: ctx, srv: srv, board: board, term: term, store: store, stop: stop, opts: o, bootReset: bootReset}
	if !o.refused {
		r.waitIdle("terminal connects and shows ready (or pairable, when unpaired)")
	}
	return r
}

// waitIdle waits for the terminal to be connected and idle: "ready", or
// "pairable" for an unpaired one whose pairing window is open.
func (r *rig) waitIdle(what string) {
	r.t.Helper()
	eventually(r.t, step, fmt.Sprintf("%s (now %q)", what, r.board.State().Pattern), func() bool {
		p := r.board.State().Pattern
		return r.term.Status().State == "idle" && (p == device.Ready || p == device.Pairable)
	})
}

// openPairing holds the button until the terminal shows "pairable", as a
// parent does on a terminal whose pairing window has closed.
func (r *rig) openPairing() {
	r.t.Helper()
	if r.term.Status().Pairable {
		return
	}
	if err := r.board.Hold(); err != nil {
		r.t.Fatal(err)
	}
	r.waitPattern(device.Pairable, "holding the button opens the pairing window")
	if err := r.board.Release(); err != nil {
		r.t.Fatal(err)
	}
	// The release must be debounced before the confirming press, or the
	// two merge into one long hold.
	eventually(r.t, step, "the button reads released", func() bool { return !r.board.Button().Pressed() })
}

// eventually polls cond until it holds or d passes. It is a wait, not a
// timing assertion: d is generous and only bounds a hang.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPattern waits for the lights to show p; on a timeout it says what
// they showed at the end of the wait.
func (r *rig) waitPattern(p device.Pattern, what string) {
	r.t.Helper()
	deadline := time.Now().Add(step)
	for r.board.State().Pattern != p {
		if time.Now().After(deadline) {
			r.t.Fatalf("gave up after %v waiting for: %s (lights %q; they show %q)", step, what, p, r.board.State().Pattern)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// childCalls is the child's press answered by the phone: the press, the
// ring at the phone, its accept, and the terminal's offer, which it
// returns.
func (r *rig) childCalls(t testing.TB, ph *Phone) protocol.Message {
	t.Helper()
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	ring := await(t, ph, protocol.TypeRing)
	if err := ph.Accept(r.ctx, ring.CallID); err != nil {
		t.Fatal(err)
	}
	return await(t, ph, protocol.TypeOffer)
}

// pair pairs the terminal with a new parent the way a parent does: open the
// pairing window if it is closed, open the pairing link, then press the
// terminal's button when its lights ask.
func (r *rig) pair() rendezvoustest.Credentials {
	r.t.Helper()
	r.openPairing()
	ctx, cancel := context.WithTimeout(r.ctx, step)
	defer cancel()
	cred, err := rendezvoustest.PairLink(ctx, r.srv.WSURL, r.term.PairingURL(), r.confirmPairing)
	if err != nil {
		r.t.Fatalf("pairing: %v", err)
	}
	eventually(r.t, step, "terminal stores the pairing", func() bool {
		s := r.term.Status()
		return s.Paired && s.Online && s.ParentID == cred.ParentID
	})
	r.waitPattern(device.Ready, "terminal ready after pairing")
	return cred
}

// confirmPairing waits for the "pairing" lights and presses the button.
func (r *rig) confirmPairing(ctx context.Context) error {
	for r.board.State().Pattern != device.Pairing {
		select {
		case <-ctx.Done():
			return fmt.Errorf("terminal never showed the pairing lights: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return r.board.Press(ctx)
}

// loopbackAPI is a pion API whose ICE uses 127.0.0.1 only.
func loopbackAPI(t testing.TB) *webrtc.API {
	t.Helper()
	api, err := media.NewAPI(media.APIConfig{SettingEngine: mediatest.LoopbackSettingEngine()})
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// phone logs the parent in and starts a Go phone that sends synthetic media
// and decodes what it receives.
func (r *rig) phone(cred rendezvoustest.Credentials, p media.Profile) *Phone {
	r.t.Helper()
	return r.phoneVia(cred, p, nil)
}

// phoneVia is phone with its media through path (nil: straight).
func (r *rig) phoneVia(cred rendezvoustest.Credentials, p media.Profile, path *mediatest.Link) *Phone {
	r.t.Helper()
	return r.phoneWith(cred, p, path, nil)
}

// phoneWith is phoneVia with the phone's configuration changed by set
// (nil: as it comes).
func (r *rig) phoneWith(cred rendezvoustest.Credentials, p media.Profile, path *mediatest.Link, set func(*PhoneConfig)) *Phone {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, step)
	defer cancel()
	conn, err := rendezvoustest.DialPaired(ctx, r.srv.WSURL, cred)
	if err != nil {
		r.t.Fatalf("parent login: %v", err)
	}
	cfg := PhoneConfig{
		API:     loopbackAPI(r.t),
		Capture: media.CaptureConfig{Profile: p, Camera: media.SourceSynthetic, Microphone: media.SourceSynthetic},
		Log:     testLog(r.t),
		Path:    path,
	}
	if set != nil {
		set(&cfg)
	}
	ph := NewPhone(conn, cfg)
	done := make(chan struct{})
	go func() { defer close(done); ph.Run(r.ctx) }()
	r.t.Cleanup(func() { conn.Close(); <-done })
	return ph
}

// await returns the phone's next message of type typ.
func await(t testing.TB, ph *Phone, typ string) protocol.Message {
	t.Helper()
	timeout := time.After(step)
	for {
		select {
		case m, ok := <-ph.Events():
			if !ok {
				t.Fatalf("phone connection closed while waiting for %s", typ)
			}
			if m.Type == typ {
				return m
			}
			t.Logf("phone got %s (waiting for %s)", m.Type, typ)
		case <-timeout:
			t.Fatalf("phone: no %s within %v", typ, step)
		}
	}
}

// auditEvents is the server's audit log as "event parent_id" lines, oldest
// first.
func auditEvents(t testing.TB, srv *rendezvoustest.Server) []string {
	t.Helper()
	entries, err := rendezvous.ReadAudit(srv.AuditPath())
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, e := range entries {
		events = append(events, e.Event+" "+e.ParentID)
	}
	return events
}
