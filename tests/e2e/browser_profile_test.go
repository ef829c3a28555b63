package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/databudget"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// phoneWindow is what the parent's page sent over a window of a call, as
// the page's transport counted it (the phone's data plan) and as the
// terminal received it.
type phoneWindow struct {
	span      time.Duration
	wireMBMin float64 // the page's sending, packet headers included, MB a minute
	videoKbps float64 // video payload the terminal received
	// audioPackets arrived at the terminal, holding audioFrame each on
	// average (read from each packet's header).
	audioPackets int64
	audioFrame   time.Duration
}

// measurePhone measures the page's sending for span of a call in
// progress.
func measurePhone(t *testing.T, r *rig, page context.Context, span time.Duration) phoneWindow {
	t.Helper()
	a, pa, at := r.term.Status().Received, pageStats(t, page), time.Now()
	time.Sleep(span) // the window measured, not an assertion
	b, pb, bt := r.term.Status().Received, pageStats(t, page), time.Now()
	secs := bt.Sub(at).Seconds()
	w := phoneWindow{
		span:         bt.Sub(at),
		wireMBMin:    float64(pb.DataSent-pa.DataSent) / secs * 60 / 1e6,
		videoKbps:    float64(b.VideoBytes-a.VideoBytes) * 8 / secs / 1000,
		audioPackets: b.AudioPackets - a.AudioPackets,
		audioFrame:   audioFrameBetween(a, b),
	}
	t.Logf("phone → terminal over %v: %.2f MB/min on the wire, %.0f kbit/s of video, %d audio packets of %v",
		w.span.Round(time.Millisecond), w.wireMBMin, w.videoKbps, w.audioPackets, w.audioFrame)
	return w
}

// audioFrameBetween is the mean length of the audio packets received
// between two snapshots of a receiver's counts (media.Stats.AudioFrame).
func audioFrameBetween(a, b media.Stats) time.Duration {
	b.AudioPackets -= a.AudioPackets
	b.AudioPacketSamples -= a.AudioPacketSamples
	return b.AudioFrame()
}

func pageStats(t *testing.T, page context.Context) browsertest.CallStats {
	t.Helper()
	st, err := browsertest.Stats(page)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// check asserts the window kept to what the terminal's offer asked of the
// phone in profile p: audio in p's frames (a=ptime) and a wire cost within
// maxMBMin, the profile's budget a direction.
func (w phoneWindow) check(t *testing.T, p media.Profile, maxMBMin float64) {
	t.Helper()
	if w.audioPackets == 0 || w.audioFrame != p.AudioFrame {
		t.Errorf("the phone sent %d audio packets of %v, want %s's %v", w.audioPackets, w.audioFrame, p.Name, p.AudioFrame)
	}
	if w.wireMBMin == 0 || w.wireMBMin > maxMBMin {
		t.Errorf("the phone sent %.2f MB/min, want some and at most %s's %.1f", w.wireMBMin, p.Name, maxMBMin)
	}
}

// TestBrowserPhoneKeepsToProfile: in the profiles below the default (whose
// call TestBrowserParentAnswersChild measures), Chromium as the parent's
// phone sends what the terminal's offer asks, within the budgets
// a direction: its audio in the profile's longer frames, whose headers
// cost a third as much as 20 ms ones, and on the wire at most 0.5 MB a
// minute with the very-low picture and 0.2 in a voice-only call (a spent
// budget, whose offer has no video).
func TestBrowserPhoneKeepsToProfile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		p         media.Profile
		maxMBMin  float64
		voiceOnly bool
	}{
		{"very-low", media.VeryLow, 0.5, false},
		{"spent budget", media.AudioOnly, 0.2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r *rig
			if tc.voiceOnly {
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				path := filepath.Join(t.TempDir(), "terminal.db")
				const total = 10 * databudget.MB
				seedUsage(t, path, databudget.Month(time.Now()), total+1)
				r = startTerminal(t, ctx, rendezvoustest.NewServer(t, nil), terminalOpts{statePath: path, dataBudget: total})
			} else {
				r = newRigProfile(t, nil, tc.p)
			}
			page := pairBrowser(t, r)
			browserAnswersChild(t, r, page)
			if tc.voiceOnly {
				r.waitPattern(device.InCallVoice, "terminal in a voice-only call")
			} else {
				r.waitPattern(device.InCall, "terminal in call")
			}
			eventually(t, mediaWait, "terminal decodes 2 s of the page's voice", func() bool {
				s := r.term.Status().Received
				return s.AudioSamplesDecoded >= 2*media.AudioSampleRate && (tc.voiceOnly || s.VideoFramesDecoded >= 10)
			})
			w := measurePhone(t, r, page, 6*time.Second)
			w.check(t, tc.p, tc.maxMBMin)
			if tc.voiceOnly && w.videoKbps != 0 {
				t.Errorf("the phone sent %.0f kbit/s of video in a voice-only call", w.videoKbps)
			}
		})
	}
}
