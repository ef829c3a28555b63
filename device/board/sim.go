package board

import (
	"periph.io/x/conn/v3/gpio"

	"fmt"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/screen/fb"
	"github.com/tuanju/tuanju/device/screen/fb/fbtest"
	"github.com/tuanju/tuanju/device/simboard"
	"github.com/tuanju/tuanju/media/synth"
)

// simBoard is the simulated board: the real button and LED code on
// gpiotest pins (device/simboard), a panel for the speaker and the camera.
type simBoard struct {
	cfg Config
	sb  *simboard.Board
}

func openSim(cfg Config) (*Board, error) {
	sb, err := simboard.New(simboard.Options{
		Button:  device.ButtonOpts{LongPress: cfg.LongPress},
		Preview: cfg.SimPreview,
		Screen:  cfg.SimScreen,
		Logger:  cfg.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("board: sim: %w", err)
	}
	b := &Board{cfg: cfg, hw: &simBoard{cfg: cfg, sb: sb}, sim: sb, button: sb.Button(), leds: sb.LEDs(),
		lines: map[device.Color]LEDLine{}}
	for _, c := range device.Colors() {
		p := sb.LEDPin(c)
		b.lines[c] = LEDLine{Pin: p, Where: p.Name(), ReadBack: func() (gpio.Level, error) { return p.Read(), nil }}
	}
	return b, nil
}

func (s *simBoard) buttonWhere() string { return "simulated button" }

// speaker is the panel, which plays the cues in the developer's browser.
func (s *simBoard) speaker() (Speaker, func() error, bool, error) { return s.sb, nil, true, nil }

// tone: the panel plays only the terminal's cues, so the self-test has no
// speaker to play its tone on.
func (s *simBoard) tone() (Tone, bool) { return nil, false }

// screen is an in-memory display the self-test can read back. The daemon's
// panel shows the terminal's picture itself (Config.SimScreen).
func (s *simBoard) screen() (fb.Display, func() error, bool, error) {
	d, err := fbtest.New(320, 240, fb.VideoRange)
	if err != nil {
		return nil, nil, true, fmt.Errorf("board: sim screen: %w", err)
	}
	return d, nil, true, nil
}

func (s *simBoard) screenWhere() string { return "simulated screen" }

func (s *simBoard) watchdog() (*device.Watchdog, bool, error) { return nil, false, nil }

func (s *simBoard) microphoneFitted() bool      { return s.cfg.Microphone == sourceSynthetic }
func (s *simBoard) cameraSocket() *synth.Socket { return s.sb.CameraSocket() }
func (s *simBoard) close() error                { return s.sb.Close() }
