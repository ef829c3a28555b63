package databudget

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/media"
)

// TestStepTable: the step a call starts at as a 500 MB budget is spent,
// at the edges of each threshold, and with no budget.
func TestStepTable(t *testing.T) {
	const total = 500 * MB
	for _, tc := range []struct {
		total, used int64
		want        string
	}{
		{0, 0, "normal"},
		{0, 10_000 * MB, "normal"}, // no budget limits nothing
		{total, 0, "normal"},
		{total, total - 313_200_000, "normal"}, // exactly 60 min of normal left
		{total, total - 313_200_000 + 1, "low"},
		{total, total - 108*MB, "low"},
		{total, total - 108*MB + 1, "very-low"},
		{total, total - 50_400_000, "very-low"},
		{total, total - 50_400_000 + 1, "audio-only"},
		{total, total - 1, "audio-only"},
		{total, total, "audio-only"},     // spent: voice only, still a call
		{total, 2 * total, "audio-only"}, // overspent by calls at zero
		{40 * MB, 0, "audio-only"},       // a budget too small for an hour of any picture
		{60 * MB, 0, "very-low"},
	} {
		if got := Step(tc.total, tc.used).Name; got != tc.want {
			t.Errorf("Step(%d, %d) = %s, want %s", tc.total, tc.used, got, tc.want)
		}
	}
}

// TestStepsCoverTheLadder: every step has a cost, and the thresholds fall
// down the ladder (a leaner step never needs more left than a richer one).
func TestStepsCoverTheLadder(t *testing.T) {
	prev := int64(-1)
	for i, p := range media.Ladder() {
		if PerMinute[p.Name] <= 0 {
			t.Fatalf("no cost per minute for step %s", p.Name)
		}
		if th := Threshold(p); i > 0 && th >= prev {
			t.Errorf("step %s needs %d left, not less than the richer step's %d", p.Name, th, prev)
		} else {
			prev = th
		}
	}
}

func TestCap(t *testing.T) {
	for _, tc := range []struct {
		configured, limit media.Profile
		want              string
		voiceOnly         bool
	}{
		{media.Low, media.Normal, "low", false},
		{media.Normal, media.Low, "low", false},
		{media.Low, media.VeryLow, "very-low", false},
		{media.Low, media.AudioOnly, "audio-only", true},
		{media.AudioOnly, media.Normal, "audio-only", false},
		{media.AudioOnly, media.AudioOnly, "audio-only", false}, // no camera: not the budget's doing
		{media.VeryLow, media.Low, "very-low", false},
	} {
		if got := Cap(tc.configured, tc.limit).Name; got != tc.want {
			t.Errorf("Cap(%s, %s) = %s, want %s", tc.configured.Name, tc.limit.Name, got, tc.want)
		}
		if got := VoiceOnly(tc.configured, tc.limit); got != tc.voiceOnly {
			t.Errorf("VoiceOnly(%s, %s) = %v, want %v", tc.configured.Name, tc.limit.Name, got, tc.voiceOnly)
		}
	}
}

// TestMonthRolloverInShanghai: the month turns at local midnight in the
// unit's time zone, not at UTC's; a usage of the month before counts as
// nothing.
func TestMonthRolloverInShanghai(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatalf("time zone data: %v", err)
	}
	before := time.Date(2026, 11, 30, 23, 59, 0, 0, sh) // 15:59 UTC on the 30th
	after := time.Date(2026, 12, 1, 0, 1, 0, 0, sh)     // still 30 November in UTC
	if Month(before) != "2026-11" || Month(after) != "2026-12" {
		t.Fatalf("Month: %s, %s; want 2026-11, 2026-12", Month(before), Month(after))
	}
	if Month(after.UTC()) != "2026-11" {
		t.Fatalf("the test's instant is not still November in UTC")
	}
	if want := time.Date(2026, 12, 1, 0, 0, 0, 0, sh); !MonthEnd(before).Equal(want) {
		t.Errorf("MonthEnd = %v, want %v", MonthEnd(before), want)
	}
	if want := time.Date(2027, 1, 1, 0, 0, 0, 0, sh); !MonthEnd(after).Equal(want) {
		t.Errorf("MonthEnd in December = %v, want %v", MonthEnd(after), want)
	}
	s := Of(500*MB, "2026-11", 480*MB, before)
	if s.Used != 480*MB || s.Limit.Name != "audio-only" {
		t.Errorf("before midnight: used %d limit %s, want 480 MB, audio-only", s.Used, s.Limit.Name)
	}
	s = Of(500*MB, "2026-11", 480*MB, after)
	if s.Used != 0 || s.Limit.Name != "normal" || s.Left() != 500*MB {
		t.Errorf("after midnight: used %d limit %s, want 0, normal", s.Used, s.Limit.Name)
	}
}

// TestMeterCountsHeadersAndKeepsDroppedPairs: a pair's bytes count with
// each packet's headers (IPv4 UDP, IPv6 and TURN), and a pair an ICE
// restart dropped keeps what it carried.
func TestMeterCountsHeadersAndKeepsDroppedPairs(t *testing.T) {
	host := webrtc.ICECandidate{Address: "192.0.2.1", Typ: webrtc.ICECandidateTypeHost}
	relay := webrtc.ICECandidate{Address: "2001:db8::1", Typ: webrtc.ICECandidateTypeRelay}
	m := NewMeter()
	m.take(webrtc.ICECandidatePairStats{ID: "p1", BytesSent: 1000, PacketsSent: 10, BytesReceived: 500, PacketsReceived: 5}, host)
	if got, want := m.total(), (Counts{1000 + 10*28, 500 + 5*28}); got != want {
		t.Fatalf("host pair: %+v, want %+v", got, want)
	}
	// A stale read never takes back what was counted.
	m.take(webrtc.ICECandidatePairStats{ID: "p1", BytesSent: 900, PacketsSent: 9}, host)
	// An ICE restart: p1 is gone, p2 (relayed, IPv6) carries on.
	m.take(webrtc.ICECandidatePairStats{ID: "p2", BytesSent: 100, PacketsSent: 1}, relay)
	if got, want := m.total(), (Counts{1000 + 10*28 + 100 + 48 + 4, 500 + 5*28}); got != want {
		t.Fatalf("after a restart: %+v, want %+v", got, want)
	}
	if got := PacketOverhead(webrtc.ICECandidate{Address: "198.51.100.7", Typ: webrtc.ICECandidateTypeRelay}); got != 32 {
		t.Errorf("TURN over IPv4: %d bytes a packet, want 32", got)
	}
}
