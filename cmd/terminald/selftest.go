package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"log/slog"
	"os"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/boards"
	"github.com/tuanju/tuanju/device/devicetest"
	"github.com/tuanju/tuanju/device/pins"
	"github.com/tuanju/tuanju/device/screen/fb"
	"github.com/tuanju/tuanju/device/screen/fb/fbtest"
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
	checks, cleanup := selftestChecks(cfg, f, log)
	defer cleanup()
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

// unitParts is the hardware of the unit under test, real or simulated.
type unitParts struct {
	button    selftest.ButtonOptions
	leds      map[device.Color]selftest.LEDLine
	ledActLow bool
	screen    func() (fb.Display, func() error, error)
	screenAt  string
	speaker   selftest.Speaker    // nil: none configured
	mic       selftest.Microphone // nil: none configured
	// opening, if set, is told when a media.Gate is about to open camera
	// or microphone (tests: media.Gate.Opening).
	opening func(media.CaptureConfig)
}

func selftestChecks(cfg config, f selftestFlags, log *slog.Logger) ([]selftest.Check, func()) {
	var parts unitParts
	fitted := func(p boards.Part) bool { return cfg.profile != nil && cfg.profile.Has(p) }
	switch cfg.Board {
	case "sim":
		parts = simParts()
	default:
		parts = gpioParts(cfg, f, log)
	}
	// The microphone opens through the media gate, announced as a call's
	// (openAnnounced): ALSA on a real board, the synthetic one on the
	// simulated board when configured.
	if (cfg.Board == "gpio" && cfg.Media.Microphone == media.SourceALSA) || (cfg.Board == "sim" && cfg.Media.Microphone == media.SourceSynthetic) {
		parts.mic = gateMicrophone{cfg: cfg, parts: &parts, log: log}
	}
	parts.button.Interactive = !f.noInteractive && cfg.Board != "sim"
	if cfg.Board == "sim" && !f.noInteractive {
		// The self-test makes its own simulated button, on no panel (the
		// device panel belongs to the daemon's simulated board, not this
		// one): nobody can press it, so only its idle level is read.
		parts.button.WhyNot = "the simulated board's button is on no panel during the self-test, so nobody can press it"
	}
	parts.button.Wait = f.wait

	checks := []selftest.Check{selftest.ButtonCheck(parts.button)}
	if cfg.Board == "gpio" {
		checks[0].Fitted = true // the pin map names it
	}
	for _, c := range device.Colors() {
		l, ok := parts.leds[c]
		if !ok {
			continue
		}
		chk := selftest.LEDCheck(c, l, f.ledHold)
		chk.Fitted = cfg.Board == "gpio"
		checks = append(checks, chk)
	}
	var grab func(context.Context) (selftest.Frame, error)
	if cfg.Media.Camera != media.SourceNone && cfg.Media.Camera != "" {
		grab = func(ctx context.Context) (selftest.Frame, error) { return grabFrame(ctx, cfg, parts, log) }
	}
	checks = append(checks,
		selftest.CameraCheck(fitted(boards.Camera), grab),
		selftest.MicrophoneCheck(fitted(boards.Microphone), parts.mic),
		selftest.SpeakerCheck(fitted(boards.Speaker), parts.speaker),
		selftest.ScreenCheck(fitted(boards.Screen), parts.screenAt, parts.screen),
		selftest.NetworkCheck(selftest.NetworkOptions{ServerURL: cfg.ServerURL}),
		selftest.StorageCheck(cfg.StateFile, selftest.MinFreeBytes),
		selftest.ClockCheck(selftest.ClockOptions{}),
	)
	return checks, func() {}
}

// simParts is the simulated board's hardware: a released button, LEDs on
// fake pins that read back, an in-memory screen; the camera is the
// configured source (synthetic on the simulated board).
func simParts() unitParts {
	line := devicetest.NewButtonLine("SIM_CALL_BUTTON", true)
	p := unitParts{
		button: selftest.ButtonOptions{Where: "simulated button", Open: func() (selftest.Button, func() error, error) {
			b, err := device.NewButton(line.Pin, device.ButtonOpts{ActiveLow: true})
			if err != nil {
				return nil, nil, err
			}
			return b, b.Close, nil
		}},
		leds:     map[device.Color]selftest.LEDLine{},
		screenAt: "simulated screen",
		screen: func() (fb.Display, func() error, error) {
			d, err := fbtest.New(320, 240, fb.VideoRange)
			return d, func() error { return nil }, err
		},
	}
	for _, c := range device.Colors() {
		pin := &gpiotest.Pin{N: "SIM_LED_" + string(c)}
		p.leds[c] = selftest.LEDLine{Pin: pin, Where: pin.N, ReadBack: func() (gpio.Level, error) { return pin.Read(), nil }}
	}
	return p
}

