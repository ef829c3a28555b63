package alsamic

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/mediadevices/pkg/prop"

	"github.com/tuanju/tuanju/device/alsa"
)

// The capture path itself runs against snd-aloop in tests/vm
// (TestALSAMicrophoneOpus); here, what needs no hardware.

func TestNoCards(t *testing.T) {
	old := dir
	dir = t.TempDir() // no controlC* nodes: no cards
	t.Cleanup(func() { dir = old })
	labels, err := Initialize(nil)
	if err != nil || len(labels) != 0 {
		t.Errorf("Initialize with no cards = %v, %v; want none, nil", labels, err)
	}
	for _, name := range []string{"default", "hw:0", "hw:Loopback,1,2"} {
		if _, err := Find(name, nil); !errors.Is(err, alsa.ErrNoDevice) {
			t.Errorf("Find(%q) = %v, want ErrNoDevice", name, err)
		}
	}
	if _, err := Find("dmix", nil); !errors.Is(err, alsa.ErrBadName) {
		t.Errorf("Find(dmix) = %v, want ErrBadName", err)
	}
}

func TestProperties(t *testing.T) {
	m := &microphone{name: "hw:9,0"}
	props := m.Properties()
	if len(props) != 2*len(Periods) {
		t.Fatalf("%d properties, want mono and stereo in each of %d periods", len(props), len(Periods))
	}
	for i, p := range props {
		a := p.Audio
		ch, period := i/len(Periods)+1, Periods[i%len(Periods)]
		if a.ChannelCount != ch || a.SampleRate != 48000 || a.SampleSize != 2 || a.IsFloat || a.IsBigEndian || !a.IsInterleaved || a.Latency != period {
			t.Errorf("property %d = %+v, want %d-channel S16_LE interleaved at 48 kHz in %v periods", i, a, ch, period)
		}
	}
	// A call asks for its Opus frame as the period (media's
	// openALSAMicrophone): each frame length is what mediadevices then
	// picks, and no constraint picks the default's place over an exact fit.
	for _, frame := range []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond} {
		c := prop.MediaConstraints{AudioConstraints: prop.AudioConstraints{ChannelCount: prop.IntExact(1), Latency: prop.Duration(frame)}}
		best, bestD := prop.Media{}, -1.0
		for _, p := range props {
			if d, ok := c.FitnessDistance(p); ok && (bestD < 0 || d < bestD) {
				best, bestD = p, d
			}
		}
		if best.Latency != frame || best.ChannelCount != 1 {
			t.Errorf("asking for %v mono picks %+v", frame, best.Audio)
		}
	}
	for _, p := range []prop.Audio{{IsFloat: true, SampleSize: 4}, {IsBigEndian: true, SampleSize: 2}, {SampleSize: 3}} {
		if _, err := m.AudioRecord(prop.Media{Audio: p}); !errors.Is(err, alsa.ErrUnsupported) {
			t.Errorf("AudioRecord(%+v) = %v, want ErrUnsupported", p, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close of a microphone never recorded = %v", err)
	}
}
