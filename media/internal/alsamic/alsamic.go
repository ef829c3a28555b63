// Package alsamic is a mediadevices microphone driver over device/alsa:
// each ALSA capture device registers as a driver.Microphone whose
// AudioRecord reads S16_LE periods from the kernel and hands them on as
// wave.Int16Interleaved chunks, which mediadevices' Opus encoder takes as
// they are.
//
// It replaces mediadevices' own microphone driver (malgo/miniaudio), which
// dlopens libasound and crashes a static binary; that driver is never
// linked. Registration is explicit (Initialize, Find), not an init side
// effect, so a program without sound hardware pays nothing and a device
// plugged in later is found on the next call.
package alsamic

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/mediadevices/pkg/driver"
	"github.com/pion/mediadevices/pkg/io/audio"
	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/mediadevices/pkg/wave"

	"github.com/tuanju/tuanju/device/alsa"
)

// Rate is the sample rate microphones advertise, device/alsa's default:
// Opus's native rate and the one WebRTC sends at, so nothing resamples.
const Rate = alsa.DefaultRate

// Latency is the capture period a microphone opens with unless asked for
// another, device/alsa's default: one Opus frame at 20 ms.
const Latency = alsa.DefaultPeriodTime

// Periods are the capture periods advertised, Latency first: each Opus
// frame length a call sends (media.Profile.AudioFrame). A call asks for a
// period of its frame, so each period read is one frame for the encoder: a
// 40 ms frame waits for its last sample either way, and the process wakes
// once a frame rather than once every 20 ms.
var Periods = []time.Duration{Latency, 10 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond}

// registry holds this package's registrations, by label.
var (
	mu         sync.Mutex
	registered = map[string]driver.Driver{}
	// dir is where the device nodes are ("" is alsa.DefaultDir).
	dir = ""
)

// Initialize registers one microphone per ALSA capture device found,
// labelled with its canonical name ("hw:Loopback,1"), and drops earlier
// registrations of devices that are gone. It returns the labels.
func Initialize(log *slog.Logger) ([]string, error) {
	devs, listErr := alsa.List(dir)
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	var labels []string
	for _, d := range devs {
		if !d.Has(alsa.Capture) {
			continue
		}
		label := d.HWName()
		seen[label] = true
		labels = append(labels, label)
		if _, ok := registered[label]; ok {
			continue
		}
		if _, err := registerLocked(label, log); err != nil {
			return labels, err
		}
	}
	for label, d := range registered {
		if !seen[label] && d.Status() == driver.StateClosed {
			driver.GetManager().Delete(d.ID())
			delete(registered, label)
		}
	}
	if listErr != nil {
		return labels, fmt.Errorf("alsamic: %w", listErr)
	}
	return labels, nil
}

// Find returns the registered microphone for name (any name alsa.Open
// takes: "default", "hw:Loopback,1", "hw:1,0,3"), registering it under its
// canonical name if need be. A name with no capture device behind it is
// alsa.ErrNoDevice (wrapped).
func Find(name string, log *slog.Logger) (driver.Driver, error) {
	a, err := alsa.Resolve(name, alsa.Capture, dir)
	if err != nil {
		return nil, fmt.Errorf("alsamic: %w", err)
	}
	label := a.String()
	mu.Lock()
	defer mu.Unlock()
	if d, ok := registered[label]; ok {
		return d, nil
	}
	return registerLocked(label, log)
}

func registerLocked(label string, log *slog.Logger) (driver.Driver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &microphone{name: label, log: log.With("component", "alsamic", "device", label)}
	if err := driver.GetManager().Register(m, driver.Info{
		Label: label, Name: label, DeviceType: driver.Microphone, Priority: driver.PriorityNormal,
	}); err != nil {
		return nil, fmt.Errorf("alsamic: register %s: %w", label, err)
	}
	found := driver.GetManager().Query(func(d driver.Driver) bool {
		return d.Info().DeviceType == driver.Microphone && d.Info().Label == label
	})
	for _, d := range found {
		if _, ours := alreadyOurs(d); !ours {
			registered[label] = d
			return d, nil
		}
	}
	return nil, fmt.Errorf("alsamic: %s registered but not found", label)
}

