package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/board"
	"github.com/tuanju/tuanju/internal/logging"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/databudget"
	"github.com/tuanju/tuanju/internal/terminal/netwatch"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/media"
)

const version = "terminald/0.1"

// errShutdown is a part's way of saying ctx ended while it waited (for an
// identity, for the reset gesture): serve then returns nil.
var errShutdown = errors.New("terminald: shut down")

// daemon is what serve's parts share: each leaves what it built here for
// the parts after it.
type daemon struct {
	stdout, stderr io.Writer
	log            *slog.Logger

	boardCfg  board.Config
	board     *board.Board
	speaker   terminal.Speaker // nil: none, or broken (logged)
	stateFile string
	identity  string // the identity file
	// provisionErr: the provisioning partition's bundle was refused
	// (partition names it); the unit shows needs-repair and nothing more.
	provisionErr error
	partition    string
	store        *terminalstore.Store
	// leds are the board's, or repairLEDs over them while the unit needs
	// repair after a damaged state file.
	leds   terminal.LEDs
	repair *repairLEDs      // nil: no repair pending
	wd     *device.Watchdog // nil: none
	tcfg   terminal.Config
	term   atomic.Pointer[terminal.Terminal] // read by the panel's pictures
	fps    int
	panel  string
}

// servePart is one step of bringing the terminal up. configure reads the
// part's own section of the config (all parts do, before any starts, so a
// bad value stops the daemon before it touches anything); start brings the
// part up and returns what stops it (nil: nothing to stop). Either may be
// nil.
type servePart struct {
	name      string
	configure func(d *daemon, cfg config) error
	start     func(ctx context.Context, d *daemon) (stop func(), err error)
}

// serveParts is the daemon, in the order it comes up. The board comes
// before the identity because a unit waiting for one shows needs-repair on
// its LEDs; the watchdog comes after the identity and the reset gesture
// (waiting for a technician, or a person counting presses, is not a hang).
func serveParts() []servePart {
	return []servePart{
		{"logging", configureLogging, nil},
		{"board", configureBoard, startBoard},
		{"identity", configureIdentity, startIdentity},
		{"reset gesture", nil, startResetGesture},
		{"watchdog", nil, startWatchdog},
		{"terminal", configureTerminal, startTerminal},
		{"screen", nil, startScreen},
		{"panel", configurePanel, startPanel},
	}
}

// serve brings serveParts up and runs the terminal until ctx ends.
func serve(ctx context.Context, cfg config, stdout, stderr io.Writer) (err error) {
	d := &daemon{stdout: stdout, stderr: stderr}
	parts := serveParts()
	for _, p := range parts {
		if p.configure == nil {
			continue
		}
		if err := p.configure(d, cfg); err != nil {
			return err
		}
	}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	for _, p := range parts {
		if p.start == nil {
			continue
		}
		stop, err := p.start(ctx, d)
		if err != nil {
			stopWatchdog(d.wd, nil)
			if errors.Is(err, errShutdown) {
				return nil
			}
			return err
		}
		if stop != nil {
			stops = append(stops, stop)
		}
	}
	err = d.term.Load().Run(ctx)
	stopWatchdog(d.wd, err) // not a defer: a panic runs defers, and must reboot the board
	return err
}

func configureLogging(d *daemon, cfg config) error {
	d.log = logging.New(d.stderr, cfg.LogFormat, cfg.LogLevel).With("service", "terminald")
	d.log.Info("starting", "version", version, "codecs", media.LinkedCodecs().String())
	applyBundleAtStart(cfg, d.log)
	return nil
}

// configureBoard takes the board's keys: board, pins, long_press, watchdog,
// screen, speaker and the capture devices.
func configureBoard(d *daemon, cfg config) error {
	picture := func(get func(*terminal.Terminal) image.Image) func() image.Image {
		return func() image.Image {
			if t := d.term.Load(); t != nil {
				return get(t)
			}
			return nil
		}
	}
	d.boardCfg = boardConfig(cfg, d.log)
	d.boardCfg.Console = "/dev/tty0"
	d.boardCfg.SimPreview = picture((*terminal.Terminal).Preview)
	d.boardCfg.SimScreen = picture((*terminal.Terminal).Screen)
	return nil
}

// boardConfig is the board as cfg describes it.
func boardConfig(cfg config, log *slog.Logger) board.Config {
	return board.Config{
		Kind: cfg.Board, Pins: cfg.Pins, LongPress: cfg.LongPress.Duration,
		Watchdog: cfg.Watchdog, WatchdogTimeout: cfg.WatchdogTimeout.Duration,
		Screen: cfg.Screen, Speaker: cfg.Speaker,
		Camera: cfg.Media.Camera, CameraDevice: cfg.Media.CameraDevice,
		Microphone: cfg.Media.Microphone, MicrophoneDevice: cfg.Media.MicrophoneDevice,
		Log: log,
	}
}

