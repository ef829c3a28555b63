package pairing

import (
	"errors"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

// FuzzSDPAgainstPion holds our SDP check against the parser the terminal
// applies SDPs with (pion's): for every SDP that CheckSDP accepts, every
// fingerprint attribute pion reads, at session or media level, in any
// letter case, must be the one fingerprint our check found (the one a
// signature vouches for). A line one parser reads and the other skips — the
// outside review's carriage-return line was one — fails here.
func FuzzSDPAgainstPion(f *testing.F) {
	base := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=fingerprint:" + fpA + "\r\na=setup:actpass\r\n"
	for _, s := range []string{
		base,
		strings.ReplaceAll(base, "\r\n", "\n"),
		strings.Replace(base, "t=0 0\r\n", "t=0 0\r\n\ra=fingerprint:"+fpB+"\r\n", 1),
		strings.Replace(base, "t=0 0\r\n", "t=0 0\r\na=fingerprint:"+fpB+"\r\n", 1),
		strings.Replace(base, "a=mid:0\r\n", "a=mid:0\r\n a=fingerprint:"+fpB+"\r\n", 1),
		strings.Replace(base, "a=mid:0\r\n", "a=mid:0\r\na=Fingerprint:"+fpB+"\r\n", 1),
		strings.Replace(base, "a=mid:0\r\n", "a=mid:0\r\na=fingerprint: "+fpB+"\r\n", 1),
		strings.Replace(base, "a=mid:0\r\n", "a=mid:0\r\na=fingerprint:"+strings.ToLower(fpB)+"\r\n", 1),
		base + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=fingerprint:" + fpB + "\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ours, err := SDPFingerprint(s)
		if err != nil {
			if !errors.Is(err, ErrBadSDP) && !errors.Is(err, ErrFingerprint) {
				t.Fatalf("refused without a sentinel: %v", err)
			}
			return
		}
		var desc sdp.SessionDescription
		if err := desc.UnmarshalString(s); err != nil {
			return // pion refuses it too: nothing is applied
		}
		check := func(where string, attrs []sdp.Attribute) {
			for _, a := range attrs {
				if !strings.EqualFold(a.Key, "fingerprint") {
					continue
				}
				alg, hex, _ := strings.Cut(strings.TrimSpace(a.Value), " ")
				if got, err := Fingerprint(alg, hex); err != nil || got != ours {
					t.Fatalf("pion reads %s fingerprint %q that our check (%q) did not see in %q", where, a.Value, ours, s)
				}
			}
		}
		check("session-level", desc.Attributes)
		for _, m := range desc.MediaDescriptions {
			check("media-level", m.Attributes)
		}
	})
}
