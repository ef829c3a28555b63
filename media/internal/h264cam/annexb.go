package h264cam

import "bytes"

// NAL unit types the passthrough path looks at (ITU-T H.264 table 7-1).
const (
	NALSlice = 1 // non-IDR slice
	NALIDR   = 5 // IDR slice: decoding can start here, given SPS and PPS
	NALSPS   = 7
	NALPPS   = 8
	NALAUD   = 9 // access unit delimiter
)

// NALUnits splits an Annex B access unit into its NAL units, without their
// start codes (3- or 4-byte). Bytes before the first start code are dropped.
func NALUnits(au []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(au); {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 {
			if start >= 0 {
				out = append(out, trimZeros(au[start:i]))
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 && start < len(au) {
		out = append(out, au[start:])
	}
	return out
}

// trimZeros drops the trailing zero bytes before a start code: the first
// byte of a 4-byte start code, or trailing_zero_8bits.
func trimZeros(n []byte) []byte {
	return bytes.TrimRight(n, "\x00")
}

// NALType is the type of a NAL unit without its start code (0 if empty).
func NALType(nal []byte) int {
	if len(nal) == 0 {
		return 0
	}
	return int(nal[0] & 0x1f)
}

// AccessUnitInfo says what an access unit carries, for the passthrough's
// parameter-set cache.
type AccessUnitInfo struct {
	IDR      bool   // has an IDR slice
	SPS, PPS []byte // the last SPS and PPS NAL units in it (no start code), or nil
}

// Inspect reports whether au holds an IDR slice and which parameter sets.
func Inspect(au []byte) AccessUnitInfo {
	var info AccessUnitInfo
	for _, n := range NALUnits(au) {
		switch NALType(n) {
		case NALIDR:
			info.IDR = true
		case NALSPS:
			info.SPS = n
		case NALPPS:
			info.PPS = n
		}
	}
	return info
}
