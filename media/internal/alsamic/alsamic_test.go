package alsamic

import (
	"errors"
	"testing"

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
	if len(props) != 2 {
		t.Fatalf("%d properties, want mono and stereo", len(props))
	}
	for i, p := range props {
		a := p.Audio
		if a.ChannelCount != i+1 || a.SampleRate != 48000 || a.SampleSize != 2 || a.IsFloat || a.IsBigEndian || !a.IsInterleaved || a.Latency != Latency {
			t.Errorf("property %d = %+v, want %d-channel S16_LE interleaved at 48 kHz", i, a, i+1)
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
