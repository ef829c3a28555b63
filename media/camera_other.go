//go:build !linux

package media

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/mediadevices"
)

// openV4L2 has no cameras to offer off Linux.
func openV4L2(context.Context, string, Profile, *mediadevices.CodecSelector, *slog.Logger) (mediadevices.Track, error) {
	return nil, fmt.Errorf("v4l2 needs linux: %w", ErrNoCamera)
}

// v4l2Path has no cameras to name off Linux.
func v4l2Path(device string) (string, error) {
	return "", fmt.Errorf("v4l2 %s needs linux: %w", device, ErrNoCamera)
}
