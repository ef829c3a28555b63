package opusdec

/*
#include <opus.h>
*/
import "C"

// LibraryVersion is the libopus linked into this binary as the library reports
// it at run time (opus_get_version_string), e.g. "libopus 1.3.1".
func LibraryVersion() string {
	return C.GoString(C.opus_get_version_string())
}
