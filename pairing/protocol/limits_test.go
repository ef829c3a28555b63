package protocol

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// realCall is every offer, answer and candidate the server relayed in two
// real calls (tests/e2e: terminald's pion offer, headless Chromium's answer,
// host, srflx and relay candidates, IPv4 and IPv6), as they were on the wire.
func realCall(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open("testdata/real-call.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, MaxMessageBytes+1)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	if err := sc.Err(); err != nil || len(out) == 0 {
		t.Fatalf("read testdata/real-call.jsonl: %d messages, %v", len(out), err)
	}
	return out
}

// TestRealCallFitsLimits: what real clients send decodes, with the headroom
// the limits' comment claims (several times the largest real SDP and
// candidate), so a limit change that would cut off real calls fails here.
func TestRealCallFitsLimits(t *testing.T) {
	var sdps, cands int
	for _, b := range realCall(t) {
		m, err := Decode(b)
		if err != nil {
			t.Fatalf("a real %s does not decode: %v", b[:40], err)
		}
		switch {
		case m.SDP != "":
			sdps++
			if len(m.SDP)*4 > MaxSDPBytes {
				t.Errorf("real %s sdp of %d bytes has less than 4x headroom under %d", m.Type, len(m.SDP), MaxSDPBytes)
			}
			if len(b)*4 > MaxMessageBytes {
				t.Errorf("real %s message of %d bytes has less than 4x headroom under %d", m.Type, len(b), MaxMessageBytes)
			}
		case m.Candidate != nil:
			cands++
			if len(m.Candidate.Candidate)*3/2 > MaxCandidateBytes {
				t.Errorf("real candidate of %d bytes has less than 1.5x headroom under %d", len(m.Candidate.Candidate), MaxCandidateBytes)
			}
		}
	}
	if sdps < 4 || cands < 8 {
		t.Fatalf("testdata has %d SDPs and %d candidates, want the two calls' 4 and ≥ 8", sdps, cands)
	}
	// The longest candidate a browser makes: IPv6 relay with an IPv6 raddr,
	// TCP type, network-id and -cost.
	worst := "candidate:1699993570 1 tcp 58597375 2001:db8:1234:5678:9abc:def0:1234:5678 48020 typ relay raddr 2001:db8:1234:5678:9abc:def0:1234:5678 rport 48020 tcptype passive generation 0 ufrag KoDhKoDhKoDhKoDh network-id 3 network-cost 50"
	if err := CheckCandidate(Candidate{Candidate: worst}); err != nil {
		t.Fatalf("worst-case real candidate (%d bytes): %v", len(worst), err)
	}
}

// TestLargestCallLogFits: the server sends at most 50 call log entries; the
// largest possible such message (every time with nanoseconds, the longest
// outcome) must fit in one message, or a parent with a full log could never
// read it.
func TestLargestCallLogFits(t *testing.T) {
	ts := time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC)
	calls := make([]CallRecord, 50)
	for i := range calls {
		calls[i] = CallRecord{CallID: tID, Direction: DirFromTerminal, StartedAt: ts, AnsweredAt: ts, EndedAt: ts, Outcome: OutcomeCancelled, Seen: true}
	}
	b, err := Encode(Message{Type: TypeCallLog, Calls: calls})
	if err != nil {
		t.Fatalf("a call log of 50 entries does not fit: %v", err)
	}
	t.Logf("largest call_log the server sends: %d bytes of %d", len(b), MaxMessageBytes)
}

