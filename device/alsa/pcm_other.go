//go:build !linux

package alsa

import "fmt"

// PCM is an open ALSA PCM; off Linux none can be opened.
type PCM struct{}

// List finds no sound cards off Linux.
func List(string) ([]Device, error) { return nil, nil }

// Resolve fails off Linux: there is no ALSA.
func Resolve(name string, s Stream, _ string) (Addr, error) {
	return Addr{}, fmt.Errorf("alsa: %s %s: ALSA needs linux: %w", name, s, ErrNoDevice)
}

// Open fails off Linux: there is no ALSA.
func Open(name string, s Stream, _ Config) (*PCM, error) {
	return nil, fmt.Errorf("alsa: open %s %s: ALSA needs linux: %w", name, s, ErrNoDevice)
}

func (*PCM) Addr() Addr                 { return Addr{} }
func (*PCM) Name() string               { return "" }
func (*PCM) Stream() Stream             { return Playback }
func (*PCM) Params() Params             { return Params{} }
func (*PCM) Xruns() int64               { return 0 }
func (*PCM) Write([]int16) (int, error) { return 0, ErrClosed }
func (*PCM) Read([]int16) (int, error)  { return 0, ErrClosed }
func (*PCM) Delay() (int, error)        { return 0, ErrClosed }
func (*PCM) Drain() error               { return ErrClosed }
func (*PCM) Drop() error                { return ErrClosed }
func (*PCM) Close() error               { return nil }
