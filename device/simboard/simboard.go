// Package simboard is the simulated terminal hardware for the demo and for
// tests: a button and three LEDs on gpiotest pins, driven through the real
// device.NewButton and device.NewLEDs, so the demo exercises exactly the
// debouncer, thresholds and blink code that run on a real board. Handler
// serves a panel page that draws the LEDs, plays the terminal's sound cues,
// shows its screen and camera, and lets a developer press the button from a
// browser or a phone.
package simboard

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/devicetest"
	"github.com/tuanju/tuanju/media/synth"
)

// PressDuration is how long a simulated short press holds the button: well
// above the debounce time and well below the long-press threshold, like a
// child's quick jab.
const PressDuration = 150 * time.Millisecond

// DefaultMaxHold bounds a hold started from the panel: a browser that never
// sends its release (tab closed mid-press) must not leave the button held
// for ever. It is shorter than the button's stuck threshold, so a forgotten
// hold never shows "needs repair".
const DefaultMaxHold = 30 * time.Second

// ErrClosed is returned by button methods after Close.
var ErrClosed = errors.New("simboard: closed")

// Options configures a Board.
type Options struct {
	// Button is passed to device.NewButton (thresholds, polarity). Tests use
	// short thresholds; the demo uses the defaults a child gets.
	Button device.ButtonOpts
	// Preview returns the latest camera frame for the panel, or nil when
	// there is none yet. A nil Preview means the terminal has no camera.
	Preview func() image.Image
	// Screen returns what the terminal's screen shows now: the parent's
	// decoded video during a call, nil otherwise. A nil Screen means the
	// terminal has no screen (most boards have none; the panel then shows
	// the camera preview alone).
	Screen func() image.Image
	// MaxHold auto-releases a hold after this long (0: DefaultMaxHold,
	// negative: never).
	MaxHold time.Duration
	// Logger is used by the board and, unless Button.Logger is set, by the
	// button and LEDs. Nil discards.
	Logger *slog.Logger
	// HeldAtPowerUp starts the board with the button already down, as a
	// hand holding it while the unit is plugged in: the first step of the
	// factory-reset gesture (device.ResetGesture). Release lifts it.
	HeldAtPowerUp bool
}

// Board is a simulated terminal board.
type Board struct {
	log     *slog.Logger
	line    *devicetest.ButtonLine
	ledPins map[device.Color]*gpiotest.Pin
	button  *device.Button
	leds    *device.LEDs
	preview func() image.Image
	screen  func() image.Image
	opts    Options
	camera  synth.Socket // where the synthetic camera plugs in

	mu         sync.Mutex
	status     string
	pairingURL string
	qrURL      string // pairing URL that qrPNG encodes
	qrPNG      []byte
	cue        string
	cueSeq     uint64
	holdTimer  *time.Timer
	closed     bool
}

// New builds the board: a released button and three dark LEDs.
func New(opts Options) (*Board, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxHold == 0 {
		opts.MaxHold = DefaultMaxHold
	}
	bopts := opts.Button
	if bopts.Logger == nil {
		bopts.Logger = log
	}
	b := &Board{
		log:     log.With("component", "simboard"),
		line:    devicetest.NewButtonLine("SIM_CALL_BUTTON", bopts.ActiveLow),
		ledPins: map[device.Color]*gpiotest.Pin{},
		preview: opts.Preview,
		screen:  opts.Screen,
		opts:    opts,
	}
	if opts.HeldAtPowerUp {
		b.line.Press()
	}
	btn, err := device.NewButton(b.line.Pin, bopts)
	if err != nil {
		return nil, fmt.Errorf("simboard: new: %w", err)
	}
	pins := map[device.Color]gpio.PinOut{}
	for _, c := range device.Colors() {
		p := &gpiotest.Pin{N: "SIM_LED_" + string(c)}
		b.ledPins[c] = p
		pins[c] = p
	}
	leds, err := device.NewLEDs(pins, device.LEDOpts{Logger: log})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("simboard: new: %w", err), btn.Close())
	}
	b.button, b.leds = btn, leds
	return b, nil
}

// Button is the board's button, as the terminal sees it.
func (b *Board) Button() *device.Button { return b.button }

// LEDs are the board's LEDs, as the terminal drives them.
func (b *Board) LEDs() *device.LEDs { return b.leds }

// Close releases the button and closes the button and LEDs.
func (b *Board) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	if b.holdTimer != nil {
		b.holdTimer.Stop()
		b.holdTimer = nil
	}
	b.mu.Unlock()
	b.line.Release()
	return errors.Join(b.button.Close(), b.leds.Close())
}

// SetStatus sets the free-text status line shown on the panel ("paired with
// parent", "offline").
func (b *Board) SetStatus(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status = s
}

// SetPairingURL sets the URL the panel shows as a QR code and link, as the
// printed label on a real unit would. Empty hides the pairing box.
func (b *Board) SetPairingURL(u string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pairingURL = u
}

