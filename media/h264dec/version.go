package h264dec

/*
#include <wels/codec_api.h>
#include <wels/codec_ver.h>
*/
import "C"

import "fmt"

// LibraryVersion is the version of the libopenh264 linked into this binary,
// "major.minor.revision", as the library reports it at run time
// (WelsGetCodecVersionEx), not as the headers we compiled against say: the
// two differ exactly when the wrong library got linked.
func LibraryVersion() string {
	var v C.OpenH264Version
	C.WelsGetCodecVersionEx(&v)
	return fmt.Sprintf("%d.%d.%d", uint(v.uMajor), uint(v.uMinor), uint(v.uRevision))
}

// headerVersion is the version in the codec_ver.h we compiled against. It
// must equal LibraryVersion: openh264's structs change between releases, so a
// library from elsewhere than our headers' package would be read with the
// wrong layout.
func headerVersion() string {
	return fmt.Sprintf("%d.%d.%d", C.OPENH264_MAJOR, C.OPENH264_MINOR, C.OPENH264_REVISION)
}
