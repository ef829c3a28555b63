package media_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tuanju/tuanju/media"
)

// script records what the gate asked of the light and the sound, and when
// the sources opened; the light can be made to go off after n asks.
type script struct {
	mu       sync.Mutex
	log      []string
	lightOn  int // the light answers "on" this many times, then "off" (-1: always on)
	soundErr error
}

func (s *script) add(e string) { s.mu.Lock(); s.log = append(s.log, e); s.mu.Unlock() }

type scriptLight struct{ *script }

func (l scriptLight) InCall() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lightOn == 0 {
		l.log = append(l.log, "light off")
		return errors.New("light off")
	}
	l.lightOn--
	l.log = append(l.log, "light on")
	return nil
}

type scriptSound struct{ *script }

func (s scriptSound) Announce(context.Context) error {
	s.add("sound")
	return s.soundErr
}

// TestGateAnnouncesBeforeOpening: the gate opens nothing without the in-call
// light and the announce sound played to its end, in that order, and closes
// what it opened when the light went off meanwhile.
func TestGateAnnouncesBeforeOpening(t *testing.T) {
	cfg := media.CaptureConfig{Profile: media.LowData, Camera: media.SourceSynthetic, Microphone: media.SourceSynthetic}
	tests := []struct {
		name     string
		lightOn  int
		soundErr error
		wantErr  bool
		want     []string
	}{
		{"light, sound, light, open, light", -1, nil, false, []string{"light on", "sound", "light on", "open", "light on"}},
		{"no light: nothing plays or opens", 0, nil, true, []string{"light off"}},
		{"sound cut short: nothing opens", -1, context.Canceled, true, []string{"light on", "sound"}},
		{"call ended during the sound: nothing opens", 1, nil, true, []string{"light on", "sound", "light off"}},
		{"call ended while opening: closed again", 2, nil, true, []string{"light on", "sound", "light on", "open", "light off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{lightOn: tt.lightOn, soundErr: tt.soundErr}
			g, err := media.NewGate(scriptLight{s}, scriptSound{s})
			if err != nil {
				t.Fatal(err)
			}
			g.Opening = func(media.CaptureConfig) { s.add("open") }
			c, err := g.Open(t.Context(), cfg)
			if c != nil {
				defer c.Close()
			}
			if gotErr := err != nil; gotErr != tt.wantErr || (err != nil && !errors.Is(err, media.ErrNotAnnounced)) {
				t.Fatalf("Open: %v, want error %v (wrapping ErrNotAnnounced)", err, tt.wantErr)
			}
			if (c != nil) == tt.wantErr {
				t.Errorf("Open returned capture %v with error %v", c, err)
			}
			if !slices.Equal(s.log, tt.want) {
				t.Errorf("gate did %q, want %q", s.log, tt.want)
			}
		})
	}
	if _, err := media.NewGate(nil, scriptSound{&script{}}); !errors.Is(err, media.ErrNotAnnounced) {
		t.Errorf("NewGate without a light: %v, want ErrNotAnnounced", err)
	}
	if _, err := media.NewGate(scriptLight{&script{}}, nil); !errors.Is(err, media.ErrNotAnnounced) {
		t.Errorf("NewGate without a sound: %v, want ErrNotAnnounced", err)
	}
}

// TestOnlyMediaReachesDrivers is the import-graph half of the never-silent
// rule (the compiler keeps the other half: media's open is unexported and
// its drivers are under media/internal). In the module's product code —
// every package, with and without the VM tests' build tag, test files
// aside — nothing outside media imports mediadevices' GetUserMedia (its
// root package) or its drivers, and device/alsa (which can capture) is
// imported only by the playback side and media's own microphone driver.
func TestOnlyMediaReachesDrivers(t *testing.T) {
	const mod = "github.com/tuanju/tuanju"
	inMedia := func(p string) bool { return p == mod+"/media" || strings.HasPrefix(p, mod+"/media/") }
	rules := []struct {
		imported func(string) bool
		what     string
		allowed  func(importer string) bool
	}{
		{func(p string) bool { return p == "github.com/pion/mediadevices" }, "mediadevices (GetUserMedia)", inMedia},
		{func(p string) bool {
			return p == "github.com/pion/mediadevices/pkg/driver" || strings.HasPrefix(p, "github.com/pion/mediadevices/pkg/driver/")
		}, "a mediadevices driver", inMedia},
		{func(p string) bool { return p == mod+"/device/alsa" }, "device/alsa (it can capture)", func(imp string) bool {
			switch imp {
			case mod + "/device/speaker", // cues and the parent's voice: playback
				mod + "/media",                  // its errors (alsa.ErrNoDevice), behind media.Gate
				mod + "/media/internal/alsamic", // the microphone, behind media.Gate
				mod + "/device/board":           // the self-test tone: playback (tone.go)
				return true
			}
			return false
		}},
	}
	seen := 0
	for _, tags := range []string{"", "vmtest"} {
		cmd := exec.Command("go", "list", "-e", "-tags", tags, "-json=ImportPath,Imports", "./...")
		cmd.Dir = filepath.Join("..")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(out)))
		for {
			var p struct {
				ImportPath string
				Imports    []string
			}
			if err := dec.Decode(&p); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			seen++
			for _, imp := range p.Imports {
				for _, r := range rules {
					if r.imported(imp) && !r.allowed(p.ImportPath) {
						t.Errorf("%s (tags %q) imports %s: camera and microphone open only through media.Gate", p.ImportPath, tags, fmt.Sprint(r.what))
					}
				}
			}
		}
	}
	if seen < 20 {
		t.Fatalf("go list saw only %d packages: the check proves nothing", seen)
	}
}
