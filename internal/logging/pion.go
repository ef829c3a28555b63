package logging

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// levelTrace is below Debug: pion's trace output is per packet.
const levelTrace = slog.LevelDebug - 4

// Pion bridges pion's leveled loggers (webrtc, ice, dtls, turn) to slog, so
// everything a binary logs goes through one handler in one format. pion's
// Info is chatty (per allocation, per candidate pair), so it goes to Debug.
func Pion(log *slog.Logger) logging.LoggerFactory { return pionFactory{log} }

type pionFactory struct{ log *slog.Logger }

func (p pionFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionScoped{p.log.With("pion", scope)}
}

type pionScoped struct{ log *slog.Logger }

func (p pionScoped) logf(level slog.Level, format string, a ...any) {
	if p.log.Enabled(context.Background(), level) {
		p.log.Log(context.Background(), level, fmt.Sprintf(format, a...))
	}
}

func (p pionScoped) Trace(msg string)               { p.logf(levelTrace, "%s", msg) }
func (p pionScoped) Tracef(format string, a ...any) { p.logf(levelTrace, format, a...) }
func (p pionScoped) Debug(msg string)               { p.logf(slog.LevelDebug, "%s", msg) }
func (p pionScoped) Debugf(format string, a ...any) { p.logf(slog.LevelDebug, format, a...) }
func (p pionScoped) Info(msg string)                { p.logf(slog.LevelDebug, "%s", msg) }
func (p pionScoped) Infof(format string, a ...any)  { p.logf(slog.LevelDebug, format, a...) }
func (p pionScoped) Warn(msg string)                { p.logf(slog.LevelWarn, "%s", msg) }
func (p pionScoped) Warnf(format string, a ...any)  { p.logf(slog.LevelWarn, format, a...) }
func (p pionScoped) Error(msg string)               { p.logf(slog.LevelError, "%s", msg) }
func (p pionScoped) Errorf(format string, a ...any) { p.logf(slog.LevelError, format, a...) }
