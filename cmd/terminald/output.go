package main

import (
	"context"
	"image"
	"log/slog"

	"github.com/tuanju/tuanju/device/screen"
	"github.com/tuanju/tuanju/device/screen/fb"
	"github.com/tuanju/tuanju/internal/terminal"
)

// termScreen shows the terminal on the screen.
type termScreen struct{ t *terminal.Terminal }

func (s termScreen) Picture() image.Image { return s.t.Screen() }
func (s termScreen) Pattern() string      { return s.t.Status().Pattern }

// runScreen draws the terminal on d until ctx ends.
func runScreen(ctx context.Context, d fb.Display, t *terminal.Terminal, fps int, log *slog.Logger) {
	screen.Run(ctx, termScreen{t}, d, screen.Options{FPS: fps, Log: log.With("component", "screen")})
}