// alreadyOurs reports whether d is one of this package's registrations.
func alreadyOurs(d driver.Driver) (string, bool) {
	for label, r := range registered {
		if r.ID() == d.ID() {
			return label, true
		}
	}
	return "", false
}

// microphone is the driver adapter for one ALSA capture device.
type microphone struct {
	name string
	log  *slog.Logger

	mu  sync.Mutex
	pcm *alsa.PCM
}

func (m *microphone) Open() error { return nil }

// Close closes the capture stream, which makes a blocked Read return
// io.EOF.
func (m *microphone) Close() error {
	m.mu.Lock()
	pcm := m.pcm
	m.pcm = nil
	m.mu.Unlock()
	if pcm == nil {
		return nil
	}
	return pcm.Close()
}

// Properties advertises what AudioRecord opens: 16-bit interleaved mono or
// stereo at 48 kHz in chunks of one of Periods. The hardware is asked only
// at AudioRecord: asking here would open (and could find busy) a device
// that GetUserMedia is only comparing.
func (m *microphone) Properties() []prop.Media {
	var out []prop.Media
	for _, ch := range []int{1, 2} {
		for _, period := range Periods {
			out = append(out, prop.Media{Audio: prop.Audio{
				ChannelCount: ch, SampleRate: Rate, SampleSize: 2, Latency: period,
				IsInterleaved: true, IsFloat: false, IsBigEndian: false,
			}})
		}
	}
	return out
}

// opusRates are the rates libopus encodes; the hardware's nearest rate must
// be one of them since nothing here resamples.
var opusRates = map[int]bool{8000: true, 12000: true, 16000: true, 24000: true, 48000: true}

// AudioRecord opens the capture stream as p asks and returns a reader of
// one period per Read.
func (m *microphone) AudioRecord(p prop.Media) (audio.Reader, error) {
	if p.IsFloat || p.IsBigEndian || (p.SampleSize != 0 && p.SampleSize != 2) {
		return nil, fmt.Errorf("alsamic %s: only 16-bit little-endian integer samples: %w", m.name, alsa.ErrUnsupported)
	}
	cfg := alsa.Config{Channels: p.ChannelCount, Rate: p.SampleRate, PeriodTime: p.Latency, Log: m.log}.WithDefaults()
	pcm, err := alsa.Open(m.name, alsa.Capture, cfg)
	if err != nil {
		return nil, fmt.Errorf("alsamic: %w", err)
	}
	got := pcm.Params()
	if !opusRates[got.Rate] {
		pcm.Close()
		return nil, fmt.Errorf("alsamic %s: hardware's nearest rate to %d Hz is %d, which Opus cannot encode: %w",
			m.name, cfg.Rate, got.Rate, alsa.ErrUnsupported)
	}
	if got.Rate != cfg.Rate {
		m.log.Warn("microphone rate differs from the one asked", "asked", cfg.Rate, "got", got.Rate)
	}
	m.mu.Lock()
	if m.pcm != nil {
		m.pcm.Close()
	}
	m.pcm = pcm
	m.mu.Unlock()
	m.log.Info("microphone recording", "subdevice", pcm.Addr().Subdevice, "channels", got.Channels,
		"rate", got.Rate, "period", got.PeriodTime(), "buffer", got.BufferTime())
	info := wave.ChunkInfo{Len: got.PeriodFrames, Channels: got.Channels, SamplingRate: got.Rate}
	return audio.ReaderFunc(func() (wave.Audio, func(), error) {
		a := wave.NewInt16Interleaved(info)
		if _, err := pcm.Read(a.Data); err != nil {
			if errors.Is(err, alsa.ErrClosed) {
				return nil, func() {}, io.EOF
			}
			return nil, func() {}, err
		}
		return a, func() {}, nil
	}), nil
}
