// Package logging builds the slog loggers every binary uses: JSON on devices
// and servers (machines read it), text in the demo (people read it), and pion's
// logger bridged to the same handler.
package logging

import (
	"io"
	"log/slog"
	"strings"
)

// New returns a logger writing format ("json" or "text") at level ("debug",
// "info", "warn", "error"; default info).
func New(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