func TestCheckSDP(t *testing.T) {
	tests := []struct {
		name string
		sdp  string
		want error
	}{
		{"minimal", "v=0", nil},
		{"at limit", "v=0" + strings.Repeat("a", MaxSDPBytes-3), nil},
		{"one over", "v=0" + strings.Repeat("a", MaxSDPBytes-2), ErrTooLarge},
		{"empty", "", ErrInvalid},
		{"no version line", "o=- 1 2 IN IP4 0.0.0.0", ErrInvalid},
		{"leading space", " v=0", ErrInvalid},
		{"not UTF-8", "v=0\r\ns=\xff", ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckSDP(tc.sdp); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("CheckSDP = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCheckCandidate(t *testing.T) {
	s := func(v string) *string { return &v }
	tests := []struct {
		name string
		c    Candidate
		want error
	}{
		{"end of candidates", Candidate{}, nil},
		{"real", Candidate{Candidate: tCand, SDPMid: s("0"), UsernameFragment: s("3ZZA")}, nil},
		{"at limit", Candidate{Candidate: "candidate:" + strings.Repeat("1", MaxCandidateBytes-10)}, nil},
		{"one over", Candidate{Candidate: "candidate:" + strings.Repeat("1", MaxCandidateBytes-9)}, ErrTooLarge},
		{"a= prefix", Candidate{Candidate: "a=candidate:1 1 udp 1 127.0.0.1 1 typ host"}, ErrInvalid},
		{"sdpMid 33", Candidate{SDPMid: s(strings.Repeat("m", 33))}, ErrInvalid},
		{"ufrag 257", Candidate{UsernameFragment: s(strings.Repeat("u", 257))}, ErrInvalid},
		{"not UTF-8", Candidate{SDPMid: s("\xff")}, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckCandidate(tc.c); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("CheckCandidate = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzCheckSDP: CheckSDP never panics, fails only with its sentinels, and
// what it accepts is within the limit, starts with v=0, and decodes in an
// offer message unchanged (the relay forwards exactly what it checked).
func FuzzCheckSDP(f *testing.F) {
	for _, b := range realCall(f) {
		var m Message
		if json.Unmarshal(b, &m) == nil && m.SDP != "" {
			f.Add(m.SDP)
		}
	}
	f.Add("v=0")
	f.Add("")
	f.Add("v=0" + strings.Repeat("\r\n", MaxSDPBytes/2))
	f.Fuzz(func(t *testing.T, sdp string) {
		err := CheckSDP(sdp)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("CheckSDP error without a sentinel: %v", err)
			}
			if len(sdp) <= MaxSDPBytes && strings.HasPrefix(sdp, "v=0") && utf8.ValidString(sdp) {
				t.Fatalf("CheckSDP refused a valid-looking sdp of %d bytes: %v", len(sdp), err)
			}
			return
		}
		if len(sdp) > MaxSDPBytes || !strings.HasPrefix(sdp, "v=0") || !utf8.ValidString(sdp) {
			t.Fatalf("CheckSDP accepted %d bytes starting %q", len(sdp), sdp[:min(len(sdp), 8)])
		}
		m := Message{Type: TypeOffer, CallID: tID, SDP: sdp, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln"}
		b, err := Encode(m)
		if err != nil {
			// Only JSON escaping can push a valid SDP over the message limit.
			if raw, _ := json.Marshal(m); errors.Is(err, ErrTooLarge) && len(raw) > MaxMessageBytes {
				return
			}
			t.Fatalf("Encode refuses an SDP that CheckSDP accepted: %v", err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(offer)) = %v", err)
		}
		if got.SDP != sdp {
			t.Fatalf("offer sdp changed in a round trip: %q → %q", sdp, got.SDP)
		}
	})
}

// FuzzCheckCandidate: CheckCandidate never panics, fails only with its
// sentinels, and whatever it accepts holds the limits and survives a
// candidate message's round trip.
func FuzzCheckCandidate(f *testing.F) {
	for _, b := range realCall(f) {
		var m Message
		if json.Unmarshal(b, &m) == nil && m.Candidate != nil {
			c := m.Candidate
			f.Add(c.Candidate, c.SDPMid != nil, deref(c.SDPMid), c.UsernameFragment != nil, deref(c.UsernameFragment))
		}
	}
	f.Add("", false, "", false, "")
	f.Add("candidate:", true, strings.Repeat("m", 33), true, "")
	f.Fuzz(func(t *testing.T, line string, hasMid bool, mid string, hasUfrag bool, ufrag string) {
		c := Candidate{Candidate: line}
		if hasMid {
			c.SDPMid = &mid
		}
		if hasUfrag {
			c.UsernameFragment = &ufrag
		}
		err := CheckCandidate(c)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("CheckCandidate error without a sentinel: %v", err)
			}
			return
		}
		if len(line) > MaxCandidateBytes || (line != "" && !strings.HasPrefix(line, "candidate:")) ||
			len(deref(c.SDPMid)) > 32 || len(deref(c.UsernameFragment)) > 256 {
			t.Fatalf("CheckCandidate accepted %+v", c)
		}
		m := Message{Type: TypeCandidate, CallID: tID, Candidate: &c}
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode refuses a candidate CheckCandidate accepted: %v", err)
		}
		if len(b) > MaxMessageBytes {
			t.Fatalf("candidate message of %d bytes", len(b))
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(candidate)) = %v", err)
		}
		if !reflect.DeepEqual(*got.Candidate, c) {
			t.Fatalf("candidate changed in a round trip: %+v → %+v", c, *got.Candidate)
		}
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// FuzzDecodeLimits: whatever Decode accepts, of any type, holds every limit
// docs/protocol.md promises, so no code behind Decode needs to check them
// again. Seeds: every message type, and the messages of a real call.
func FuzzDecodeLimits(f *testing.F) {
	for _, b := range realCall(f) {
		f.Add(b)
	}
	addMessageSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		if len(data) > MaxMessageBytes {
			t.Fatalf("Decode accepted %d bytes", len(data))
		}
		r, ok := rules[m.Type]
		if !ok {
			t.Fatalf("Decode accepted unknown type %q", m.Type)
		}
		for _, field := range m.setFields() {
			if !slices.Contains(r.required, field) && !slices.Contains(r.optional, field) {
				t.Fatalf("Decode accepted field %s on %s", field, m.Type)
			}
		}
		if m.SDP != "" && CheckSDP(m.SDP) != nil {
			t.Fatalf("Decode accepted an sdp CheckSDP refuses: %v", CheckSDP(m.SDP))
		}
		if m.Candidate != nil && CheckCandidate(*m.Candidate) != nil {
			t.Fatalf("Decode accepted a candidate CheckCandidate refuses: %v", CheckCandidate(*m.Candidate))
		}
		for _, id := range []string{m.DeviceID, m.ParentID, m.CallID, m.PairID} {
			if id != "" && !ValidID(id) {
				t.Fatalf("Decode accepted ID %q", id)
			}
		}
		for _, s := range []string{m.Type, m.Role, m.Reason, m.Code, m.RefType} {
			if len(s) > MaxReasonBytes {
				t.Fatalf("Decode accepted a word of %d bytes", len(s))
			}
		}
		if len(m.Text) > 512 || len(m.Version) > 64 || len(m.ICEServers) > 4 || len(m.Calls) > 200 {
			t.Fatalf("Decode accepted a list or text over its limit: %+v", m)
		}
	})
}
