package media

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tuanju/tuanju/media/mediatest"
)

// connectWithin is how long after the answer a call may take to show
// video both ways and still count as connected: about as long as a child
// holds still looking at a dark screen before giving up on it.
const connectWithin = 10 * time.Second

// TestCallsConnectAtTenPercentLoss is the bar for a lossy link: at
// 10% loss each way from the first packet on (ICE checks, the DTLS
// handshake and media alike), at least 95% of calls show video both ways
// within connectWithin. Each call is a fresh pair of real pion peers with
// the real encoders and ABR (dialImpairedCall), a different loss pattern
// each (its seed). 20 calls here (19 must connect); TUANJU_IMPAIR=full
// runs 60. It logs answer → first decoded frame both ways (p50, p95), the
// figure README's impairment table gives.
func TestCallsConnectAtTenPercentLoss(t *testing.T) {
	n := 20
	if os.Getenv("TUANJU_IMPAIR") == "full" {
		n = 60
	}
	var firsts []time.Duration // answer → video both ways, connected calls
	var failed []string
	for i := range n {
		t.Run(fmt.Sprint("call-", i), func(t *testing.T) {
			start := time.Now()
			c := dialImpairedCall(t, uint64(1000+i), mediatest.Impairment{Loss: 0.10})
			for time.Since(start) < connectWithin {
				if c.term.recv.Stats().VideoFramesDecoded > 0 && c.phone.recv.Stats().VideoFramesDecoded > 0 {
					firsts = append(firsts, time.Since(start))
					return
				}
				time.Sleep(10 * time.Millisecond) // polling the receivers, not an assertion
			}
			failed = append(failed, fmt.Sprintf("call %d: terminal decoded %d frames, phone %d",
				i, c.term.recv.Stats().VideoFramesDecoded, c.phone.recv.Stats().VideoFramesDecoded))
		})
	}
	for _, f := range failed {
		t.Log(f)
	}
	if len(firsts)*100 < 95*n {
		t.Fatalf("%d of %d calls showed video both ways within %v at 10%% loss, want at least 95%%", len(firsts), n, connectWithin)
	}
	slices.Sort(firsts)
	t.Logf("10%% loss: %d of %d calls showed video both ways within %v; answer → first frame both ways p50 %v, p95 %v",
		len(firsts), n, connectWithin, firsts[len(firsts)/2].Round(time.Millisecond), firsts[len(firsts)*95/100].Round(time.Millisecond))
}