// PlayCue plays a sound cue on the simulated speaker: the panel page
// synthesizes it (see Handler). The terminal calls it for each cue it would
// play on a real speaker: "calling", "ring", "connected", "no_answer",
// "hangup", "refused". Every call counts, so the same cue twice plays twice.
// It works after Close too: sound is harmless, and the terminal may still be
// winding down.
func (b *Board) PlayCue(cue string) {
	b.mu.Lock()
	b.cue = cue
	b.cueSeq++
	seq := b.cueSeq
	b.mu.Unlock()
	b.log.Debug("sound cue", "cue", cue, "seq", seq)
}

// cueLength is how long the panel's synthesized cues last (one period of the
// repeating ones), from panel.html's CUES.
var cueLength = map[string]time.Duration{
	"calling":   1000 * time.Millisecond,
	"ring":      860 * time.Millisecond,
	"connected": 530 * time.Millisecond,
	"no_answer": 700 * time.Millisecond,
	"hangup":    250 * time.Millisecond,
	"refused":   320 * time.Millisecond,
}

// PlayCueWait plays a cue and returns when the panel has played it to its
// end, as a real speaker would.
func (b *Board) PlayCueWait(ctx context.Context, cue string) error {
	b.PlayCue(cue)
	d, ok := cueLength[cue]
	if !ok {
		d = 500 * time.Millisecond
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("simboard: cue %s: %w", cue, ctx.Err())
	}
}

// StopCue does nothing: the panel stops a repeating cue itself once the
// lights leave its patterns.
func (b *Board) StopCue() {}

// WritePCM drops the parent's voice: the panel plays the cues only.
func (b *Board) WritePCM([]int16) {}

// CameraSocket is the simulated camera's socket: give it to
// media.CaptureConfig.SyntheticSocket, and the panel's unplug button (or
// Unplug) shows how the terminal handles a camera pulled out.
func (b *Board) CameraSocket() *synth.Socket { return &b.camera }

// Hold puts the button down, as a finger would, until Release (or MaxHold).
func (b *Board) Hold() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.holdTimer != nil {
		b.holdTimer.Stop()
	}
	if b.opts.MaxHold > 0 {
		b.holdTimer = time.AfterFunc(b.opts.MaxHold, func() {
			b.log.Warn("panel hold not released, releasing", "after", b.opts.MaxHold)
			_ = b.Release()
		})
	}
	b.line.Press()
	return nil
}

// Release lifts the button.
func (b *Board) Release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.holdTimer != nil {
		b.holdTimer.Stop()
		b.holdTimer = nil
	}
	b.line.Release()
	return nil
}

// Press makes a short press: down, PressDuration, up. The button is
// released even when ctx ends early.
func (b *Board) Press(ctx context.Context) error {
	return b.holdFor(ctx, PressDuration)
}

// LongPress holds the button for the long-press threshold plus a margin,
// then releases it.
func (b *Board) LongPress(ctx context.Context) error {
	return b.holdFor(ctx, b.longPress()+200*time.Millisecond)
}

func (b *Board) longPress() time.Duration {
	if d := b.opts.Button.LongPress; d > 0 {
		return d
	}
	return device.DefaultLongPress
}

// holdFor holds the button for d from the moment the button's debouncer
// has seen it down: on a loaded machine the watcher may not run for longer
// than a short press, and a finger's press is never too short to count.
func (b *Board) holdFor(ctx context.Context, d time.Duration) error {
	if err := b.Hold(); err != nil {
		return err
	}
	var err error
	for !b.button.Pressed() && err == nil {
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			err = fmt.Errorf("simboard: press: %w", ctx.Err())
		}
	}
	if err == nil {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			err = fmt.Errorf("simboard: press: %w", ctx.Err())
		}
	}
	return errors.Join(err, b.Release())
}

// State is what the panel shows.
type State struct {
	Pattern device.Pattern        `json:"pattern"`
	LEDs    map[device.Color]bool `json:"leds"` // actual pin levels: true = lit
	// ButtonDown is the level on the button line (not the debounced state).
	ButtonDown bool   `json:"button_down"`
	Status     string `json:"status"`
	PairingURL string `json:"pairing_url"`
	// Cue is the last sound cue played ("" before the first) and CueSeq
	// counts PlayCue calls, so the panel sees a repeated cue as new.
	Cue    string `json:"cue"`
	CueSeq uint64 `json:"cue_seq"`
	// CameraPlugged is whether the simulated camera is in its socket.
	CameraPlugged bool `json:"camera_plugged"`
}

// State reads the pins as they are now.
func (b *Board) State() State {
	s := State{
		Pattern:    b.leds.Pattern(),
		LEDs:       make(map[device.Color]bool, len(b.ledPins)),
		ButtonDown: (b.line.Pin.Read() == gpio.High) != b.opts.Button.ActiveLow,
	}
	for c, p := range b.ledPins {
		s.LEDs[c] = p.Read() == gpio.High
	}
	b.mu.Lock()
	s.Status, s.PairingURL = b.status, b.pairingURL
	s.Cue, s.CueSeq = b.cue, b.cueSeq
	b.mu.Unlock()
	s.CameraPlugged = b.camera.Plugged()
	return s
}

// LEDPin is the pin the LED of colour c is on: the self-test drives it and
// reads it back.
func (b *Board) LEDPin(c device.Color) gpio.PinIO { return b.ledPins[c] }
