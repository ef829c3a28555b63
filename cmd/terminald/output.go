package main

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/screen"
	"github.com/tuanju/tuanju/device/screen/fb"
	"github.com/tuanju/tuanju/device/speaker"
	"github.com/tuanju/tuanju/internal/terminal"
)

// screenAuto opens /dev/fb0 when the board has one and runs without a screen
// when it has none.
const screenAuto = "auto"

// openScreen opens the board's framebuffer as cfg.Screen says: "" (no
// screen), "auto", or a device path. A named screen that is missing is
// logged, not fatal: a child can still call with lights and sound.
func openScreen(cfg config, log *slog.Logger) *fb.FB {
	if cfg.Board != "gpio" || cfg.Screen == "" {
		return nil
	}
	path := cfg.Screen
	if path == screenAuto {
		path = fb.DefaultPath
	}
	d, err := fb.OpenWith(path, fb.Options{Console: "/dev/tty0", Log: log})
	switch {
	case err == nil:
		log.Info("screen open", "info", fmt.Sprintf("%+v", d.Info()))
		return d
	case errors.Is(err, device.ErrAbsent) && cfg.Screen == screenAuto:
		log.Info("no screen: lights and sound only", "path", path)
	default:
		log.Error("screen unusable: lights and sound only", "path", path, "err", err)
	}
	return nil
}

// termScreen shows the terminal on the screen.
type termScreen struct{ t *terminal.Terminal }

func (s termScreen) Picture() image.Image { return s.t.Screen() }
func (s termScreen) Pattern() string      { return s.t.Status().Pattern }

// runScreen draws the terminal on d until ctx ends.
func runScreen(ctx context.Context, d *fb.FB, t *terminal.Terminal, fps int, log *slog.Logger) {
	screen.Run(ctx, termScreen{t}, d, screen.Options{FPS: fps, Log: log.With("component", "screen")})
}

// openSpeaker opens the ALSA speaker cfg.Speaker names. A board without one
// runs on lights alone, loudly logged: the child hears neither cues nor the
// parent, and the self-test shows it.
func openSpeaker(cfg config, log *slog.Logger) *speaker.Speaker {
	if cfg.Board != "gpio" || cfg.Speaker == "" {
		return nil
	}
	sp, err := speaker.Open(speaker.Options{Device: cfg.Speaker, Log: log.With("component", "speaker")})
	if err != nil {
		log.Error("no speaker: the child will hear neither the cues nor the parent", "device", cfg.Speaker, "err", err)
		return nil
	}
	return sp
}