// startBoard opens the button, LEDs and speaker. The terminal does not run
// on a wrong pin map; it runs without a speaker, loudly logged.
func startBoard(_ context.Context, d *daemon) (func(), error) {
	b, err := board.Open(d.boardCfg)
	if err != nil {
		return nil, fmt.Errorf("terminald: %w", err)
	}
	if err := b.Err(); err != nil {
		b.Close()
		return nil, fmt.Errorf("terminald: %w", err)
	}
	d.board = b
	switch sp, fitted, err := b.Speaker(); {
	case err != nil:
		d.log.Error("no speaker: the child will hear neither the cues nor the parent", "device", d.boardCfg.Speaker, "err", err)
	case fitted:
		d.speaker = sp
	}
	return func() { b.Close() }, nil
}

func configureIdentity(d *daemon, cfg config) error {
	d.stateFile = cfg.StateFile
	d.identity = cfg.identityFile()
	d.provisionErr = cfg.provisionErr
	d.partition = cfg.ProvisioningPartition
	return nil
}

// refuseToRun is the unit whose provisioning partition holds no bundle it
// can trust: it says why, shows needs-repair, and waits for the power (a
// technician flashes it again); the call loop never runs.
func refuseToRun(ctx context.Context, d *daemon) error {
	d.log.Error("provisioning bundle refused: the terminal will not run until the unit is flashed with a good bundle",
		"partition", d.partition, "reason", d.provisionErr.Error())
	fmt.Fprintf(d.stdout, "needs repair: %v\n", d.provisionErr)
	if err := d.board.LEDs().Show(device.Fault); err != nil {
		d.log.Warn("cannot show needs-repair", "err", err)
	}
	d.board.SetStatus("needs repair: provisioning bundle refused")
	<-ctx.Done()
	return errShutdown
}

// startIdentity opens the state file once the unit has its identity,
// repairing a damaged one (awaitIdentity). While a repair is pending the
// unit shows needs-repair (repairLEDs).
func startIdentity(ctx context.Context, d *daemon) (func(), error) {
	if d.provisionErr != nil {
		return nil, refuseToRun(ctx, d)
	}
	if err := os.MkdirAll(filepath.Dir(d.stateFile), 0o700); err != nil {
		return nil, fmt.Errorf("terminald: state dir: %w", err)
	}
	store, note, err := awaitIdentity(ctx, d.stateFile, d.identity, d.board.LEDs(), d.board.SetStatus, d.log, d.stdout)
	if err != nil {
		return nil, shutdownOr(ctx, err)
	}
	d.store = store
	d.leds = d.board.LEDs()
	if note != nil {
		d.repair = newRepairLEDs(d.leds, store, d.stateFile, *note, d.log)
		d.leds = d.repair
		if err := d.leds.Show(device.Fault); err != nil {
			d.log.Warn("cannot show needs-repair", "err", err)
		}
		d.board.SetStatus(d.repair.status())
	}
	return func() { store.Close() }, nil
}

// startResetGesture runs the power-up reset gesture, before the terminal:
// it never runs in a call. It returns at once unless the button is held
// down now.
func startResetGesture(ctx context.Context, d *daemon) (func(), error) {
	button, _ := d.board.Button() // startBoard checked it
	_, err := terminal.BootReset(ctx, terminal.BootDeps{Button: button, LEDs: d.leds, Speaker: d.speaker, Store: d.store, Log: d.log})
	return nil, shutdownOr(ctx, err)
}

// startWatchdog opens the hardware watchdog. An absent one is logged and
// the terminal runs without it; a present one that cannot be set up is an
// error (the technician's self-test shows it). serve stops it, never a
// deferred stop: see stopWatchdog.
func startWatchdog(_ context.Context, d *daemon) (func(), error) {
	wd, _, err := d.board.Watchdog()
	switch {
	case errors.Is(err, device.ErrAbsent):
		d.log.Warn("no hardware watchdog: a hung terminal will not reboot itself", "err", err)
	case err != nil:
		return nil, fmt.Errorf("terminald: %w", err)
	}
	d.wd = wd
	return nil, nil
}

// configureTerminal takes server_url, public_url, server_ca_file, media,
// loopback_only, ice, auto_answer and data_budget_mb.
func configureTerminal(d *daemon, cfg config) error {
	tc, err := terminalConfigOf(cfg)
	if err != nil {
		return err
	}
	profile, _ := media.ProfileByName(cfg.Media.Profile) // validated
	d.fps = profile.FPS
	tc.Capture.Log = d.log
	d.tcfg = tc
	return nil
}

// terminalConfigOf is the terminal's configuration from terminald's.
func terminalConfigOf(cfg config) (terminal.Config, error) {
	profile, _ := media.ProfileByName(cfg.Media.Profile) // validated
	tc := terminal.Config{
		ServerURL: cfg.ServerURL,
		PublicURL: cfg.PublicURL,
		Capture: media.CaptureConfig{
			Profile: profile, Camera: cfg.Media.Camera, CameraDevice: cfg.Media.CameraDevice,
			SoftwareEncode: cfg.Media.CameraSoftwareEncode,
			Microphone:     cfg.Media.Microphone, MicrophoneDevice: cfg.Media.MicrophoneDevice,
		},
		LoopbackOnly: cfg.LoopbackOnly,
		ICE:          cfg.ICE.terminal(),
		Version:      version,
		DataBudget:   int64(cfg.DataBudgetMB) * databudget.MB,
	}
	var err error
	if tc.AutoAnswer, err = cfg.AutoAnswer.terminal(); err != nil {
		return tc, err
	}
	if cfg.ServerCAFile != "" {
		if tc.ServerRoots, err = loadCAs(cfg.ServerCAFile); err != nil {
			return tc, err
		}
	}
	return tc, nil
}

