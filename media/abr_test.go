package media

import (
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

func TestABRRungs(t *testing.T) {
	rungs := testRungs(t)
	want := []struct {
		name          string
		width, height int
		fps           float64
		floor         int
	}{
		{"low-data", 320, 240, 15, 120_000},
		{"low-10fps", 320, 240, 10, 70_000},
		{"small", 240, 180, 10, 40_000},
		{"tiny", 160, 120, 8, 30_000},
		{"audio-only", 0, 0, 0, 0},
	}
	if len(rungs) != len(want) {
		t.Fatalf("%d rungs, want %d", len(rungs), len(want))
	}
	for i, w := range want {
		r := rungs[i]
		if r.p.Name != w.name || r.width != w.width || r.height != w.height || r.fps != w.fps || r.floor != w.floor {
			t.Errorf("rung %d = %s %dx%d@%v floor %d, want %+v", i, r.p.Name, r.width, r.height, r.fps, r.floor, w)
		}
	}
	// A capture opened below the ladder's top leaves the steps above out,
	// and a camera of another aspect keeps it.
	c := newCapture(Profile{Name: "wide", Video: true, Width: 320, Height: 180, FPS: 10, VideoBitrate: 100_000,
		AudioBitrate: 16_000, AudioFrame: 20 * time.Millisecond}, nil)
	rungs, err := c.abrRungs(ABRLadder())
	if err != nil {
		t.Fatal(err)
	}
	if rungs[0].p.Name != "small" || rungs[0].width != 240 || rungs[0].height != 136 || rungs[0].fps != 10 {
		t.Errorf("first rung of a 320x180 100 kbit/s capture = %s %dx%d@%v", rungs[0].p.Name, rungs[0].width, rungs[0].height, rungs[0].fps)
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
		mid    = 150_000 // low-data's floor is 120 kbit/s of video: 0.9*150k-29.6k = 105k
		poor   = 60_000  // tiny: 0.9*60k-25.6k = 28.4k, just under its 30k floor...
		dire   = 30_000  // below half of any video floor
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
	}{
		{"starts on top and stays", []phase{{10 * time.Second, plenty, false, "low-data", false}}},
		{"a dip shorter than DownAfter changes nothing", []phase{
			{2 * time.Second, plenty, false, "low-data", false}, {500 * time.Millisecond, mid, true, "low-data", false}, {time.Second, plenty, false, "low-data", false}}},
		{"a lasting drop on a congested path steps down to what the estimate affords", []phase{
			{2 * time.Second, plenty, false, "low-data", false}, {1500 * time.Millisecond, mid, true, "low-10fps", false}}},
		{"a low estimate on an uncongested path holds the step", []phase{
			{2 * time.Second, plenty, false, "low-data", false}, {10 * time.Second, dire, false, "low-data", false}}},
		{"a step up taken back doubles the wait for the next", []phase{
			{time.Second, plenty, false, "low-data", false}, {1500 * time.Millisecond, mid, true, "low-10fps", false},
			{4500 * time.Millisecond, plenty, false, "low-data", false}, {1500 * time.Millisecond, mid, true, "low-10fps", false},
			{5 * time.Second, plenty, false, "low-10fps", false}, {3500 * time.Millisecond, plenty, false, "low-data", false}}},
		{"a video step is not probed above without the estimate on a busy path", []phase{
			{time.Second, plenty, false, "low-data", false}, {1500 * time.Millisecond, mid, true, "low-10fps", false},
			{20 * time.Second, mid, false, "low-10fps", false}}},
		{"a video step probes the next one after 3×UpAfter of a clear path", []phase{
			{time.Second, plenty, false, "low-data", false}, {1500 * time.Millisecond, mid, true, "low-10fps", false},
			{11 * time.Second, mid, false, "low-10fps", true}, {1500 * time.Millisecond, mid, false, "low-data", true}}},
		{"a dire estimate on a congested path goes to audio only at once", []phase{
			{2 * time.Second, plenty, false, "low-data", false}, {500 * time.Millisecond, dire, true, "audio-only", false}}},
		{"recovery is one step per UpAfter", []phase{
			{time.Second, plenty, false, "low-data", false}, {2 * time.Second, mid, true, "low-10fps", false},
			{3 * time.Second, plenty, false, "low-10fps", false}, {1500 * time.Millisecond, plenty, false, "low-data", false}}},
		{"audio only probes video on an uncongested path, backs off on congestion", []phase{
			{time.Second, dire, true, "audio-only", false},
			{4500 * time.Millisecond, dire, false, "tiny", false},      // the probe, though the estimate is low
			{2 * time.Second, dire, false, "tiny", false},              // kept while uncongested
			{1500 * time.Millisecond, dire, true, "audio-only", false}, // congested: back
			{5 * time.Second, dire, false, "audio-only", false},        // UpAfter doubled: no probe yet
			{4 * time.Second, dire, false, "tiny", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := abrState{rungs: testRungs(t), policy: DefaultABRPolicy, upWait: DefaultABRPolicy.UpAfter, rate: -1}
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i, ph := range tc.phases {
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
	if _, changed := s.next(now, 1_000_000, true, false); !changed || s.rate != 200_000 {
		t.Errorf("plenty: rate %d (changed %v), want low-data's 200000", s.rate, changed)
	}
	// 0.9*200k - 29.6k = 150.4k: within low-data's 120k..200k.
	if _, changed := s.next(now.Add(time.Second), 200_000, true, false); !changed || s.rate != 150_400 {
		t.Errorf("200 kbit/s: rate %d (changed %v), want 150400", s.rate, changed)
	}
	// Under 5% off: not worth a call into the encoder.
	if _, changed := s.next(now.Add(2*time.Second), 205_000, true, false); changed || s.rate != 150_400 {
		t.Errorf("205 kbit/s: rate %d (changed %v), want 150400 unchanged", s.rate, changed)
	}
	// An uncongested path keeps its rate when the estimate falls.
	if _, changed := s.next(now.Add(3*time.Second), 170_000, false, false); changed || s.rate != 150_400 {
		t.Errorf("170 kbit/s, uncongested: rate %d (changed %v), want 150400 kept", s.rate, changed)
	}
	if _, changed := s.next(now.Add(4*time.Second), 170_000, true, false); !changed || s.rate != 123_400 {
		t.Errorf("170 kbit/s, congested: rate %d (changed %v), want 123400", s.rate, changed)
	}
}
