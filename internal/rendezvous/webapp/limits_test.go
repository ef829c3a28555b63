package webapp_test

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestPageLimitsMatchProtocol: the page's own limits on what it sends are the
// protocol's, so it never sends something the server refuses.
func TestPageLimitsMatchProtocol(t *testing.T) {
	src, err := os.ReadFile("static/call.js")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{
		"MAX_CANDIDATES":      protocol.MaxCandidates,
		"MAX_CANDIDATE_BYTES": protocol.MaxCandidateBytes,
	} {
		m := regexp.MustCompile(`(?m)^const ` + name + ` = (\d+);`).FindSubmatch(src)
		if m == nil {
			t.Fatalf("call.js has no const %s", name)
		}
		if got, _ := strconv.Atoi(string(m[1])); got != want {
			t.Errorf("call.js %s = %d, protocol says %d", name, got, want)
		}
	}
}