// startTerminal makes the terminal on the board's parts; serve runs it.
func startTerminal(ctx context.Context, d *daemon) (func(), error) {
	camera, _ := d.board.Camera()
	d.tcfg.Capture.SyntheticSocket = camera.Socket
	button, _ := d.board.Button()
	deps := terminal.Deps{
		Store: d.store, Buttons: button.Events(), ButtonStuck: button.Stuck, LEDs: d.leds, Speaker: d.speaker, Log: d.log,
		OnStatus: func(s terminal.Status) {
			d.board.SetPairingURL(s.PairingURL)
			line := statusLine(s)
			if d.repair != nil && d.repair.pending() {
				line = d.repair.status()
			}
			d.board.SetStatus(line)
		},
	}
	if d.wd != nil { // a nil *device.Watchdog in the interface would be petted
		deps.Watchdog = d.wd
	}
	// News of the network coming back ends a reconnect's backoff; without
	// it (no netlink: not Linux, or refused) reconnects wait their backoff.
	if news, err := netwatch.Watch(ctx, d.log); err != nil {
		d.log.Warn("no news of network changes: reconnects wait their backoff", "err", err)
	} else {
		deps.NetChanged = news
	}
	t, err := terminal.New(d.tcfg, deps)
	if err != nil {
		return nil, err
	}
	d.term.Store(t)
	fmt.Fprintf(d.stdout, "terminal %s\n", t.DeviceID())
	if st := t.Status(); !st.Paired {
		// Not the link: it holds the label's secret, and stdout ends up in
		// logs. `terminald label` prints it on request.
		fmt.Fprintln(d.stdout, "not paired: scan the unit's QR label with the parent's phone, then press the call button (a lost label: terminald label)")
	}
	return nil, nil
}

// startScreen draws the terminal on the board's framebuffer. Without one
// (or with a broken one, logged) a child still calls by lights and sound.
// The simulated board's panel draws the terminal's picture itself.
func startScreen(ctx context.Context, d *daemon) (func(), error) {
	if d.board.Sim() != nil {
		return nil, nil
	}
	scr, fitted, err := d.board.Screen()
	switch {
	case err != nil:
		d.log.Error("screen unusable: lights and sound only", "screen", d.boardCfg.Screen, "err", err)
		return nil, nil
	case !fitted:
		if d.boardCfg.Screen != "" {
			d.log.Info("no screen: lights and sound only", "screen", d.boardCfg.Screen)
		}
		return nil, nil
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); runScreen(sctx, scr, d.term.Load(), d.fps, d.log) }()
	return func() { stop(); <-done }, nil // the board gives the console back
}

func configurePanel(d *daemon, cfg config) error {
	if cfg.PanelListen != "" && cfg.Board != board.Sim {
		return errors.New("terminald: -panel needs -board sim")
	}
	d.panel = cfg.PanelListen
	return nil
}

// startPanel serves the simulated board's panel and the terminal's status.
func startPanel(_ context.Context, d *daemon) (func(), error) {
	if d.panel == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", d.panel)
	if err != nil {
		return nil, fmt.Errorf("terminald: panel listen %s: %w", d.panel, err)
	}
	t := d.term.Load()
	mux := http.NewServeMux()
	mux.Handle("/", d.board.Sim().Handler())
	mux.HandleFunc("GET /api/terminal", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(t.Status())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("panel server", "err", err)
		}
	}()
	fmt.Fprintf(d.stdout, "device panel: http://%s/\n", ln.Addr())
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
}

// shutdownOr is errShutdown when ctx ended, err otherwise.
func shutdownOr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return errShutdown
	}
	return err
}

// stopWatchdog stops the watchdog on a clean exit (magic close) and leaves
// it to fire after a failure, so the board reboots into a fresh daemon.
func stopWatchdog(w *device.Watchdog, runErr error) {
	if w == nil {
		return
	}
	if runErr == nil {
		w.Close()
	} else {
		w.Abandon()
	}
}

// statusLine is the device panel's one line for a developer or technician.
func statusLine(s terminal.Status) string {
	switch {
	case !s.Online:
		return "offline: reconnecting to the rendezvous server"
	case !s.Paired:
		return "not paired: open the pairing link on the parent's phone"
	case s.State == "idle" && !s.PeerOnline:
		return "ready (parent's phone is offline: a call will be shown to them as missed)"
	}
	return s.State
}

// loadCAs reads the PEM certificates a wss:// server must chain to.
func loadCAs(path string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("terminald: server_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("terminald: server_ca_file %s: no PEM certificate in it", path)
	}
	return pool, nil
}
