//go:build !linux

package h264cam

import "fmt"

// Camera needs V4L2: off Linux, Open always reports ErrNoH264.
type Camera struct{}

// Modes has nothing to list off Linux.
func Modes(path string) ([]Mode, error) {
	return nil, fmt.Errorf("h264cam: %s: needs linux: %w", path, ErrNoH264)
}

// Open has no cameras to offer off Linux.
func Open(path string, _ Want) (*Camera, error) {
	return nil, fmt.Errorf("h264cam: %s: needs linux: %w", path, ErrNoH264)
}

func (*Camera) Mode() Mode                      { return Mode{} }
func (*Camera) Path() string                    { return "" }
func (*Camera) ReadAccessUnit() ([]byte, error) { return nil, ErrClosed }
func (*Camera) ForceKeyFrame() error            { return ErrUnsupported }
func (*Camera) SetBitrate(int) (int, error)     { return 0, ErrUnsupported }
func (*Camera) Close() error                    { return nil }
