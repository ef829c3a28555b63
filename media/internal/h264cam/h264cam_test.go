package h264cam_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tuanju/tuanju/media/internal/h264cam"
	"github.com/tuanju/tuanju/media/mediatest"
)

func TestNALUnits(t *testing.T) {
	tests := []struct {
		name string
		au   []byte
		want [][]byte
	}{
		{"four-byte start codes", []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 4, 5}, [][]byte{{0x67, 1, 2}, {0x68, 3}, {0x65, 4, 5}}},
		{"leading garbage dropped", []byte{9, 9, 0, 0, 1, 0x41, 7}, [][]byte{{0x41, 7}}},
		{"no start code", []byte{0x65, 1, 2}, nil},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h264cam.NALUnits(tt.au)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d NAL units %x, want %d %x", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("NAL %d = %x, want %x", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestParseSPSOpenH264 parses the SPS of streams from our own encoder: the
// size must be the encoded one (cropping included: 180 is not a multiple of
// 16) and the profile constrained baseline.
func TestParseSPSOpenH264(t *testing.T) {
	for _, size := range [][2]int{{320, 240}, {320, 180}, {640, 360}} {
		aus, err := mediatest.EncodeH264(size[0], size[1], 15, 200_000, 2)
		if err != nil {
			t.Fatal(err)
		}
		info := h264cam.Inspect(aus[0])
		if !info.IDR || info.SPS == nil || info.PPS == nil {
			t.Fatalf("%v: first access unit: IDR %v, SPS %x, PPS %x; want all three", size, info.IDR, info.SPS, info.PPS)
		}
		if next := h264cam.Inspect(aus[1]); next.IDR || next.SPS != nil {
			t.Fatalf("%v: second access unit is an IDR or carries an SPS", size)
		}
		sps, err := h264cam.ParseSPS(info.SPS)
		if err != nil {
			t.Fatalf("%v: %v", size, err)
		}
		if sps.Width != size[0] || sps.Height != size[1] {
			t.Errorf("SPS size %dx%d, want %dx%d", sps.Width, sps.Height, size[0], size[1])
		}
		if !sps.ConstrainedBaseline() {
			t.Errorf("%v: openh264's stream (profile-level-id %s) not seen as constrained baseline", size, sps.ProfileLevelID())
		}
	}
}

func TestParseSPS(t *testing.T) {
	tests := []struct {
		name    string
		nal     []byte
		want    h264cam.SPS
		wantCB  bool
		wantErr bool
	}{
		// x264 High 4:2:0, 1280x720: 67 64 00 1f ac d9 40 50 05 bb 01 10 00 00 03 00 10 00 00 03 03 c0 f1 83 19 60
		{name: "high 720p", nal: []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60},
			want: h264cam.SPS{ProfileIDC: 100, Constraints: 0, LevelIDC: 31, Width: 1280, Height: 720}},
		{name: "not an SPS", nal: []byte{0x68, 0xce, 0x3c, 0x80}, wantErr: true},
		{name: "truncated", nal: []byte{0x67, 0x42, 0xc0}, wantErr: true},
		{name: "truncated body", nal: []byte{0x67, 0x42, 0xc0, 0x1e, 0xff}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h264cam.ParseSPS(tt.nal)
			if tt.wantErr {
				if !errors.Is(err, h264cam.ErrBadSPS) {
					t.Fatalf("err = %v, want ErrBadSPS", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got.ConstrainedBaseline() != tt.wantCB {
				t.Errorf("constrained baseline = %v, want %v", got.ConstrainedBaseline(), tt.wantCB)
			}
		})
	}
}

func mode(w, h int, fps float64) h264cam.Mode { return h264cam.Mode{Width: w, Height: h, FPS: fps} }

func TestChooseMode(t *testing.T) {
	want := h264cam.Want{Width: 320, Height: 240, FPS: 15}
	tests := []struct {
		name  string
		modes []h264cam.Mode
		want  h264cam.Mode
		ok    bool
	}{
		{"exact", []h264cam.Mode{mode(1920, 1080, 30), mode(320, 240, 30), mode(640, 480, 30)}, mode(320, 240, 30), true},
		{"nearest fitting", []h264cam.Mode{mode(1920, 1080, 30), mode(640, 480, 30), mode(320, 180, 30)}, mode(320, 180, 30), true},
		{"too slow", []h264cam.Mode{mode(320, 240, 10)}, h264cam.Mode{}, false},
		{"rate unknown fits", []h264cam.Mode{mode(640, 360, 0)}, mode(640, 360, 0), true},
		{"only large", []h264cam.Mode{mode(1280, 720, 30), mode(1920, 1080, 30)}, h264cam.Mode{}, false},
		{"none", nil, h264cam.Mode{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := h264cam.ChooseMode(tt.modes, want)
			if ok != tt.ok || got != tt.want {
				t.Errorf("ChooseMode = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
