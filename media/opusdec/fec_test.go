package opusdec

import (
	"errors"
	"testing"
)

func TestDecodeFECAndPacketSamples(t *testing.T) {
	d, err := New(48000, 1)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, MaxFrameSamples)
	// TOC 0xF8: CELT fullband 20 ms, one frame; 0xFB: the same, code 3
	// (a count byte follows): 3 frames, 60 ms.
	for _, tc := range []struct {
		packet []byte
		want   int
	}{{[]byte{0xf8}, 960}, {[]byte{0xfb, 0x03}, 2880}} {
		if n, err := d.PacketSamples(tc.packet); err != nil || n != tc.want {
			t.Errorf("PacketSamples(% x) = %d, %v; want %d", tc.packet, n, err, tc.want)
		}
	}
	// A packet without FEC data conceals the lost one: exactly the
	// length asked for, the lost packet's.
	if n, err := d.DecodeFEC([]byte{0xf8}, pcm[:960]); err != nil || n != 960 {
		t.Errorf("DecodeFEC = %d, %v; want 960, nil", n, err)
	}
	if _, err := d.DecodeFEC(nil, pcm); err == nil {
		t.Error("DecodeFEC of no packet succeeded")
	}
	if _, err := d.PacketSamples(nil); err == nil {
		t.Error("PacketSamples of no packet succeeded")
	}
	d.Close()
	if _, err := d.DecodeFEC([]byte{0xf8}, pcm); !errors.Is(err, ErrClosed) {
		t.Errorf("DecodeFEC after Close = %v, want ErrClosed", err)
	}
}
