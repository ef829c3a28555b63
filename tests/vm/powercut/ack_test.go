package powercut_test

import "testing"

// TestAckedCall: only a whole acknowledgement line names a call; the cut
// may stop the console in the middle of one.
func TestAckedCall(t *testing.T) {
	const id = "yp5e2pzjcx2yg5rimychtqthku"
	for _, tc := range []struct {
		line, want string
	}{
		{"VMPC ack call=" + id + " outcome=missed", id},
		{"VMPC ack call=y", ""}, // seen under load
		{"VMPC ack call=" + id, ""},
		{"VMPC ack call=" + id + " outcome=", ""},
		{"VMPC ack call=" + id[:10] + " outcome=missed", ""},
		{"VMPC call 1", ""},
	} {
		got, ok := ackedCall(tc.line)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("ackedCall(%q) = %q, %v; want %q", tc.line, got, ok, tc.want)
		}
	}
}
