package opusdec

import (
	"errors"
	"testing"
)

func TestDecodeEdges(t *testing.T) {
	if _, err := New(44100, 1); err == nil {
		t.Error("44.1 kHz accepted; libopus decodes only to 8–48 kHz rates")
	}
	d, err := New(48000, 1)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, MaxFrameSamples)
	// TOC 0xF8: CELT fullband 20 ms, one frame; an empty frame decodes to silence.
	if n, err := d.Decode([]byte{0xf8}, pcm); err != nil || n != 960 {
		t.Errorf("Decode(20 ms empty frame) = %d, %v; want 960, nil", n, err)
	}
	// Concealment of a lost packet produces the requested length.
	if n, err := d.Decode(nil, pcm[:960]); err != nil || n != 960 {
		t.Errorf("Decode(nil) = %d, %v; want 960, nil", n, err)
	}
	if _, err := d.Decode([]byte{0xf8}, nil); err == nil {
		t.Error("decoding into an empty buffer succeeded")
	}
	d.Close()
	d.Close()
	if _, err := d.Decode([]byte{0xf8}, pcm); !errors.Is(err, ErrClosed) {
		t.Errorf("Decode after Close = %v, want ErrClosed", err)
	}
}
