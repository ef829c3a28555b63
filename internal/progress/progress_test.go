package progress

import (
	"bytes"
	"strings"
	"testing"
)

// TestBars: a bar per stage in mode always, with the stage's description
// and the count or size; nothing in mode never, in mode auto on a buffer
// (not a terminal), or for an empty stage.
func TestBars(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		unit       Unit
		total      int64
		want       []string // in the output, in order; nil: no output
	}{
		{"count", Always, Count, 10, []string{"issuing units", "(5/10)", "writing bundles", "(1/10)"}},
		{"bytes", Always, Bytes, 2 << 20, []string{"issuing units", "B/s", "writing bundles"}},
		{"never", Never, Count, 10, nil},
		{"auto on a buffer", Auto, Count, 10, nil},
		{"empty stage", Always, Count, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			b := New(&out, tc.mode, tc.unit)
			b.Update("issuing units", tc.total/2, tc.total)
			b.Update("issuing units", tc.total, tc.total)
			b.Update("writing bundles", 1, tc.total)
			b.Finish()
			got := out.String()
			if tc.want == nil {
				if got != "" {
					t.Fatalf("drew %q", got)
				}
				return
			}
			at := 0
			for _, w := range tc.want {
				i := strings.Index(got[at:], w)
				if i < 0 {
					t.Fatalf("no %q after byte %d in %q", w, at, got)
				}
				at += i + len(w)
			}
		})
	}
	var zero *Bars
	zero.Update("x", 1, 2) // a nil *Bars draws nothing and does not panic
	zero.Finish()
}
