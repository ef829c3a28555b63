package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"log/slog"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/board"
	"github.com/tuanju/tuanju/device/screen/fb"
	"github.com/tuanju/tuanju/internal/logging"
	"github.com/tuanju/tuanju/internal/terminal/selftest"
	"github.com/tuanju/tuanju/media"
)

// errSelftestFailed makes `terminald selftest` exit non-zero.
var errSelftestFailed = errors.New("terminald selftest: some checks failed")

type selftestFlags struct {
	noInteractive bool
	json          bool
	wait, ledHold time.Duration
	screen        string
}

// runSelftest is `terminald selftest [-config F] [flags]`: the technician's
// check of every part of one unit, with the unit's own configuration.
//
// The never-silent rule holds here too: camera and microphone open only
// through a media.Gate, after the in-call light is on and (when there is a
// speaker) a tone has played, and close right after the check.
func runSelftest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f selftestFlags
	cfg, err := loadConfigFor(configUse{name: "terminald selftest", serverOptional: true, usage: `usage: terminald selftest [-config F] [-no-interactive] [-json] [flags]

Checks every part of this unit with its own configuration: button, LEDs,
camera, microphone, speaker, screen, network, storage and clock, one after
another, and prints a table (or JSON). Camera and microphone open only after
the in-call light and a tone, as in a call. Without a server_url (-server)
the network check is skipped and the rest still run. Exits non-zero when a
check fails.

`}, args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&f.noInteractive, "no-interactive", false, "do not ask for a button press (the button check is skipped)")
		fs.BoolVar(&f.json, "json", false, "print the report as JSON")
		fs.DurationVar(&f.wait, "wait", 15*time.Second, "how long to wait for the button press")
		fs.DurationVar(&f.ledHold, "led-hold", time.Second, "how long each LED stays lit")
		fs.StringVar(&f.screen, "screen", "", "framebuffer to test (default: the board profile's screen)")
	})
	if err != nil {
		return err
	}
	log := logging.New(stderr, "text", "warn").With("service", "terminald-selftest")
	u, err := openUnit(cfg, f, log)
	if err != nil {
		return err
	}
	defer u.board.Close()
	checks := selftestChecks(cfg, f, u)
	rep := selftest.Run(ctx, checks, stderr)
	if f.json {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		return fmt.Errorf("terminald selftest: write report: %w", err)
	}
	if rep.Failed() {
		return errSelftestFailed
	}
	return nil
}

// unit is the unit under test: its board, opened as the daemon opens it.
type unit struct {
	board *board.Board
	tone  selftest.Speaker // nil: no speaker fitted
	log   *slog.Logger
	// opening, if set, is told when a media.Gate is about to open camera
	// or microphone (tests: media.Gate.Opening).
	opening func(media.CaptureConfig)
}

// openUnit opens cfg's board. The screen is the one -screen or the board
// profile names (the daemon's default, "auto", is not a promise that the
// unit has one), opened without taking the console.
func openUnit(cfg config, f selftestFlags, log *slog.Logger) (*unit, error) {
	bc := boardConfig(cfg, log)
	bc.Screen = f.screen
	if bc.Screen == "" && cfg.profile != nil {
		bc.Screen = cfg.profile.Screen
	}
	b, err := board.Open(bc)
	if err != nil {
		return nil, fmt.Errorf("terminald selftest: %w", err)
	}
	u := &unit{board: b, log: log}
	if t, ok := b.Tone(); ok {
		u.tone = t
	}
	return u, nil
}

// selftestChecks checks every part of u. A part the board cannot open is a
// failed check that says why; a part the unit does not fit is reported as
// absent, and fails only when the board profile says it is fitted.
func selftestChecks(cfg config, f selftestFlags, u *unit) []selftest.Check {
	b := u.board
	fitted := func(p board.Part) bool { return cfg.profile != nil && cfg.profile.Has(p) }
	onGPIO := b.Kind() == board.GPIO // the pin map names the button and every LED it lists

	btn, btnErr := b.Button()
	button := selftest.ButtonOptions{
		Where: b.ButtonWhere(), Wait: f.wait,
		Interactive: !f.noInteractive && onGPIO,
		Open: func() (selftest.Button, func() error, error) {
			if btnErr != nil {
				return nil, nil, btnErr
			}
			return btn, func() error { return nil }, nil // the board closes it
		},
	}
	if !onGPIO && !f.noInteractive {
		// The device panel belongs to the daemon's simulated board, not
		// this one: nobody can press it, so only its idle level is read.
		button.WhyNot = "the simulated board's button is on no panel during the self-test, so nobody can press it"
	}
	checks := []selftest.Check{selftest.ButtonCheck(button)}
	checks[0].Fitted = onGPIO
	lines := b.LEDLines()
	for _, c := range device.Colors() {
		l, ok := lines[c]
		if !ok {
			continue
		}
		chk := selftest.LEDCheck(c, selftest.LEDLine{Pin: l.Pin, Where: l.Where, ActiveLow: l.ActiveLow, ReadBack: l.ReadBack, Err: l.Err}, f.ledHold)
		chk.Fitted = onGPIO
		checks = append(checks, chk)
	}
	var grab func(context.Context) (selftest.Frame, error)
	if _, ok := b.Camera(); ok {
		grab = func(ctx context.Context) (selftest.Frame, error) { return grabFrame(ctx, cfg, u) }
	}
	var mic selftest.Microphone
	if _, ok := b.Microphone(); ok {
		mic = gateMicrophone{u}
	}
	var openScreen func() (fb.Display, func() error, error)
	if b.ScreenWhere() != "" {
		openScreen = func() (fb.Display, func() error, error) {
			d, fitted, err := b.Screen()
			if err == nil && !fitted {
				err = fmt.Errorf("no screen at %s: %w", b.ScreenWhere(), device.ErrAbsent)
			}
			return d, func() error { return nil }, err // the board closes it
		}
	}
	return append(checks,
		selftest.CameraCheck(fitted(board.PartCamera), grab),
		selftest.MicrophoneCheck(fitted(board.PartMicrophone), mic),
		selftest.SpeakerCheck(fitted(board.PartSpeaker), u.tone),
		selftest.ScreenCheck(fitted(board.PartScreen), b.ScreenWhere(), openScreen),
		selftest.NetworkCheck(selftest.NetworkOptions{ServerURL: cfg.ServerURL}),
		storageCheck(cfg),
		selftest.ClockCheck(selftest.ClockOptions{}),
	)
}

