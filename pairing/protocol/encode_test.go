package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// encodeCases are the messages Encode is checked on against encoding/json:
// one of every type, every message of two real calls, and the values where
// json/v2's defaults differ from encoding/json's (a zero number and false
// under omitempty, HTML and JavaScript line separators in a string, an
// empty list, a full call log).
func encodeCases(t *testing.T) []Message {
	msgs := sampleMessages()
	for _, raw := range realCall(t) {
		m, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	no := false
	return append(msgs,
		Message{Type: TypeOffer, CallID: tID, SDP: tSDP, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln", Restart: 0},
		Message{Type: TypeWelcome, Role: RoleParent, DeviceID: tID, ParentID: tID2, Paired: &no, PeerOnline: &no},
		Message{Type: TypeError, Code: ErrCodeBadMessage, Text: "a <b> & c \u2028 d \u2029 e \"f\" \\ \x01 ü 团聚", RefType: TypeRing},
		Message{Type: TypeCallLog, Calls: []CallRecord{}},
		callLog(50),
	)
}

// callLog is a call log of n records, as the server pushes after a call.
func callLog(n int) Message {
	at := time.Date(2026, 11, 28, 18, 0, 0, 123456789, time.UTC)
	calls := make([]CallRecord, n)
	for i := range calls {
		c := CallRecord{CallID: NewID(), Direction: DirFromTerminal, StartedAt: at.Add(time.Duration(i) * time.Minute), Outcome: OutcomeMissed, Seen: i%2 == 0}
		if i%3 == 0 {
			c.Direction, c.Outcome = DirFromParent, OutcomeAnswered
			c.AnsweredAt, c.EndedAt = c.StartedAt.Add(2*time.Second), c.StartedAt.Add(5*time.Minute)
		}
		calls[i] = c
	}
	return Message{Type: TypeCallLog, Calls: calls}
}

// TestEncodeMatchesEncodingJSON: Encode writes json/v2 set to write what
// encoding/json writes, byte for byte, so that no client (the page, an
// old terminal, an independent one) sees a change in what it is sent.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	for i, m := range encodeCases(t) {
		t.Run(fmt.Sprintf("%d-%s", i, m.Type), func(t *testing.T) {
			got, err := Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Encode:\n%s\nencoding/json:\n%s", got, want)
			}
		})
	}
}

// BenchmarkEncode: Encode beside encoding/json's Marshal of the same
// message (the reference), for a ring and for the call log of 50 records
// pushed to the parent after every call.
func BenchmarkEncode(b *testing.B) {
	ring := Message{Type: TypeRing, CallID: tID, Nonce: tNonce, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln", ICETransportPolicy: "all",
		ICEServers: []ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "1:" + tID, Credential: "Y3JlZA"}}}
	for _, c := range []struct {
		name string
		m    Message
	}{{"ring", ring}, {"call-log-50", callLog(50)}} {
		b.Run(c.name+"/encode", func(b *testing.B) {
			for b.Loop() {
				if _, err := Encode(c.m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/encoding-json-reference", func(b *testing.B) {
			for b.Loop() {
				if err := c.m.Validate(); err != nil {
					b.Fatal(err)
				}
				if _, err := json.Marshal(c.m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
