package media

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestHasIDR(t *testing.T) {
	tests := []struct {
		name string
		au   []byte
		want bool
	}{
		{"empty", nil, false},
		{"sps pps idr", []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 9, 9}, true},
		{"p slice", []byte{0, 0, 0, 1, 0x41, 0x9a, 0}, false},
		{"idr with 3-byte start code", []byte{0, 0, 1, 0x25, 1}, true},
		{"truncated start code", []byte{0, 0, 1}, false},
	}
	for _, tt := range tests {
		if got := hasIDR(tt.au); got != tt.want {
			t.Errorf("%s: hasIDR = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestEndOfTrack: a track's read error is its end when it is io.EOF, or
// any error once the connection is being closed (Stop); before that,
// another error is a fault, logged as one.
func TestEndOfTrack(t *testing.T) {
	closed := errors.New("interceptor is closed") // pion's twcc, unexported
	for _, c := range []struct {
		name    string
		err     error
		stopped bool
		want    bool
	}{
		{"EOF", io.EOF, false, true},
		{"wrapped EOF", fmt.Errorf("read: %w", io.EOF), false, true},
		{"interceptor closed while the call runs", closed, false, false},
		{"interceptor closed after Stop", closed, true, true},
		{"EOF after Stop", io.EOF, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := NewReceiver(ReceiverConfig{})
			if c.stopped {
				r.Stop()
			}
			if got := r.endOfTrack(c.err); got != c.want {
				t.Fatalf("endOfTrack(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}
