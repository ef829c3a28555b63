package media

import "testing"

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
