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
	"github.com/tuanju/tuanju/device/simboard"
	"github.com/tuanju/tuanju/internal/logging"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/media"
)

const version = "terminald/0.1"

// serve wires the store, the board and the terminal, and runs until ctx ends.
func serve(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	log := logging.New(stderr, cfg.LogFormat, cfg.LogLevel).With("service", "terminald")
	log.Info("starting", "version", version, "codecs", media.LinkedCodecs().String())
	if err := os.MkdirAll(filepath.Dir(cfg.StateFile), 0o700); err != nil {
		return fmt.Errorf("terminald: state dir: %w", err)
	}
	var err error

	profile, _ := media.ProfileByName(cfg.Media.Profile) // validated
	tcfg := terminal.Config{
		ServerURL: cfg.ServerURL,
		PublicURL: cfg.PublicURL,
		Capture: media.CaptureConfig{
			Profile: profile, Camera: cfg.Media.Camera, CameraDevice: cfg.Media.CameraDevice,
			SoftwareEncode: cfg.Media.CameraSoftwareEncode,
			Microphone:     cfg.Media.Microphone, MicrophoneDevice: cfg.Media.MicrophoneDevice, Log: log,
		},
		LoopbackOnly: cfg.LoopbackOnly,
		ICE:          cfg.ICE.terminal(),
		Version:      version,
	}
	if tcfg.AutoAnswer, err = cfg.AutoAnswer.terminal(); err != nil {
		return err
	}
	if cfg.ServerCAFile != "" {
		if tcfg.ServerRoots, err = loadCAs(cfg.ServerCAFile); err != nil {
			return err
		}
	}

	var term atomic.Pointer[terminal.Terminal]
	var button *device.Button
	var buttons <-chan device.ButtonEvent
	var stuck func() bool
	var leds terminal.LEDs
	var sim *simboard.Board
	switch cfg.Board {
	case "sim":
		sim, err = simboard.New(simboard.Options{
			Button: device.ButtonOpts{LongPress: cfg.LongPress.Duration},
			Preview: func() image.Image {
				if t := term.Load(); t != nil {
					return t.Preview()
				}
				return nil
			},
			Screen: func() image.Image {
				if t := term.Load(); t != nil {
					return t.Screen()
				}
				return nil
			},
			Logger: log,
		})
		if err != nil {
			return err
		}
		defer sim.Close()
		button, leds = sim.Button(), sim.LEDs()
		tcfg.Capture.SyntheticSocket = sim.CameraSocket()
	case "gpio":
		btn, l, err := openGPIOBoard(cfg.Pins, log)
		if err != nil {
			return err
		}
		defer btn.Close()
		defer l.Close()
		button, leds = btn, l
	}
	buttons, stuck = button.Events(), button.Stuck

	// Before the watchdog: waiting for a technician is not a hang.
	var status func(string)
	if sim != nil {
		status = sim.SetStatus
	}
	store, err := awaitIdentity(ctx, cfg.StateFile, leds, status, log, stdout)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer store.Close()

	var speaker terminal.Speaker
	if sim != nil {
		speaker = sim
	} else if sp := openSpeaker(cfg, log); sp != nil {
		defer sp.Close()
		speaker = sp
	}
	// The power-up reset gesture, before the watchdog (a person counting
	// presses is not a hang) and before the terminal: it never runs in a
	// call. It returns at once unless the button is held down now.
	if _, err := terminal.BootReset(ctx, terminal.BootDeps{Button: button, LEDs: leds, Speaker: speaker, Store: store, Log: log}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	wd, err := openWatchdog(cfg, log)
	if err != nil {
		return err
	}
	t, err := terminal.New(tcfg, terminal.Deps{
		Store: store, Buttons: buttons, ButtonStuck: stuck, LEDs: leds, Speaker: speaker, Watchdog: wd, Log: log,
		OnStatus: func(s terminal.Status) {
			if sim != nil {
				sim.SetPairingURL(s.PairingURL)
				sim.SetStatus(statusLine(s))
			}
		},
	})
	if err != nil {
		stopWatchdog(wd, nil)
		return err
	}
	term.Store(t)
	fmt.Fprintf(stdout, "terminal %s\n", t.DeviceID())
	if st := t.Status(); !st.Paired {
		// Not the link: it holds the label's secret, and stdout ends up in
		// logs. `terminald label` prints it on request.
		fmt.Fprintln(stdout, "not paired: scan the unit's QR label with the parent's phone, then press the call button (a lost label: terminald label)")
	}

	if cfg.PanelListen != "" {
		if sim == nil {
			return errors.New("terminald: -panel needs -board sim")
		}
		srv, addr, err := startPanel(cfg.PanelListen, sim, t, log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		fmt.Fprintf(stdout, "device panel: http://%s/\n", addr)
	}
	if scr := openScreen(cfg, log); scr != nil {
		defer scr.Close() // gives the console back
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); runScreen(sctx, scr, t, profile.FPS, log) }()
		defer func() { stop(); <-done }()
	}
	err = t.Run(ctx)
	stopWatchdog(wd, err) // not a defer: a panic runs defers, and must reboot the board
	return err
}

// stopWatchdog stops the watchdog on a clean exit (magic close) and leaves
// it to fire after a failure, so the board reboots into a fresh daemon.
func stopWatchdog(wd interface{ Pet() error }, runErr error) {
	w, ok := wd.(*device.Watchdog)
	if !ok || w == nil {
		return
	}
	if runErr == nil {
		w.Close()
	} else {
		w.Abandon()
	}
}

// openWatchdog opens the hardware watchdog on a real board. An absent one is
// logged and the terminal runs without it; a present one that cannot be set
// up is an error (the technician's self-test shows it).
func openWatchdog(cfg config, log *slog.Logger) (interface{ Pet() error }, error) {
	if cfg.Board != "gpio" || cfg.Watchdog == "" {
		return nil, nil
	}
	w, err := device.OpenWatchdog(cfg.Watchdog, cfg.WatchdogTimeout.Duration, log)
	if errors.Is(err, device.ErrAbsent) {
		log.Warn("no hardware watchdog: a hung terminal will not reboot itself", "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("terminald: watchdog: %w", err)
	}
	return w, nil
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

// startPanel serves the simulated board's panel and the terminal's status.
func startPanel(addr string, sim *simboard.Board, t *terminal.Terminal, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("terminald: panel listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", sim.Handler())
	mux.HandleFunc("GET /api/terminal", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(t.Status())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("panel server", "err", err)
		}
	}()
	return srv, ln.Addr().String(), nil
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
