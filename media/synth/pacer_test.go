package synth

import (
	"testing"
	"time"
)

// TestBufferedPacerCatchesUp: a microphone whose reader falls behind (a busy
// CPU) hands over what it recorded meanwhile, a chunk per Read at once,
// rather than losing it as a camera's dropped frames are lost: a reader
// 300 ms late at 10 ms chunks gets those 30 chunks and the one due now
// without waiting, and is then held to real time again. Beyond the capture
// buffer (500 ms) the older audio is lost (an overrun), and the pacer starts
// afresh from now.
func TestBufferedPacerCatchesUp(t *testing.T) {
	const period = 10 * time.Millisecond
	t0 := time.Unix(1_000_000, 0)
	tests := []struct {
		name   string
		late   time.Duration // how late the reader comes back for its second chunk
		atOnce int           // chunks it then gets without waiting
	}{
		{"on time", 0, 1},
		{"300 ms late", 300 * time.Millisecond, 31},
		{"at the buffer's end", captureBuffer, 51},
		{"overrun: 2 s late", 2 * time.Second, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newBufferedPacer(period, captureBuffer, false)
			defer p.close()
			if d := p.due(t0); d != 0 {
				t.Fatalf("first chunk waits %v, want 0", d)
			}
			now := t0.Add(period + tc.late)
			n := 0
			var wait time.Duration
			for n <= 1000 {
				if wait = p.due(now); wait > 0 {
					break
				}
				n++
			}
			if n != tc.atOnce || wait != period {
				t.Fatalf("%d chunks at once, then a wait of %v; want %d and %v", n, wait, tc.atOnce, period)
			}
		})
	}
}
