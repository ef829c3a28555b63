package board_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/board"
	"github.com/tuanju/tuanju/device/pins"
)

// Every shipped profile must load, validate, and have wiring rows whose SoC
// signal agrees with the pin spec: PH2 must be offset 7*32+2 on an
// Allwinner chip, GPIO17 must be line GPIO17 on the Pi.
func TestShippedProfiles(t *testing.T) {
	names := board.Names()
	for _, want := range []string{"rpi-zero-2w", "orangepi-zero2w"} {
		if !slices.Contains(names, want) {
			t.Errorf("profile %q not built in (have %v)", want, names)
		}
	}
	port := regexp.MustCompile(`^P([A-L])(\d+)$`)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			p, err := board.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			if p.Name != name {
				t.Errorf("Name = %q, want %q", p.Name, name)
			}
			if !p.Has(board.PartButton) || p.Pins.Button == "" {
				t.Errorf("a terminal without its button: fitted %v, button %q", p.Fitted, p.Pins.Button)
			}
			for _, w := range p.Wiring {
				if w.Line == "" {
					continue
				}
				spec, err := pins.ParseSpec(w.Line)
				if err != nil {
					t.Fatal(err)
				}
				if m := port.FindStringSubmatch(w.Signal); m != nil {
					n, _ := strconv.Atoi(m[2])
					want := int(m[1][0]-'A')*32 + n
					if !spec.ByOffset() || spec.Offset != want {
						t.Errorf("%s: signal %s is offset %d, pin spec says %q", w.Part, w.Signal, want, w.Line)
					}
				} else if !spec.ByOffset() && spec.Name != w.Signal {
					t.Errorf("%s: line %q, signal %q: a named line should be the SoC signal's name", w.Part, w.Line, w.Signal)
				}
			}
		})
	}
}

func TestLookupUnknownListsKnown(t *testing.T) {
	_, err := board.Lookup("rpi-zero-w2")
	if !errors.Is(err, board.ErrUnknownProfile) {
		t.Fatalf("err = %v, want ErrUnknownProfile", err)
	}
	for _, n := range board.Names() {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not list the known profile %q", err, n)
		}
	}
}

func TestLookupReturnsACopy(t *testing.T) {
	p, err := board.Lookup("rpi-zero-2w")
	if err != nil {
		t.Fatal(err)
	}
	p.Pins.LEDs[device.Green] = "CHANGED"
	q, _ := board.Lookup("rpi-zero-2w")
	if q.Pins.LEDs[device.Green] == "CHANGED" {
		t.Fatal("changing a looked-up profile changed the built-in one")
	}
}

func TestParseRejects(t *testing.T) {
	good := `title = "X"
fitted = ["button"]
[pins]
button = "B"
[[wiring]]
part = "button"
header_pin = 3
line = "B"
`
	if _, err := board.Parse("x", []byte(good)); err != nil {
		t.Fatalf("good profile: %v", err)
	}
	tests := []struct{ name, file, want string }{
		{"unknown key", "colour = 1\n" + good, "unknown keys colour"},
		{"unknown part", strings.Replace(good, `["button"]`, `["button", "fan"]`, 1), `unknown part "fan"`},
		{"no title", strings.Replace(good, `title = "X"`, ``, 1), "no title"},
		{"wiring disagrees", strings.Replace(good, `line = "B"`, `line = "C"`, 1), `wiring "button" says line "C"`},
		{"no wiring row", good + "[pins.leds]\ngreen = \"G\"\n", `no wiring row for "led green"`},
		{"relative screen", `screen = "fb1"` + "\n" + good, "absolute"},
		{"bad pin", strings.Replace(good, `button = "B"`, `button = "gpiochip0:-1"`, 1), "line number"},
		{"malformed", "title = ", "profile x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := board.Parse("x", []byte(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// docs/boards.md shows each profile's wiring table exactly as the profile
// has it, so the page a technician wires from cannot drift from the data.
func TestDocsShowWiring(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "boards.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range board.Names() {
		p, _ := board.Lookup(name)
		if !strings.Contains(string(doc), p.WiringTable()) {
			t.Errorf("docs/boards.md lacks %s's wiring table; it should contain:\n%s", name, p.WiringTable())
		}
	}
}
