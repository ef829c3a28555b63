package media

import (
	"fmt"
	"testing"
	"time"
)

func testRungs(t *testing.T) []abrRung {
	t.Helper()
	c := newCapture(LowData, nil)
	rungs, err := c.abrRungs(ABRLadder())
	if err != nil {
		t.Fatal(err)
	}
	return rungs
}

// TestABRRungs: the ladder as a capture can send it: the steps above its
// profile left out, each picture the camera's scaled to the step's width,
// and each video step's floor the next video step's rate.
func TestABRRungs(t *testing.T) {
	type rung struct {
		name          string
		width, height int
		fps           float64
		floor         int
	}
	for _, tc := range []struct {
		name string
		p    Profile
		want []rung
	}{
		{"low, the default", LowData, []rung{
			{"low", 320, 240, 15, 50_000},
			{"low-10fps", 320, 240, 10, 28_000},
			{"very-low", 160, 120, 10, 21_000},
			{"audio-only", 0, 0, 0, 0},
		}},
		{"normal", Normal, []rung{
			{"normal", 640, 480, 15, 160_000},
			{"medium", 480, 360, 15, 80_000},
			{"low", 320, 240, 15, 50_000},
			{"low-10fps", 320, 240, 10, 28_000},
			{"very-low", 160, 120, 10, 21_000},
			{"audio-only", 0, 0, 0, 0},
		}},
		{"a 16:9 camera below normal keeps its aspect", Profile{Name: "wide", Video: true, Width: 640, Height: 360, FPS: 10,
			VideoBitrate: 200_000, AudioBitrate: 16_000, AudioFrame: 20 * time.Millisecond}, []rung{
			{"medium", 480, 270, 10, 80_000},
			{"low", 320, 180, 10, 50_000},
			{"low-10fps", 320, 180, 10, 28_000},
			{"very-low", 160, 90, 10, 21_000},
			{"audio-only", 0, 0, 0, 0},
		}},
		{"audio only", AudioOnly, []rung{{"audio-only", 0, 0, 0, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rungs, err := newCapture(tc.p, nil).abrRungs(ABRLadder())
			if err != nil {
				t.Fatal(err)
			}
			var got []rung
			for _, r := range rungs {
				got = append(got, rung{r.p.Name, r.width, r.height, r.fps, r.floor})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("rungs\n got %v\nwant %v", got, tc.want)
			}
		})
	}
	if _, err := newCapture(LowData, nil).abrRungs([]Profile{{Name: "bad"}}); err == nil {
		t.Error("an invalid ladder step was accepted")
	}
}

// TestABRSteps drives the ladder's decision with an estimate (bit/s) and
// a loss over time, and checks the step it is on after each phase.
func TestABRSteps(t *testing.T) {
	const (
		plenty = 1_000_000
		// low's floor is 50 kbit/s of video, low-10fps's 28: 0.9×65k less
		// low's audio (16k and 25 headers a second: 20.8k) is 37.7k.
		mid = 65_000
		// 0.9×25k-20.8k = 1.7k: below half of any video floor.
		dire = 25_000
	)
	type phase struct {
		dur       time.Duration
		estimate  int
		congested bool
		want      string // the step at the phase's end
		clear     bool   // the path is far from full
	}
	for _, tc := range []struct {
		name   string
		phases []phase
		limits map[int]Profile // phase → the limit set at its start (ABR.Limit)
	}{
		{"starts on top and stays", []phase{{10 * time.Second, plenty, false, "low", false}}, nil},
		{"a dip shorter than DownAfter changes nothing", []phase{
			{2 * time.Second, plenty, false, "low", false}, {500 * time.Millisecond, mid, true, "low", false}, {time.Second, plenty, false, "low", false}}, nil},
		{"a lasting drop on a congested path steps down to what the estimate affords", []phase{
			{2 * time.Second, plenty, false, "low", false}, {1500 * time.Millisecond, mid, true, "low-10fps", false}}, nil},
		{"a low estimate on an uncongested path holds the step", []phase{
			{2 * time.Second, plenty, false, "low", false}, {10 * time.Second, dire, false, "low", false}}, nil},
		{"a step up taken back doubles the wait for the next", []phase{
			{time.Second, plenty, false, "low", false}, {1500 * time.Millisecond, mid, true, "low-10fps", false},
			{4500 * time.Millisecond, plenty, false, "low", false}, {1500 * time.Millisecond, mid, true, "low-10fps", false},
			{5 * time.Second, plenty, false, "low-10fps", false}, {3500 * time.Millisecond, plenty, false, "low", false}}, nil},
		{"a video step is not probed above without the estimate on a busy path", []phase{
			{time.Second, plenty, false, "low", false}, {1500 * time.Millisecond, mid, true, "low-10fps", false},
			{20 * time.Second, mid, false, "low-10fps", false}}, nil},
		{"a video step probes the next one after 3×UpAfter of a clear path", []phase{
			{time.Second, plenty, false, "low", false}, {1500 * time.Millisecond, mid, true, "low-10fps", false},
			{11 * time.Second, mid, false, "low-10fps", true}, {1500 * time.Millisecond, mid, false, "low", true}}, nil},
		{"a dire estimate on a congested path goes to audio only at once", []phase{
			{2 * time.Second, plenty, false, "low", false}, {500 * time.Millisecond, dire, true, "audio-only", false}}, nil},
		{"recovery is one step per UpAfter", []phase{
			{time.Second, plenty, false, "low", false}, {2 * time.Second, mid, true, "low-10fps", false},
			{3 * time.Second, plenty, false, "low-10fps", false}, {1500 * time.Millisecond, plenty, false, "low", false}}, nil},
		{"audio only probes video on an uncongested path, backs off on congestion", []phase{
			{time.Second, dire, true, "audio-only", false},
			{4500 * time.Millisecond, dire, false, "very-low", false},  // the probe, though the estimate is low
			{2 * time.Second, dire, false, "very-low", false},          // kept while uncongested
			{1500 * time.Millisecond, dire, true, "audio-only", false}, // congested: back
			{5 * time.Second, dire, false, "audio-only", false},        // UpAfter doubled: no probe yet
			{4 * time.Second, dire, false, "very-low", false}}, nil},
		// The data budget running low mid-call (ABR.Limit): down at the
		// next look whatever the estimate, never above again, and a later
		// higher limit does not raise it.
		{"a limit steps down at once and holds on a clear path", []phase{
			{time.Second, plenty, false, "low", false},
			{250 * time.Millisecond, plenty, false, "very-low", true},
			{30 * time.Second, plenty, false, "very-low", true},
			{30 * time.Second, plenty, false, "very-low", true}}, map[int]Profile{1: VeryLow, 3: Low}},
		{"a limit to audio only stops the picture", []phase{
			{time.Second, plenty, false, "low", false},
			{250 * time.Millisecond, plenty, false, "audio-only", true},
			{30 * time.Second, plenty, false, "audio-only", true}}, map[int]Profile{1: AudioOnly}},
		{"under a limit the estimate still steps down and back up to it", []phase{
			{time.Second, plenty, false, "low", false},
			{250 * time.Millisecond, plenty, false, "very-low", false},
			{500 * time.Millisecond, dire, true, "audio-only", false},
			{10 * time.Second, plenty, false, "very-low", false}}, map[int]Profile{1: VeryLow}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := abrState{rungs: testRungs(t), policy: DefaultABRPolicy, upWait: DefaultABRPolicy.UpAfter, rate: -1}
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i, ph := range tc.phases {
				if l, ok := tc.limits[i]; ok {
					s.limit(l)
				}
				for end := now.Add(ph.dur); now.Before(end); now = now.Add(250 * time.Millisecond) {
					s.next(now, ph.estimate, ph.congested, ph.clear)
				}
				if got := s.rungs[s.cur].p.Name; got != ph.want {
					t.Fatalf("after phase %d (%v at %d bit/s, congested %v): on %s, want %s", i, ph.dur, ph.estimate, ph.congested, got, ph.want)
				}
			}
		})
	}
}

