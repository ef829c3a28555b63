package mediatest

import "testing"

func TestIsTail(t *testing.T) {
	sps := []byte{0, 0, 0, 1, 0x67, 1, 2, 3}
	pps := []byte{0, 0, 0, 1, 0x68, 4, 5}
	idr := []byte{0, 0, 0, 1, 0x65, 6, 7, 8, 9}
	unit := append(append(append([]byte{}, sps...), pps...), idr...)
	for _, tc := range []struct {
		name string
		got  []byte
		want bool
	}{
		{"whole unit", unit, true},
		{"last two NAL units", append(append([]byte{}, pps...), idr...), true},
		{"last NAL unit", idr, true},
		{"end of the last NAL unit, header rebuilt", []byte{0, 0, 1, 0x65, 8, 9}, true},
		{"first NAL unit only", sps, false},
		{"other bytes", []byte{0, 0, 1, 0x65, 7, 7}, false},
		{"empty", nil, false},
	} {
		if got := IsTail(tc.got, unit); got != tc.want {
			t.Errorf("%s: IsTail = %v, want %v", tc.name, got, tc.want)
		}
	}
}
