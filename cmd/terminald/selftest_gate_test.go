package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/terminal/selftest"
	"github.com/tuanju/tuanju/media"
)

// toneSpeaker records the self-test's tones.
type toneSpeaker struct {
	mu  *sync.Mutex
	log *[]string
}

func (s toneSpeaker) Tone(_ context.Context, hz float64, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.log = append(*s.log, fmt.Sprintf("tone %.0f Hz", hz))
	return nil
}

// TestSelftestMediaIsAnnounced: the self-test's camera and microphone
// checks open their source through a media.Gate, after the unit's in-call
// light is on (its blue LED lit) and the tone has played, like a call.
func TestSelftestMediaIsAnnounced(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, check := range []string{"camera", "microphone"} {
		t.Run(check, func(t *testing.T) {
			cfg := defaults()
			cfg.Board = "sim"
			cfg.Media.Camera, cfg.Media.Microphone = media.SourceSynthetic, media.SourceSynthetic
			u, err := openUnit(cfg, selftestFlags{}, log)
			if err != nil {
				t.Fatal(err)
			}
			defer u.board.Close()
			var mu sync.Mutex
			var events []string
			u.tone = toneSpeaker{&mu, &events}
			blue := u.board.LEDLines()[device.Blue].ReadBack
			u.opening = func(media.CaptureConfig) {
				mu.Lock()
				defer mu.Unlock()
				lvl, _ := blue()
				events = append(events, fmt.Sprintf("open blue=%v", lvl))
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			if check == "camera" {
				var fr selftest.Frame
				fr, err = grabFrame(ctx, cfg, u)
				if err == nil && (fr.EncodedBytes == 0 || !strings.Contains(fr.Announced, "and a tone")) {
					t.Errorf("frame %+v: want an encoded frame, announced with a tone", fr)
				}
			} else {
				_, _, err = gateMicrophone{u}.Level(ctx, 200*time.Millisecond)
			}
			if err != nil {
				t.Fatalf("%s check: %v", check, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(events) != 2 || events[0] != "tone 660 Hz" || events[1] != "open blue=High" {
				t.Fatalf("%s check did %q, want the tone, then the opening", check, events)
			}
		})
	}
}
