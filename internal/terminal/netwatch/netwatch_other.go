//go:build !linux

package netwatch

import (
	"context"
	"errors"
	"log/slog"
)

// Watch has no news to give off Linux (a developer's machine): the
// terminal's reconnects wait their backoff.
func Watch(context.Context, *slog.Logger) (<-chan struct{}, error) {
	return nil, errors.New("netwatch: rtnetlink is Linux's")
}
