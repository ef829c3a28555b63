package terminal

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestMediaStagesLoggedOnce: a call's media steps are logged in one line,
// each as milliseconds after the offer, once the terminal both sends and
// is connected (in either order), and only once: a step repeated later
// (a second "connected" after an ICE restart) neither logs again nor
// moves its time.
func TestMediaStagesLoggedOnce(t *testing.T) {
	for _, order := range [][]string{
		{"offer", "answer", "sound", "connected", "camera_open", "sending", "connected"},
		{"offer", "answer", "sound", "camera_open", "sending", "connected", "sending"},
	} {
		var out bytes.Buffer
		s := &session{log: slog.New(slog.NewTextHandler(&out, nil))}
		for i, name := range order {
			s.markStage(name)
			if logged := strings.Contains(out.String(), "call media stages"); logged != (s.reached("sending") && s.reached("connected")) {
				t.Fatalf("%v: after %d steps (%s) logged=%v", order, i+1, name, logged)
			}
		}
		if n := strings.Count(out.String(), "call media stages"); n != 1 {
			t.Fatalf("%v: logged %d times, want once:\n%s", order, n, out.String())
		}
		for _, name := range []string{"answer_ms=", "sound_ms=", "connected_ms=", "camera_open_ms=", "sending_ms="} {
			if strings.Count(out.String(), name) != 1 {
				t.Errorf("%v: %s not logged once:\n%s", order, name, out.String())
			}
		}
		if strings.Contains(out.String(), "offer_ms") || len(s.stages) != 6 {
			t.Errorf("%v: stages %v; the offer is the origin, each step once", order, s.stages)
		}
	}
}
