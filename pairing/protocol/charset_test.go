package protocol

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestCharsetsMatchTheirPatterns: each field shape accepts exactly what its
// regular expression does, on the edges (empty, the bounds, one over, each
// byte of 0-255 alone) and on 20,000 random strings per shape, biased to
// the allowed bytes.
func TestCharsetsMatchTheirPatterns(t *testing.T) {
	tests := []struct {
		name  string
		set   *charset
		class string // the regexp's class
		re    *regexp.Regexp
		max   int // longest string to try
	}{
		{"id", idPattern, `[a-z2-7]`, regexp.MustCompile(`^[a-z2-7]{26}$`), 30},
		{"b64url", b64urlPattern, `[A-Za-z0-9_-]`, regexp.MustCompile(`^[A-Za-z0-9_-]{1,512}$`), 520},
		{"cert", certPattern, `[A-Za-z0-9_-]`, regexp.MustCompile(`^[A-Za-z0-9_-]+$`), 1500},
		{"word", wordPattern, `[a-z_]`, regexp.MustCompile(`^[a-z_]{1,64}$`), 70},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			try := func(s string) {
				t.Helper()
				if got, want := tc.set.MatchString(s), tc.re.MatchString(s); got != want {
					t.Fatalf("%q (%d bytes): charset %v, regexp %v", clipString(s), len(s), got, want)
				}
			}
			try("")
			for b := range 256 {
				try(string([]byte{byte(b)}))
			}
			var good []byte
			one := regexp.MustCompile("^" + tc.class + "$")
			for b := range 256 {
				if one.MatchString(string([]byte{byte(b)})) {
					good = append(good, byte(b))
				}
			}
			for _, n := range []int{1, 25, 26, 27, 64, 65, 512, 513, 1000, 1001, 1500} {
				if n <= tc.max {
					try(strings.Repeat(string(good[n%len(good)]), n))
				}
			}
			for range 20_000 {
				b := make([]byte, rng.IntN(tc.max+1))
				for i := range b {
					if rng.IntN(50) == 0 {
						b[i] = byte(rng.IntN(256))
					} else {
						b[i] = good[rng.IntN(len(good))]
					}
				}
				try(string(b))
			}
		})
	}
}

func clipString(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