// selftestLight is the in-call light on the unit's own LEDs.
type selftestLight struct{ leds *device.LEDs }

func (l selftestLight) InCall() error { return l.leds.Show(device.InCall) }

// selftestSound is the announce tone on the unit's speaker; a unit without
// one is announced by the light alone, and the report says so.
type selftestSound struct{ sp selftest.Speaker }

func (s selftestSound) Announce(ctx context.Context) error {
	if s.sp == nil {
		return nil
	}
	if err := s.sp.Tone(ctx, 660, 300*time.Millisecond); err != nil {
		return fmt.Errorf("announce tone: %w", err)
	}
	return nil
}

// openAnnounced opens cfg's sources as a call does, through a media.Gate:
// the in-call light on, then the tone (when there is a speaker), then the
// camera or microphone. It returns the capture, a note on how it was
// announced for the report, and what closes it and puts the light out.
func openAnnounced(ctx context.Context, cfg media.CaptureConfig, u *unit) (*media.Capture, string, func(), error) {
	leds := u.board.LEDs()
	lit := 0
	for _, l := range u.board.LEDLines() {
		if l.Err == nil {
			lit++
		}
	}
	g, err := media.NewGate(selftestLight{leds}, selftestSound{u.tone})
	if err != nil {
		return nil, "", nil, err
	}
	g.Opening = u.opening
	c, err := g.Open(ctx, cfg)
	if err != nil {
		leds.Show(device.Off)
		return nil, "", nil, err
	}
	announced := fmt.Sprintf("opened after the in-call light (%d LEDs)", lit)
	if lit == 0 {
		announced = "opened with no LED to light (none fitted)"
	}
	if u.tone != nil {
		announced += " and a tone"
	} else {
		announced += ", no speaker for the tone"
	}
	return c, announced, func() { c.Close(); leds.Show(device.Off) }, nil
}

// grabFrame opens the camera announced (openAnnounced), encodes one frame,
// and closes it again.
func grabFrame(ctx context.Context, cfg config, u *unit) (selftest.Frame, error) {
	camera, _ := u.board.Camera()
	c, announced, done, err := openAnnounced(ctx, media.CaptureConfig{
		Profile: media.LowData, Camera: camera.Source, CameraDevice: camera.Device, SyntheticSocket: camera.Socket,
		SoftwareEncode: cfg.Media.CameraSoftwareEncode,
		Microphone:     media.SourceNone, Log: u.log,
	}, u)
	if err != nil {
		return selftest.Frame{}, err
	}
	defer done()
	n, err := c.FirstVideoFrame(ctx)
	if err != nil {
		return selftest.Frame{}, err
	}
	fr := selftest.Frame{EncodedBytes: n, Announced: announced}
	if img := c.Preview(); img != nil {
		fr.Width, fr.Height = img.Bounds().Dx(), img.Bounds().Dy()
		fr.MeanLuma = meanLuma(img)
	}
	return fr, nil
}

// gateMicrophone is the microphone check's microphone: opened announced
// (openAnnounced), like a call's, and closed after the measurement.
type gateMicrophone struct{ u *unit }

func (m gateMicrophone) Level(ctx context.Context, d time.Duration) (rms, peak float64, err error) {
	mic, _ := m.u.board.Microphone()
	c, _, done, err := openAnnounced(ctx, media.CaptureConfig{
		Profile: media.AudioOnly, Camera: media.SourceNone,
		Microphone: mic.Source, MicrophoneDevice: mic.Device, Log: m.u.log,
	}, m.u)
	if err != nil {
		return 0, 0, err
	}
	defer done()
	return c.MicrophoneLevel(ctx, d)
}

// meanLuma averages the Y plane (or the grey value of any other image).
func meanLuma(img image.Image) float64 {
	if y, ok := img.(*image.YCbCr); ok {
		var sum uint64
		r := y.Rect
		for row := 0; row < r.Dy(); row++ {
			for _, v := range y.Y[row*y.YStride : row*y.YStride+r.Dx()] {
				sum += uint64(v)
			}
		}
		return float64(sum) / float64(r.Dx()*r.Dy())
	}
	var sum float64
	b := img.Bounds()
	for yy := b.Min.Y; yy < b.Max.Y; yy++ {
		for xx := b.Min.X; xx < b.Max.X; xx++ {
			r, g, bl, _ := img.At(xx, yy).RGBA()
			sum += (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)) / 257
		}
	}
	return sum / float64(b.Dx()*b.Dy())
}
