package logbuf_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tuanju/tuanju/internal/logbuf"
)

func TestBuffer(t *testing.T) {
	var b logbuf.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d of writer %d\n", i, i) })
		wg.Go(func() { _ = b.String() })
	}
	wg.Wait()
	for _, tc := range []struct {
		parts []string
		want  bool
	}{
		{[]string{"line 3", "writer 3"}, true},
		{[]string{"line 3", "writer 4"}, false}, // on two lines, not one
		{[]string{"line 9"}, false},
		{nil, true},
	} {
		if got := b.Has(tc.parts...); got != tc.want {
			t.Errorf("Has(%q) = %v, want %v in %q", tc.parts, got, tc.want, b.String())
		}
	}
}
