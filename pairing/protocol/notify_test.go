package protocol

import "testing"

func TestMaskPhone(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"+8613812345678", "+*********5678"},
		{"+4915112345678", "+*********5678"},
		{"+1234567", "+***4567"},
		{"+123456789012345", "+***********2345"},
		{"13812345678", "+***0000"}, // not E.164: nothing of it shows
	} {
		got := MaskPhone(tc.in)
		if got != tc.want {
			t.Errorf("MaskPhone(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !phoneHintPattern.MatchString(got) {
			t.Errorf("MaskPhone(%q) = %q does not pass as a phone_hint", tc.in, got)
		}
	}
}
