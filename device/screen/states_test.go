package screen

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"testing"

	"github.com/tuanju/tuanju/device/screen/fb"
	"github.com/tuanju/tuanju/device/screen/fb/fbtest"
)

// Each state's colour, and whether its shape covers three probe points
// (in shape units: the centre, right of it, near the top). Together they
// tell every state from every other, so a child can too.
func TestScreens(t *testing.T) {
	W, B := true, false
	tests := []struct {
		state  string
		bg     color.RGBA
		probes [3]bool // (0,0), (0.35,0), (0,0.9)
	}{
		{"off", Black, [3]bool{B, B, B}},
		{"ready", Green, [3]bool{W, W, W}},
		{"calling", Green, [3]bool{W, B, B}},
		{"ringing", Blue, [3]bool{W, B, W}},
		{"in_call", Blue, [3]bool{W, W, B}},
		{"in_call_voice", Blue, [3]bool{B, W, B}},
		{"pairing", Blue, [3]bool{W, B, B}},
		{"pairable", Blue, [3]bool{B, B, W}},
		{"no_answer", Red, [3]bool{B, B, W}},
		{"unreachable", Red, [3]bool{B, B, B}},
		{"offline", Red, [3]bool{W, W, B}},
		{"fault", Red, [3]bool{W, B, B}},
	}
	if len(tests) != len(States()) {
		t.Fatalf("the table covers %d states, States() has %d", len(tests), len(States()))
	}
	for _, size := range []image.Point{{480, 320}, {240, 320}, {800, 480}} {
		for _, tt := range tests {
			img := image.NewRGBA(image.Rectangle{Max: size})
			if err := Render(img, tt.state); err != nil {
				t.Fatalf("Render(%q): %v", tt.state, err)
			}
			if got := img.RGBAAt(0, 0); got != tt.bg {
				t.Errorf("%s at %v: corner is %v, want %v", tt.state, size, got, tt.bg)
			}
			unit := 0.35 * float64(min(size.X, size.Y))
			for i, p := range [][2]float64{{0, 0}, {0.35, 0}, {0, 0.9}} {
				x, y := size.X/2+int(p[0]*unit), size.Y/2-int(p[1]*unit)
				want := tt.bg
				if tt.probes[i] {
					want = White
				}
				if got := img.RGBAAt(x, y); got != want {
					t.Errorf("%s at %v: probe %v (%d,%d) is %v, want %v", tt.state, size, p, x, y, got, want)
				}
			}
			// Big enough to see across a room, small enough to stay a shape.
			white := 0
			for i := 0; i < len(img.Pix); i += 4 {
				if img.Pix[i] == 255 && img.Pix[i+1] == 255 && img.Pix[i+2] == 255 {
					white++
				}
			}
			if frac := float64(white) / float64(size.X*size.Y); tt.state != "off" && (frac < 0.04 || frac > 0.5) {
				t.Errorf("%s at %v: shape covers %.1f%% of the screen, want 4..50%%", tt.state, size, 100*frac)
			}
		}
	}
}

func TestUnknownStateShowsFault(t *testing.T) {
	got := image.NewRGBA(image.Rect(0, 0, 64, 48))
	want := image.NewRGBA(got.Rect)
	if err := Render(got, "exploded"); !errors.Is(err, ErrUnknownState) {
		t.Fatalf("Render(unknown) = %v, want ErrUnknownState", err)
	}
	if err := Render(want, "fault"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Pix, want.Pix) {
		t.Error("an unknown state does not show the fault screen")
	}
}

// Show puts exactly what Render draws on a display, at its size.
func TestShow(t *testing.T) {
	d, err := fbtest.New(320, 240, fb.VideoRange)
	if err != nil {
		t.Fatal(err)
	}
	want := image.NewRGBA(d.Bounds())
	for _, s := range States() {
		if err := Show(d, s); err != nil {
			t.Fatalf("Show(%q): %v", s, err)
		}
		if err := Render(want, s); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.Snapshot().Pix, want.Pix) {
			t.Errorf("Show(%q) shows something other than Render draws", s)
		}
	}
	if err := Show(d, "nope"); !errors.Is(err, ErrUnknownState) {
		t.Errorf("Show(unknown) = %v, want ErrUnknownState", err)
	}
}

// Sub-images (a screen region) are drawn in their own coordinates.
func TestRenderSubImage(t *testing.T) {
	whole := image.NewRGBA(image.Rect(0, 0, 200, 100))
	part := whole.SubImage(image.Rect(100, 0, 200, 100)).(*image.RGBA)
	if err := Render(part, "ready"); err != nil {
		t.Fatal(err)
	}
	if got := whole.RGBAAt(50, 50); got != (color.RGBA{}) {
		t.Errorf("outside the sub-image: %v, want untouched", got)
	}
	if got := whole.RGBAAt(150, 50); got != White {
		t.Errorf("centre of the sub-image: %v, want the white disc", got)
	}
}