func TestABRRate(t *testing.T) {
	s := abrState{rungs: testRungs(t), policy: DefaultABRPolicy, upWait: DefaultABRPolicy.UpAfter, rate: -1}
	now := time.Now()
	if _, changed := s.next(now, 1_000_000, true, false); !changed || s.rate != 80_000 {
		t.Errorf("plenty: rate %d (changed %v), want low's 80000", s.rate, changed)
	}
	// 0.9×90k - 20.8k = 60.2k: within low's 50k..80k.
	if _, changed := s.next(now.Add(time.Second), 90_000, true, false); !changed || s.rate != 60_200 {
		t.Errorf("90 kbit/s: rate %d (changed %v), want 60200", s.rate, changed)
	}
	// Under 5% off: not worth a call into the encoder.
	if _, changed := s.next(now.Add(2*time.Second), 93_000, true, false); changed || s.rate != 60_200 {
		t.Errorf("93 kbit/s: rate %d (changed %v), want 60200 unchanged", s.rate, changed)
	}
	// An uncongested path keeps its rate when the estimate falls.
	if _, changed := s.next(now.Add(3*time.Second), 80_000, false, false); changed || s.rate != 60_200 {
		t.Errorf("80 kbit/s, uncongested: rate %d (changed %v), want 60200 kept", s.rate, changed)
	}
	if _, changed := s.next(now.Add(4*time.Second), 80_000, true, false); !changed || s.rate != 51_200 {
		t.Errorf("80 kbit/s, congested: rate %d (changed %v), want 51200", s.rate, changed)
	}
}
