package fb

import (
	"image"
	"testing"
)

func TestFit(t *testing.T) {
	tests := []struct {
		name     string
		src, dst image.Point
		want     image.Rectangle
	}{
		{"4:3 on 3:2 panel: pillarbox", image.Pt(320, 240), image.Pt(480, 320), image.Rect(26, 0, 453, 320)},
		{"4:3 on 5:3 panel: pillarbox", image.Pt(320, 240), image.Pt(800, 480), image.Rect(80, 0, 720, 480)},
		{"16:9 on 4:3: letterbox", image.Pt(640, 360), image.Pt(320, 240), image.Rect(0, 30, 320, 210)},
		{"same shape, upscaled", image.Pt(320, 240), image.Pt(640, 480), image.Rect(0, 0, 640, 480)},
		{"same size", image.Pt(480, 320), image.Pt(480, 320), image.Rect(0, 0, 480, 320)},
		{"portrait on landscape", image.Pt(240, 320), image.Pt(480, 320), image.Rect(120, 0, 360, 320)},
		{"landscape on portrait panel", image.Pt(320, 240), image.Pt(240, 320), image.Rect(0, 70, 240, 250)},
		{"very wide keeps a row", image.Pt(10000, 1), image.Pt(100, 100), image.Rect(0, 49, 100, 50)},
		{"empty source", image.Pt(0, 240), image.Pt(480, 320), image.Rectangle{}},
		{"empty screen", image.Pt(320, 240), image.Pt(0, 0), image.Rectangle{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fit(tt.src, tt.dst)
			if got != tt.want {
				t.Fatalf("Fit(%v, %v) = %v, want %v", tt.src, tt.dst, got, tt.want)
			}
			if got.Empty() {
				return
			}
			if !got.In(image.Rectangle{Max: tt.dst}) {
				t.Errorf("%v lies outside the screen %v", got, tt.dst)
			}
			// Aspect kept to within a pixel's rounding.
			if d := got.Dx()*tt.src.Y - got.Dy()*tt.src.X; d*d > tt.src.X*tt.src.X+tt.src.Y*tt.src.Y {
				t.Errorf("%v distorts %v: cross product off by %d", got, tt.src, d)
			}
			// One dimension fills the screen.
			if got.Dx() != tt.dst.X && got.Dy() != tt.dst.Y {
				t.Errorf("%v fills neither the width nor the height of %v", got, tt.dst)
			}
		})
	}
}

func TestSamplePositions(t *testing.T) {
	tests := []struct {
		name string
		m, n int
		want []int32
	}{
		{"identity", 4, 4, []int32{0, 1, 2, 3}},
		{"2x up", 2, 4, []int32{0, 0, 1, 1}},
		{"2x down", 8, 4, []int32{1, 3, 5, 7}},
		{"3 to 2", 3, 2, []int32{0, 2}},
		{"to one", 5, 1, []int32{2}},
	}
	for _, tt := range tests {
		got := make([]int32, tt.n)
		samplePositions(got, tt.m, tt.n)
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: samplePositions(%d→%d) = %v, want %v", tt.name, tt.m, tt.n, got, tt.want)
				break
			}
		}
	}
	// Any scale: monotonic, within the source, both ends near the edges.
	for _, mn := range [][2]int{{320, 427}, {240, 320}, {320, 640}, {1280, 480}, {7, 800}} {
		got := make([]int32, mn[1])
		samplePositions(got, mn[0], mn[1])
		for i := range got {
			if got[i] < 0 || int(got[i]) >= mn[0] || (i > 0 && got[i] < got[i-1]) {
				t.Fatalf("%d→%d: position %d is %d (previous %v)", mn[0], mn[1], i, got[i], got[max(i-1, 0)])
			}
		}
		if last := int(got[len(got)-1]); last < mn[0]-1-mn[0]/mn[1] {
			t.Errorf("%d→%d: last output pixel samples %d, far from the edge", mn[0], mn[1], last)
		}
	}
}
