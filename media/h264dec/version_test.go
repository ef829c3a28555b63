package h264dec

import "testing"

func TestLibraryMatchesHeaders(t *testing.T) {
	lib, hdr := LibraryVersion(), headerVersion()
	t.Logf("linked libopenh264 %s, headers %s", lib, hdr)
	if lib != hdr {
		t.Errorf("linked libopenh264 is %s but we compiled against the %s headers: "+
			"the library is not the one pkg-config named", lib, hdr)
	}
}
