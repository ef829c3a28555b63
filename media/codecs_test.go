package media

import (
	"strings"
	"testing"
)

// TestLinkedCodecsMeetFloors reads the versions from the libraries linked into
// this test binary. Linked against mediadevices' bundled OpenH264 2.1.1 (as
// before the codecs came from Debian) it fails: "openh264 2.1.1 is older
// than the floor 2.3.1".
func TestLinkedCodecsMeetFloors(t *testing.T) {
	v := LinkedCodecs()
	t.Logf("linked: %s", v)
	if !strings.HasPrefix(v.Opus, "libopus ") {
		t.Errorf("opus_get_version_string = %q, want \"libopus X.Y.Z\"", v.Opus)
	}
	if err := v.CheckFloors(); err != nil {
		t.Error(err)
	}
}

func TestCheckFloors(t *testing.T) {
	tests := []struct {
		name     string
		v        CodecVersions
		wantErrs []string // substrings; none means no error
	}{
		{"debian 12", CodecVersions{"2.3.1", "libopus 1.3.1"}, nil},
		{"newer", CodecVersions{"2.6.0", "libopus 1.5.2"}, nil},
		{"opus without revision", CodecVersions{"2.3.1", "libopus 1.4"}, nil},
		{"opus suffix", CodecVersions{"2.3.1", "libopus 1.3.1-fixed"}, nil},
		{"mediadevices bundle", CodecVersions{"2.1.1", "libopus 1.3.1"}, []string{"openh264 2.1.1 is older than the floor 2.3.1"}},
		{"just below", CodecVersions{"2.3.0", "libopus 1.3.1"}, []string{"openh264 2.3.0"}},
		{"old major", CodecVersions{"1.8.0", "libopus 1.3.1"}, []string{"openh264 1.8.0"}},
		{"old opus", CodecVersions{"2.3.1", "libopus 1.3"}, []string{"opus 1.3.0 is older than the floor 1.3.1"}},
		{"both old", CodecVersions{"2.0.0", "libopus 1.2.1"}, []string{"openh264 2.0.0", "opus 1.2.1"}},
		{"unreadable", CodecVersions{"", "libopus"}, []string{`openh264 version ""`, `opus version "libopus"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.CheckFloors()
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Errorf("CheckFloors(%s) = %v, want nil", tt.v, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckFloors(%s) = nil, want an error with %q", tt.v, tt.wantErrs)
			}
			for _, w := range tt.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckFloors(%s) = %v, want it to contain %q", tt.v, err, w)
				}
			}
		})
	}
}
