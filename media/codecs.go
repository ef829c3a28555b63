package media

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/opusdec"
)

// Codec floors: the oldest linked codec library the terminal may ship with.
//
// OpenH264 decodes the parent's video, untrusted input. Upstream fixed the
// decoder heap overflow CVE-2025-27091 in 2.6.0 (everything <= 2.5.0 is
// affected); Debian 12 backported the fix to its 2.3.1 (2.3.1+dfsg-3+deb12u1
// and later), the library every build links (see package h264dec). The
// library reports only major.minor.revision, not the Debian revision, so the
// floor is 2.3.1: it rejects mediadevices' bundled 2.1.1 and anything older,
// and the patch level is then guaranteed by taking the library from Debian's
// security-maintained archive (.ci/run installs it). An unpatched upstream
// 2.3.1–2.5.0 would pass this check; no binary of ours links one.
//
// Opus: 1.3.1 is what Debian 12 ships (libopus-dev 1.3.1-3) and what
// mediadevices bundled; no release older than that may come back.
var (
	openh264Floor = [3]int{2, 3, 1}
	opusFloor     = [3]int{1, 3, 1}
)

// CodecVersions names the codec libraries linked into this binary, as each
// reports itself at run time.
type CodecVersions struct {
	OpenH264 string // "2.3.1"
	Opus     string // "libopus 1.3.1"
}

// LinkedCodecs asks the linked openh264 (WelsGetCodecVersionEx) and libopus
// (opus_get_version_string) for their versions.
func LinkedCodecs() CodecVersions {
	return CodecVersions{OpenH264: h264dec.LibraryVersion(), Opus: opusdec.LibraryVersion()}
}

// String is one line for `terminald version` and the logs.
func (v CodecVersions) String() string {
	return fmt.Sprintf("openh264 %s, %s", v.OpenH264, v.Opus)
}

// CheckFloors returns an error naming every codec older than its floor, or
// whose version cannot be read.
func (v CodecVersions) CheckFloors() error {
	var errs []error
	for _, c := range []struct {
		name, version string
		floor         [3]int
	}{
		{"openh264", v.OpenH264, openh264Floor},
		{"opus", v.Opus, opusFloor},
	} {
		got, err := parseVersion(c.version)
		if err != nil {
			errs = append(errs, fmt.Errorf("media: %s version %q: %w", c.name, c.version, err))
			continue
		}
		if less(got, c.floor) {
			errs = append(errs, fmt.Errorf("media: %s %d.%d.%d is older than the floor %d.%d.%d",
				c.name, got[0], got[1], got[2], c.floor[0], c.floor[1], c.floor[2]))
		}
	}
	return errors.Join(errs...)
}

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?`)

// parseVersion takes the first "major.minor[.revision]" in s: "2.3.1",
// "libopus 1.3.1", "libopus 1.4" (a missing revision is 0).
func parseVersion(s string) ([3]int, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return [3]int{}, errors.New("no version number")
	}
	var v [3]int
	for i := range 3 {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.Atoi(m[i+1])
		if err != nil {
			return [3]int{}, err
		}
		v[i] = n
	}
	return v, nil
}

func less(a, b [3]int) bool {
	for i := range 3 {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}
