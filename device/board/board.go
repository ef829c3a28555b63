package board

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/pins"
	"github.com/tuanju/tuanju/device/screen/fb"
	"github.com/tuanju/tuanju/device/simboard"
	"github.com/tuanju/tuanju/media/synth"
)

// The kinds of board, as terminald's board key names them.
const (
	GPIO = "gpio"
	Sim  = "sim"
)

// ScreenAuto opens /dev/fb0 when the board has one and means no screen when
// it has none.
const ScreenAuto = "auto"

// Source names, as media.CaptureConfig takes them (media.SourceNone, …);
// spelled here so the board does not depend on the codecs.
const (
	sourceNone      = "none"
	sourceALSA      = "alsa"
	sourceSynthetic = "synthetic"
)

// Config is what a board needs of terminald's configuration.
type Config struct {
	// Kind is GPIO or Sim.
	Kind string
	// Pins is where the GPIO board's button and LEDs are wired.
	Pins pins.Map
	// Resolver finds Pins' lines; nil uses the running kernel's
	// (pins.Host). Tests give fake chips.
	Resolver *pins.Resolver
	// LongPress is the button's long-press threshold (0: the default).
	LongPress time.Duration
	// Watchdog is the GPIO board's watchdog device, "" for none.
	Watchdog        string
	WatchdogTimeout time.Duration
	// Screen is the GPIO board's framebuffer: ScreenAuto, a device path,
	// or "" for none. Console is the virtual terminal the screen takes
	// over while open ("" leaves the console alone).
	Screen, Console string
	// Speaker is the GPIO board's ALSA playback device, "" for none.
	Speaker string
	// Camera and Microphone are the capture sources ("v4l2", "alsa",
	// "synthetic", "none") and their devices.
	Camera, CameraDevice         string
	Microphone, MicrophoneDevice string
	// SimPreview and SimScreen feed the simulated board's panel (see
	// simboard.Options).
	SimPreview, SimScreen func() image.Image
	// Log is given to every part; nil discards.
	Log *slog.Logger
}

// Speaker plays the terminal's sound cues and the parent's voice.
type Speaker interface {
	PlayCue(cue string)
	PlayCueWait(ctx context.Context, cue string) error
	StopCue()
	WritePCM(pcm []int16)
}

// Tone plays a test tone: the speaker as the self-test drives it.
type Tone interface {
	Tone(ctx context.Context, hz float64, d time.Duration) error
}

// Capture is a camera or microphone: opened only by a call, through
// media.Gate, so the board only says where it is.
type Capture struct {
	Source, Device string
	// Socket is the simulated camera's socket (nil on a GPIO board).
	Socket *synth.Socket
}

// LEDLine is one LED's line, for the self-test that drives it directly.
type LEDLine struct {
	Pin       gpio.PinOut // nil when Err is set
	Where     string
	ActiveLow bool
	// ReadBack reads the level the line is driven at; nil when the board
	// cannot tell.
	ReadBack func() (gpio.Level, error)
	// Err is why the LED's line could not be opened.
	Err error
}

// hardware is one kind of board: GPIO or simulated.
type hardware interface {
	buttonWhere() string
	speaker() (Speaker, func() error, bool, error)
	tone() (Tone, bool)
	screen() (fb.Display, func() error, bool, error)
	screenWhere() string
	watchdog() (*device.Watchdog, bool, error)
	microphoneFitted() bool
	cameraSocket() *synth.Socket
	close() error
}

// Board is one unit's hardware, opened.
type Board struct {
	cfg       Config
	hw        hardware
	sim       *simboard.Board
	button    *device.Button
	buttonErr error
	leds      *device.LEDs
	lines     map[device.Color]LEDLine

	mu      sync.Mutex
	closers []func() error
}

// Open opens cfg's board with its button and LEDs. It fails only when the
// board cannot be built at all (an unknown kind); a button or LED that
// cannot be opened is kept for Err and the self-test to report.
func Open(cfg Config) (*Board, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	switch cfg.Kind {
	case GPIO:
		return openGPIO(cfg), nil
	case Sim:
		return openSim(cfg)
	}
	return nil, fmt.Errorf("board: open: kind %q: %w", cfg.Kind, device.ErrInvalidConfig)
}