// gpioParts finds the real board's lines. A line that is missing is reported
// by its own check, so one wrong pin does not hide the rest.
func gpioParts(cfg config, f selftestFlags, log *slog.Logger) unitParts {
	pm := cfg.Pins
	p := unitParts{leds: map[device.Color]selftest.LEDLine{}, ledActLow: pm.LEDActiveLow}
	if cfg.Speaker != "" {
		p.speaker = alsaSpeaker{cfg.Speaker}
	}
	r, rerr := pins.Host(log)
	resolve := func(spec string) (*pins.Line, error) {
		if rerr != nil {
			return nil, rerr
		}
		return r.Pin(spec)
	}
	btn, berr := resolve(pm.Button)
	p.button.Where = pm.Button
	if btn != nil {
		p.button.Where = btn.Where()
	}
	p.button.Open = func() (selftest.Button, func() error, error) {
		if berr != nil {
			return nil, nil, berr
		}
		pull, err := pm.Pull()
		if err != nil {
			return nil, nil, err
		}
		b, err := device.NewButton(btn, device.ButtonOpts{ActiveLow: pm.ButtonActiveLow, Pull: pull, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		return b, b.Close, nil
	}
	_, debugfsErr := os.Stat(pins.DefaultDebugfs)
	for c, spec := range pm.LEDs {
		l, err := resolve(spec)
		if err != nil {
			p.leds[c] = selftest.LEDLine{Where: spec, Err: err}
			continue
		}
		ll := selftest.LEDLine{Pin: l, Where: l.Where(), ActiveLow: pm.LEDActiveLow}
		if l.Chip != "" && debugfsErr == nil {
			ll.ReadBack = func() (gpio.Level, error) {
				out, lvl, err := l.DrivenLevel(pins.DefaultDebugfs)
				if err == nil && !out {
					err = fmt.Errorf("%s is not an output", l.Where())
				}
				return lvl, err
			}
		}
		p.leds[c] = ll
	}
	screen := f.screen
	if screen == "" && cfg.profile != nil {
		screen = cfg.profile.Screen
	}
	if screen != "" {
		p.screenAt = screen
		p.screen = func() (fb.Display, func() error, error) {
			d, err := fb.OpenWith(screen, fb.Options{Log: log})
			if err != nil {
				return nil, nil, err
			}
			return d, d.Close, nil
		}
	}
	return p
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
// announced for the report, and what closes both.
func openAnnounced(ctx context.Context, cfg media.CaptureConfig, parts unitParts, log *slog.Logger) (*media.Capture, string, func(), error) {
	pins := map[device.Color]gpio.PinOut{}
	for c, l := range parts.leds {
		if l.Pin != nil {
			pins[c] = l.Pin
		}
	}
	leds, err := device.NewLEDs(pins, device.LEDOpts{ActiveLow: parts.ledActLow, Logger: log})
	if err != nil {
		return nil, "", nil, fmt.Errorf("in-call light: %w", err)
	}
	g, err := media.NewGate(selftestLight{leds}, selftestSound{parts.speaker})
	if err != nil {
		leds.Close()
		return nil, "", nil, err
	}
	g.Opening = parts.opening
	c, err := g.Open(ctx, cfg)
	if err != nil {
		leds.Close()
		return nil, "", nil, err
	}
	announced := fmt.Sprintf("opened after the in-call light (%d LEDs)", len(pins))
	if len(pins) == 0 {
		announced = "opened with no LED to light (none fitted)"
	}
	if parts.speaker != nil {
		announced += " and a tone"
	} else {
		announced += ", no speaker for the tone"
	}
	return c, announced, func() { c.Close(); leds.Close() }, nil
}

// grabFrame opens the camera announced (openAnnounced), encodes one frame,
// and closes it again.
func grabFrame(ctx context.Context, cfg config, parts unitParts, log *slog.Logger) (selftest.Frame, error) {
	c, announced, done, err := openAnnounced(ctx, media.CaptureConfig{
		Profile: media.LowData, Camera: cfg.Media.Camera, CameraDevice: cfg.Media.CameraDevice,
		SoftwareEncode: cfg.Media.CameraSoftwareEncode,
		Microphone:     media.SourceNone, Log: log,
	}, parts, log)
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
type gateMicrophone struct {
	cfg   config
	parts *unitParts
	log   *slog.Logger
}

func (m gateMicrophone) Level(ctx context.Context, d time.Duration) (rms, peak float64, err error) {
	c, _, done, err := openAnnounced(ctx, media.CaptureConfig{
		Profile: media.AudioOnly, Camera: media.SourceNone,
		Microphone: m.cfg.Media.Microphone, MicrophoneDevice: m.cfg.Media.MicrophoneDevice, Log: m.log,
	}, *m.parts, m.log)
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
