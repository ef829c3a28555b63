package media

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/mediadevices"
	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/device/alsa"
	"github.com/tuanju/tuanju/media/internal/alsamic"
)

// alsaMu serialises rediscovery and opening: alsamic and GetUserMedia share
// mediadevices' global driver registry.
var alsaMu sync.Mutex

// openALSAMicrophone opens an ALSA capture device as a mediadevices audio
// track through the alsamic driver: mono 16-bit at 48 kHz, what the Opus
// encoder takes without resampling, in periods of period (the call's Opus
// frame: one wake-up a frame). device is any name device/alsa takes (""
// is "default"). No such device is ErrNoMicrophone.
func openALSAMicrophone(device string, period time.Duration, selector *mediadevices.CodecSelector, log *slog.Logger) (mediadevices.Track, error) {
	alsaMu.Lock()
	defer alsaMu.Unlock()
	if device == "" {
		device = "default"
	}
	// Rediscover, so a USB microphone plugged in since is seen (and the
	// registry lists what the technician's self-test would).
	if _, err := alsamic.Initialize(log); err != nil {
		log.Warn("alsa microphone discovery", "err", err)
	}
	d, err := alsamic.Find(device, log)
	if errors.Is(err, alsa.ErrNoDevice) {
		return nil, fmt.Errorf("alsa %s: %w: %w", device, ErrNoMicrophone, err)
	}
	if err != nil {
		return nil, err
	}
	return userMediaTrack(mediadevices.MediaStreamConstraints{
		Audio: func(c *mediadevices.MediaTrackConstraints) {
			c.DeviceID = prop.StringExact(d.ID())
			c.ChannelCount = prop.IntExact(1)
			c.SampleRate = prop.IntExact(alsamic.Rate)
			c.SampleSize = prop.IntExact(2)
			c.IsFloat = prop.BoolExact(false)
			c.IsInterleaved = prop.BoolExact(true)
			c.Latency = prop.Duration(period)
		},
		Codec: selector,
	}, "alsa "+d.Info().Label)
}