// Kind is GPIO or Sim.
func (b *Board) Kind() string { return b.cfg.Kind }

// Button is the call button, or why it could not be opened.
func (b *Board) Button() (*device.Button, error) { return b.button, b.buttonErr }

// ButtonWhere says where the button is, for people.
func (b *Board) ButtonWhere() string { return b.hw.buttonWhere() }

// LEDs drives the LEDs that opened; it is never nil.
func (b *Board) LEDs() *device.LEDs { return b.leds }

// LEDLines are the LEDs the board fits, one line each (a colour the pin map
// leaves out is not fitted and not here).
func (b *Board) LEDLines() map[device.Color]LEDLine { return b.lines }

// Err joins why the button or a fitted LED could not be opened: the daemon
// does not start on a board with a wrong pin map.
func (b *Board) Err() error {
	errs := []error{b.buttonErr}
	for _, c := range device.Colors() {
		if l, ok := b.lines[c]; ok {
			errs = append(errs, l.Err)
		}
	}
	return errors.Join(errs...)
}

// Speaker opens the speaker the cues play on. The board closes it.
func (b *Board) Speaker() (Speaker, bool, error) {
	sp, closeFn, fitted, err := b.hw.speaker()
	b.keep(closeFn)
	return sp, fitted, err
}

// Tone is the speaker as the self-test plays a tone on it: opened for each
// tone, so it never holds the sound device between checks.
func (b *Board) Tone() (Tone, bool) { return b.hw.tone() }

// Screen opens the framebuffer. An "auto" screen that is not there is not
// fitted; a named one that is not there is fitted and fails with
// device.ErrAbsent. The board closes it (giving the console back).
func (b *Board) Screen() (fb.Display, bool, error) {
	d, closeFn, fitted, err := b.hw.screen()
	b.keep(closeFn)
	return d, fitted, err
}

// ScreenWhere says which screen Screen opens, "" when none is configured.
func (b *Board) ScreenWhere() string { return b.hw.screenWhere() }

// Watchdog opens the hardware watchdog; the caller stops it (Close on a
// clean exit, Abandon after a failure). A configured device that does not
// exist fails with device.ErrAbsent.
func (b *Board) Watchdog() (*device.Watchdog, bool, error) { return b.hw.watchdog() }

// Camera is the camera a call opens; not fitted when the source is none.
func (b *Board) Camera() (Capture, bool) {
	c := Capture{Source: b.cfg.Camera, Device: b.cfg.CameraDevice, Socket: b.hw.cameraSocket()}
	return c, c.Source != "" && c.Source != sourceNone
}

// Microphone is the microphone a call opens: ALSA on a GPIO board, the
// synthetic one on the simulated board.
func (b *Board) Microphone() (Capture, bool) {
	return Capture{Source: b.cfg.Microphone, Device: b.cfg.MicrophoneDevice}, b.hw.microphoneFitted()
}

// Sim is the simulated board (its panel, status line and camera socket), nil
// on a GPIO board.
func (b *Board) Sim() *simboard.Board { return b.sim }

// Close closes every part the board opened, the last opened first.
func (b *Board) Close() error {
	b.mu.Lock()
	closers := b.closers
	b.closers = nil
	b.mu.Unlock()
	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		errs = append(errs, closers[i]())
	}
	return errors.Join(append(errs, b.hw.close())...)
}

func (b *Board) keep(closeFn func() error) {
	if closeFn == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closers = append(b.closers, closeFn)
}

// SetStatus shows a line for the developer or technician on the simulated
// board's panel; a GPIO board has no status line (its log says it).
func (b *Board) SetStatus(line string) {
	if b.sim != nil {
		b.sim.SetStatus(line)
	}
}

// SetPairingURL shows the pairing link on the simulated board's panel, as
// a real unit's printed label carries it.
func (b *Board) SetPairingURL(u string) {
	if b.sim != nil {
		b.sim.SetPairingURL(u)
	}
}
