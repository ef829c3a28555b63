package board

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"

	"github.com/tuanju/tuanju/device/pins"
)

// Part is a component a terminal may have.
type Part string

// The parts the self-test checks.
const (
	PartButton     Part = "button"
	PartLEDs       Part = "leds"
	PartCamera     Part = "camera"
	PartMicrophone Part = "microphone"
	PartSpeaker    Part = "speaker"
	PartScreen     Part = "screen"
)

// Parts lists every Part, in the order the self-test checks them.
func Parts() []Part {
	return []Part{PartButton, PartLEDs, PartCamera, PartMicrophone, PartSpeaker, PartScreen}
}

// Profile describes one board as Tuanju builds it.
type Profile struct {
	// Name is the profile's file name without .toml: what board_profile
	// selects.
	Name string `toml:"-"`
	// Title is the board's name as its maker sells it.
	Title string `toml:"title"`
	// SoC names the chip, for the technician.
	SoC string `toml:"soc"`
	// Fitted lists the parts the standard build of this board has: the
	// self-test fails when one of them is absent (absent parts that are not
	// listed are reported, not failed).
	Fitted []Part `toml:"fitted"`
	// Pins is where the button and LEDs are wired.
	Pins pins.Map `toml:"pins"`
	// CameraDevice is a V4L2 device path or label; empty takes the first
	// camera found.
	CameraDevice string `toml:"camera_device"`
	// AudioPlayback and AudioCapture are ALSA PCM names as device/alsa takes them ("hw:CARD,DEV", CARD an index or card id);
	// empty takes the first card that can play or capture.
	AudioPlayback string `toml:"audio_playback"`
	AudioCapture  string `toml:"audio_capture"`
	// Screen is the framebuffer device of a screen the build fits, or empty.
	Screen string `toml:"screen"`
	// Wiring says, for the technician, which physical header pin each part
	// goes to. Every pin in Pins must appear here with the same line.
	Wiring []Wire `toml:"wiring"`
	// Notes is free text shown by the self-test and in docs/boards.md.
	Notes string `toml:"notes"`
}

// Wire is one row of a board's wiring table.
type Wire struct {
	// Part is "button" or "led green", "led red", "led blue" for pins, or
	// anything else (e.g. "ground") for rows that are not in Pins.
	Part string `toml:"part"`
	// HeaderPin is the physical pin number on the board's header.
	HeaderPin int `toml:"header_pin"`
	// Line is the pin spec in Pins ("GPIO17", "300b000.pinctrl:226"); empty
	// for ground and power rows.
	Line string `toml:"line"`
	// Signal is the SoC's name for the pin ("GPIO17", "PH2"), for the
	// technician reading the board's schematic.
	Signal string `toml:"signal"`
}

// Has reports whether the standard build of the board fits part.
func (p Profile) Has(part Part) bool { return slices.Contains(p.Fitted, part) }

// Validate reports every problem at once.
func (p Profile) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("board: profile %s: %s: %w", p.Name, fmt.Sprintf(format, args...), ErrInvalidProfile))
	}
	if p.Title == "" {
		bad("no title")
	}
	for _, part := range p.Fitted {
		if !slices.Contains(Parts(), part) {
			bad("fitted: unknown part %q (want one of %v)", part, Parts())
		}
	}
	if err := p.Pins.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("board: profile %s: %w", p.Name, err))
	}
	if p.Screen != "" && !filepath.IsAbs(p.Screen) {
		bad("screen %q is not an absolute device path", p.Screen)
	}
	// Every pin has a wiring row naming the same line, so the table a
	// technician follows cannot drift from what the terminal opens.
	want := map[string]string{"button": p.Pins.Button}
	for c, line := range p.Pins.LEDs {
		want["led "+string(c)] = line
	}
	rows := map[string]Wire{}
	for _, w := range p.Wiring {
		if w.HeaderPin <= 0 {
			bad("wiring %q: header_pin %d", w.Part, w.HeaderPin)
		}
		if line, isPin := want[w.Part]; isPin {
			rows[w.Part] = w
			if w.Line != line {
				bad("wiring %q says line %q, pins say %q", w.Part, w.Line, line)
			}
		}
	}
	for _, part := range slices.Sorted(maps.Keys(want)) {
		if _, ok := rows[part]; !ok {
			bad("no wiring row for %q", part)
		}
	}
	return errors.Join(errs...)
}

//go:embed profiles/*.toml
var files embed.FS

var load = sync.OnceValues(func() (map[string]Profile, error) {
	out := map[string]Profile{}
	names, err := fs.Glob(files, "profiles/*.toml")
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		p, err := Parse(strings.TrimSuffix(path.Base(n), ".toml"), b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[p.Name] = p
	}
	return out, errors.Join(errs...)
})

// Parse decodes one profile file strictly (an unknown key is an error, as in
// terminald's config) and validates it.
func Parse(name string, data []byte) (Profile, error) {
	var p Profile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&p)
	if err != nil {
		return Profile{}, fmt.Errorf("board: profile %s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return Profile{}, fmt.Errorf("board: profile %s: unknown keys %s: %w", name, strings.Join(keys, ", "), ErrInvalidProfile)
	}
	p.Name = name
	if err := p.Validate(); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// Names lists the built-in profiles, sorted.
func Names() []string {
	all, _ := load()
	return slices.Sorted(maps.Keys(all))
}

// Lookup returns the built-in profile called name. The result is a copy: the
// caller may change it (config overrides do).
func Lookup(name string) (Profile, error) {
	all, err := load()
	if err != nil {
		return Profile{}, err // a broken built-in profile: TestShippedProfiles catches it
	}
	p, ok := all[name]
	if !ok {
		return Profile{}, fmt.Errorf("%w %q (built in: %s)", ErrUnknownProfile, name, strings.Join(Names(), ", "))
	}
	p.Pins.LEDs = maps.Clone(p.Pins.LEDs)
	p.Fitted = slices.Clone(p.Fitted)
	p.Wiring = slices.Clone(p.Wiring)
	return p, nil
}

// WiringTable returns the profile's wiring as a Markdown table, as
// docs/boards.md shows it (a test keeps the two the same).
func (p Profile) WiringTable() string {
	var b strings.Builder
	b.WriteString("| part | header pin | pin spec | SoC signal |\n|---|---|---|---|\n")
	for _, w := range p.Wiring {
		line, sig := w.Line, w.Signal
		if line == "" {
			line = "ground"
		} else {
			line = "`" + line + "`"
		}
		if sig == "" {
			sig = "—"
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", w.Part, w.HeaderPin, line, sig)
	}
	return b.String()
}
