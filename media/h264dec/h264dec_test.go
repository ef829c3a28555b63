package h264dec

import (
	"errors"
	"testing"
)

// Round trips with real encoded streams live in package media; these cover
// the edges.
func TestDecodeEdges(t *testing.T) {
	d, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if img, err := d.Decode(nil); img != nil || err != nil {
		t.Errorf("Decode(nil) = %v, %v; want nothing", img, err)
	}
	// A P slice with no parameter sets before it cannot be decoded.
	if _, err := d.Decode([]byte{0, 0, 0, 1, 0x41, 0x9a, 0x00, 0x10, 0x20}); err == nil {
		t.Error("decoding a lone P slice succeeded")
	}
	d.Close()
	d.Close()
	if _, err := d.Decode([]byte{0, 0, 0, 1, 0x65}); !errors.Is(err, ErrClosed) {
		t.Errorf("Decode after Close = %v, want ErrClosed", err)
	}
}
