package terminal

import (
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tuanju/tuanju/internal/terminal/call"
)

// TestTimers: timeouts fire in due order through one clock, each once,
// also several of one kind; nothing is pending once all have fired.
func TestTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ts timers
		defer ts.stop()
		if ts.C() != nil {
			t.Fatal("a clock with nothing pending")
		}
		t0 := time.Now()
		ts.start(t0, call.TimerRing, "a", 45*time.Second)
		ts.start(t0, call.TimerNoAnswer, "b", 5*time.Second)
		ts.start(t0, call.TimerNoAnswer, "c", 5*time.Second)
		ts.start(t0, call.TimerConnect, "d", 20*time.Second)
		var got []call.Timeout
		var at []time.Duration
		for len(got) < 4 {
			now := <-ts.C()
			fired := ts.fire(now)
			got = append(got, fired...)
			for range fired {
				at = append(at, now.Sub(t0))
			}
		}
		want := []call.Timeout{{Timer: call.TimerNoAnswer, Token: "b"}, {Timer: call.TimerNoAnswer, Token: "c"},
			{Timer: call.TimerConnect, Token: "d"}, {Timer: call.TimerRing, Token: "a"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("fired %v, want %v", got, want)
		}
		if wantAt := []time.Duration{5 * time.Second, 5 * time.Second, 20 * time.Second, 45 * time.Second}; !reflect.DeepEqual(at, wantAt) {
			t.Errorf("fired at %v, want %v", at, wantAt)
		}
		if ts.C() != nil {
			t.Error("the clock is still armed with nothing pending")
		}
	})
}
