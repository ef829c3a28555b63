package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Fixed, well-formed values for building messages by hand.
const (
	tID    = "abcdefghijklmnopqrstuvwxyz" // 26 characters of [a-z]
	tID2   = "234567abcdefghijklmnopqrst"
	tNonce = "bm9uY2Utbm9uY2Utbm9uY2Utbm9uY2Utbm9uY2U"
	tSDP   = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	tCand  = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
	tSig   = `,"signed_at":"2026-11-28T18:00:00Z","signature":"c2ln"`
	// tNonceF: the nonce field a ring and an accept carry.
	tNonceF = `,"nonce":"` + tNonce + `"`
	tFP     = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"
	// tPoint is P-256's generator, uncompressed: a valid p256dh or
	// vapid_key; tAuth 16 bytes.
	tPoint    = "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"
	tAuth     = "AAAAAAAAAAAAAAAAAAAAAA"
	tEndpoint = "https://fcm.googleapis.com/fcm/send/dGVzdA:APA91b-x_y"
)

// validMessages is the minimal form of every message type in the table of
// docs/protocol.md ("Message table"): only the required fields.
var validMessages = []struct {
	name, json string
}{
	{"challenge", `{"type":"challenge","nonce":"` + tNonce + `"}`},
	{"hello", `{"type":"hello","role":"pairing"}`},
	{"welcome", `{"type":"welcome","role":"pairing"}`},
	{"error", `{"type":"error","code":"bad_message"}`},
	{"presence", `{"type":"presence","peer_online":false}`},
	{"ring", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `}`},
	{"ringing", `{"type":"ringing","call_id":"` + tID + `"}`},
	{"accept", `{"type":"accept","call_id":"` + tID + `"` + tSig + tNonceF + `}`},
	{"prepare", `{"type":"prepare","call_id":"` + tID + `"` + tSig + tNonceF + `}`},
	{"hangup", `{"type":"hangup","call_id":"` + tID + `","reason":"cancel"}`},
	{"offer", `{"type":"offer","call_id":"` + tID + `"` + tSig + `,"sdp":"v=0\r\n"}`},
	{"answer", `{"type":"answer","call_id":"` + tID + `"` + tSig + `,"sdp":"v=0\r\n"}`},
	{"candidate", `{"type":"candidate","call_id":"` + tID + `","candidate":{"candidate":"` + tCand + `"}}`},
	{"call_log", `{"type":"call_log"}`},
	{"pair_request", `{"type":"pair_request","device_id":"` + tID + `","nonce":"` + tNonce + `","ephemeral_key":"RXA","proof":"cHJvb2Y"}`},
	{"pair_accept", `{"type":"pair_accept","pair_id":"` + tID + `","ephemeral_key":"RXQ","public_key":"RA","fingerprint":"` + tFP + `","signature":"c2ln","proof":"cHJvb2Y"}`},
	{"pair_confirm", `{"type":"pair_confirm","pair_id":"` + tID + `","public_key":"UA","signature":"c2ln","proof":"cHJvb2Y"}`},
	{"pair_complete", `{"type":"pair_complete","pair_id":"` + tID + `"}`},
	{"pair_reject", `{"type":"pair_reject","pair_id":"` + tID + `","reason":"declined"}`},
	{"paired", `{"type":"paired","device_id":"` + tID + `","parent_id":"` + tID2 + `"}`},
	{"unpair", `{"type":"unpair"}`},
	{"unpaired", `{"type":"unpaired","device_id":"` + tID + `"}`},

	// Fuller forms: every optional field of the table in use.
	{"challenge full", `{"type":"challenge","nonce":"` + tNonce + `","server_time":"2026-11-28T18:00:00Z"}`},
	{"hello terminal", `{"type":"hello","role":"terminal","device_id":"` + tID + `","public_key":"AAAA","signature":"BBBB","version":"terminald/0.1"}`},
	{"hello parent", `{"type":"hello","role":"parent","parent_id":"` + tID + `","token":"dG9rZW4"}`},
	{"welcome full", `{"type":"welcome","role":"parent","device_id":"` + tID + `","parent_id":"` + tID2 + `","paired":true,"peer_online":true,"server_time":"2026-11-28T18:00:00Z"}`},
	{"error full", `{"type":"error","code":"pair_rejected","message":"declined","ref_type":"pair_request","call_id":"` + tID + `","pair_id":"` + tID2 + `"}`},
	{"ring full", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"ice_servers":[{"urls":["turn:127.0.0.1:3478?transport=udp","stun:127.0.0.1:3478"],"username":"1700000000:` + tID + `","credential":"c2VjcmV0"}],"ice_transport_policy":"relay"}`},
	{"ringing full", `{"type":"ringing","call_id":"` + tID + `","ice_servers":[{"urls":["turns:example.org:443"]}],"ice_transport_policy":"all"}`},
	{"offer real sdp", `{"type":"offer","call_id":"` + tID + `"` + tSig + `,"sdp":` + quote(tSDP) + `}`},
	{"candidate full", `{"type":"candidate","call_id":"` + tID + `","candidate":{"candidate":"` + tCand + `","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}`},
	{"candidate end", `{"type":"candidate","call_id":"` + tID + `","candidate":{"candidate":""}}`},
	{"call_log full", `{"type":"call_log","calls":[{"call_id":"` + tID + `","direction":"from_terminal","started_at":"2026-11-28T18:00:00Z","answered_at":"2026-11-28T18:00:05Z","ended_at":"2026-11-28T18:10:00Z","outcome":"answered","seen":true}]}`},
	{"call_log empty", `{"type":"call_log","calls":[]}`},
	{"pair_request relayed", `{"type":"pair_request","device_id":"` + tID + `","nonce":"` + tNonce + `","ephemeral_key":"RXA","proof":"cHJvb2Y","pair_id":"` + tID2 + `"}`},
	{"paired page", `{"type":"paired","device_id":"` + tID + `","parent_id":"` + tID2 + `","pair_id":"` + tID + `","token":"dG9rZW4"}`},
	{"resume", `{"type":"resume","call_id":"` + tID + `"}`},
	{"resumed", `{"type":"resumed","call_id":"` + tID + `","peer_online":true,"ice_servers":[{"urls":["turns:example.org:443"]}],"ice_transport_policy":"all"}`},
	{"offer restart", `{"type":"offer","call_id":"` + tID + `"` + tSig + `,"sdp":` + quote(tSDP) + `,"restart":1}`},
	{"white space around", " \r\n\t{\"type\":\"call_log\"} \n"},
	{"push_subscribe", `{"type":"push_subscribe","endpoint":"` + tEndpoint + `","p256dh":"` + tPoint + `","auth":"` + tAuth + `"}`},
	{"push_unsubscribe", `{"type":"push_unsubscribe","endpoint":"` + tEndpoint + `"}`},
	{"phone_set", `{"type":"phone_set","phone":"+8613812345678","consent":true}`},
	{"phone_clear", `{"type":"phone_clear"}`},
	{"notify_status request", `{"type":"notify_status"}`},
	{"notify_status full", `{"type":"notify_status","vapid_key":"` + tPoint + `","subscribed":false,"phone_hint":"+*********5678","sms":true,"voice":false}`},
	{"status", `{"type":"status","health":"ready"}`},
	{"status needs repair", `{"type":"status","health":"needs_repair","faults":["camera","button"]}`},
	{"status needs repair unnamed", `{"type":"status","health":"needs_repair"}`},
	{"presence with health", `{"type":"presence","peer_online":true,"health":"needs_repair","faults":["camera"]}`},
	{"presence in call", `{"type":"presence","peer_online":true,"health":"in_call"}`},
	{"welcome with health", `{"type":"welcome","role":"parent","device_id":"` + tID + `","parent_id":"` + tID2 + `","paired":true,"peer_online":true,"health":"needs_repair","faults":["microphone","speaker","storage"]}`},
	{"status with a budget", `{"type":"status","health":"ready","budget":{"total_bytes":500000000,"used_bytes":412000000,"limit":"very-low","until":"2026-12-01T00:00:00+08:00"}}`},
	{"status with a spent budget", `{"type":"status","health":"in_call","budget":{"total_bytes":1,"used_bytes":1099511627776,"limit":"audio-only","until":"2026-12-01T00:00:00Z"}}`},
	{"presence with a budget", `{"type":"presence","peer_online":true,"health":"ready","budget":{"total_bytes":500000000,"used_bytes":412000000,"limit":"very-low","until":"2026-12-01T00:00:00+08:00"}}`},
	{"welcome with a budget", `{"type":"welcome","role":"parent","device_id":"` + tID + `","parent_id":"` + tID2 + `","paired":true,"peer_online":true,"health":"ready","budget":{"total_bytes":500000000,"used_bytes":412000000,"limit":"very-low","until":"2026-12-01T00:00:00+08:00"}}`},
	{"ping", `{"type":"ping"}`},
	{"pong", `{"type":"pong"}`},
}

func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestDecodeValid: the minimal (and the fullest) form of every type decodes,
// with the type it says.
func TestDecodeValid(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range validMessages {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode([]byte(tc.json))
			if err != nil {
				t.Fatalf("Decode(%s): %v", tc.json, err)
			}
			var raw struct{ Type string }
			if err := json.Unmarshal([]byte(tc.json), &raw); err != nil {
				t.Fatal(err)
			}
			if m.Type != raw.Type {
				t.Fatalf("Type = %q, want %q", m.Type, raw.Type)
			}
			seen[m.Type] = true
		})
	}
	// The table above must cover every type the package knows.
	for typ := range rules {
		if !seen[typ] {
			t.Errorf("no valid example of type %q", typ)
		}
	}
}

// TestDecodeFields checks that decoding fills the right fields, not just that
// it does not fail.
func TestDecodeFields(t *testing.T) {
	m, err := Decode([]byte(`{"type":"candidate","call_id":"` + tID + `","candidate":{"candidate":"` + tCand + `","sdpMid":"0","sdpMLineIndex":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.CallID != tID || m.Candidate == nil || m.Candidate.Candidate != tCand ||
		m.Candidate.SDPMid == nil || *m.Candidate.SDPMid != "0" ||
		m.Candidate.SDPMLineIndex == nil || *m.Candidate.SDPMLineIndex != 1 || m.Candidate.UsernameFragment != nil {
		t.Fatalf("decoded candidate = %+v / %+v", m, m.Candidate)
	}

	m, err = Decode([]byte(`{"type":"challenge","nonce":"` + tNonce + `","server_time":"2026-11-28T18:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC); m.Nonce != tNonce || !m.ServerTime.Equal(want) {
		t.Fatalf("decoded challenge = %+v", m)
	}

	m, err = Decode([]byte(`{"type":"presence","peer_online":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.PeerOnline == nil || *m.PeerOnline {
		t.Fatalf("peer_online:false decoded as %v", m.PeerOnline)
	}
}

func TestDecodeRejects(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	iceServers := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = `{"urls":["stun:127.0.0.1:3478"]}`
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	calls := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = `{}`
		}
		return "[" + strings.Join(s, ",") + "]"
	}

	tests := []struct {
		name string
		json string
		want error
		// field is a word the error must contain, so that the person reading
		// it knows what to fix.
		field string
	}{
		{"unknown type", `{"type":"dial","call_id":"` + tID + `"}`, ErrInvalid, `"dial"`},
		{"no type", `{"call_id":"` + tID + `"}`, ErrInvalid, "type"},
		{"unknown field", `{"type":"accept","call_id":"` + tID + `"` + tSig + tNonceF + `,"volume":11}`, ErrMalformed, "volume"},
		{"unknown field in candidate", `{"type":"candidate","call_id":"` + tID + `","candidate":{"candidate":"","foo":1}}`, ErrMalformed, "foo"},
		{"unknown field in ice server", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"ice_servers":[{"urls":["stun:x"],"foo":1}]}`, ErrMalformed, "foo"},
		{"missing required", `{"type":"hangup","call_id":"` + tID + `"}`, ErrInvalid, "reason"},
		{"missing all required", `{"type":"pair_request"}`, ErrInvalid, "device_id"},
		{"unpair carries nothing", `{"type":"unpair","device_id":"` + tID + `"}`, ErrInvalid, "device_id"},
		{"required field empty", `{"type":"accept","call_id":""}`, ErrInvalid, "call_id"},
		{"nonce on a restart offer", `{"type":"offer","call_id":"` + tID + `"` + tSig + tNonceF + `,"sdp":"v=0\r\n","restart":1}`, ErrInvalid, "nonce"},
		{"nonce on an answer", `{"type":"answer","call_id":"` + tID + `"` + tSig + tNonceF + `,"sdp":"v=0\r\n"}`, ErrInvalid, "nonce"},
		{"sdp on ring", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"sdp":"v=0"}`, ErrInvalid, "sdp"},
		{"token on presence", `{"type":"presence","peer_online":true,"token":"dG9rZW4"}`, ErrInvalid, "token"},
		{"calls on accept", `{"type":"accept","call_id":"` + tID + `"` + tSig + tNonceF + `,"calls":[]}`, ErrInvalid, "calls"},
		{"ice_servers on offer", `{"type":"offer","call_id":"` + tID + `"` + tSig + `,"sdp":"v=0","ice_servers":[]}`, ErrInvalid, "ice_servers"},
		{"wrong JSON type", `{"type":"accept","call_id":42}`, ErrMalformed, "call_id"},
		{"ID too short", `{"type":"accept","call_id":"` + tID[:25] + `"` + tSig + tNonceF + `}`, ErrInvalid, "call_id"},
		{"ID too long", `{"type":"accept","call_id":"` + tID + `a"` + tSig + tNonceF + `}`, ErrInvalid, "call_id"},
		{"ID upper case", `{"type":"accept","call_id":"` + strings.ToUpper(tID) + `"` + tSig + tNonceF + `}`, ErrInvalid, "call_id"},
		{"ID base32 digit 1", `{"type":"accept","call_id":"1` + tID[1:] + `"` + tSig + tNonceF + `}`, ErrInvalid, "call_id"},
		{"device_id bad", `{"type":"paired","device_id":"x","parent_id":"` + tID + `"}`, ErrInvalid, "device_id"},
		{"parent_id bad", `{"type":"paired","device_id":"` + tID + `","parent_id":"x"}`, ErrInvalid, "parent_id"},
		{"pair_id bad", `{"type":"pair_complete","pair_id":"../etc"}`, ErrInvalid, "pair_id"},
		{"nonce padded base64", `{"type":"challenge","nonce":"bm9uY2U="}`, ErrInvalid, "nonce"},
		{"nonce std base64", `{"type":"challenge","nonce":"a+b/"}`, ErrInvalid, "nonce"},
		{"proof with space", `{"type":"pair_confirm","pair_id":"` + tID + `","public_key":"UA","signature":"c2ln","proof":"cHJv b2Y"}`, ErrInvalid, "proof"},
		{"signed_at not a time", `{"type":"accept","call_id":"` + tID + `","signed_at":"yesterday","signature":"c2ln"` + tNonceF + `}`, ErrInvalid, "signed_at"},
		{"ring without signature", `{"type":"ring","call_id":"` + tID + `"` + tNonceF + `}`, ErrInvalid, "signed_at"},
		{"ring without nonce", `{"type":"ring","call_id":"` + tID + `"` + tSig + `}`, ErrInvalid, "nonce"},
		{"accept without nonce", `{"type":"accept","call_id":"` + tID + `"` + tSig + `}`, ErrInvalid, "nonce"},
		{"fingerprint sha-1", `{"type":"pair_accept","pair_id":"` + tID + `","ephemeral_key":"RXQ","public_key":"RA","fingerprint":"sha-1 00:11","signature":"c2ln","proof":"cHJvb2Y"}`, ErrInvalid, "fingerprint"},
		{"fingerprint lower case", `{"type":"pair_accept","pair_id":"` + tID + `","ephemeral_key":"RXQ","public_key":"RA","fingerprint":"` + strings.ToLower(tFP) + `","signature":"c2ln","proof":"cHJvb2Y"}`, ErrInvalid, "fingerprint"},
		{"token over 512", `{"type":"hello","role":"parent","parent_id":"` + tID + `","token":"` + long(513) + `"}`, ErrInvalid, "token"},
		{"signature bad", `{"type":"hello","role":"terminal","signature":"%%"}`, ErrInvalid, "signature"},
		{"public_key bad", `{"type":"hello","role":"terminal","public_key":"a.b"}`, ErrInvalid, "public_key"},
		{"role unknown", `{"type":"hello","role":"admin"}`, ErrInvalid, "role"},
		{"role not a word", `{"type":"hello","role":"Terminal"}`, ErrInvalid, "role"},
		{"reason not a word", `{"type":"hangup","call_id":"` + tID + `","reason":"no answer"}`, ErrInvalid, "reason"},
		{"code too long", `{"type":"error","code":"` + long(65) + `"}`, ErrInvalid, "code"},
		{"ref_type not a word", `{"type":"error","code":"bad_message","ref_type":"<script>"}`, ErrInvalid, "ref_type"},
		{"version too long", `{"type":"hello","role":"terminal","version":"` + long(65) + `"}`, ErrInvalid, "version"},
		{"error text too long", `{"type":"error","code":"internal","message":"` + long(513) + `"}`, ErrInvalid, "message"},
		{"sdp over limit", `{"type":"offer","call_id":"` + tID + `"` + tSig + `,"sdp":"v=0` + long(MaxSDPBytes-2) + `"}`, ErrTooLarge, "sdp"},
		{"sdp not v=0", `{"type":"answer","call_id":"` + tID + `"` + tSig + `,"sdp":"o=- 1 2 IN IP4 0.0.0.0"}`, ErrInvalid, "sdp"},
		{"candidate over limit", `{"type":"candidate","call_id":"` + tID + `","candidate":{"candidate":"candidate:` + long(MaxCandidateBytes-9) + `"}}`, ErrTooLarge, "candidate"},
		{"candidate wrong prefix", `{"type":"candidate","call_id":"` + tID + `","candidate":{"candidate":"a=candidate:1"}}`, ErrInvalid, "candidate"},
		{"candidate null", `{"type":"candidate","call_id":"` + tID + `","candidate":null}`, ErrInvalid, "candidate"},
		{"sdpMid too long", `{"type":"candidate","call_id":"` + tID + `","candidate":{"candidate":"","sdpMid":"` + long(33) + `"}}`, ErrInvalid, "sdpMid"},
		{"sdpMLineIndex negative", `{"type":"candidate","call_id":"` + tID + `","candidate":{"candidate":"","sdpMLineIndex":-1}}`, ErrMalformed, "sdpMLineIndex"},
		{"usernameFragment too long", `{"type":"candidate","call_id":"` + tID + `","candidate":{"candidate":"","usernameFragment":"` + long(257) + `"}}`, ErrInvalid, "usernameFragment"},
		{"null", `null`, ErrMalformed, "object"},
		{"array", `[{"type":"call_log"}]`, ErrMalformed, "object"},
		{"string", `"call_log"`, ErrMalformed, "object"},
		{"number", `42`, ErrMalformed, "object"},
		{"empty", ``, ErrMalformed, "object"},
		{"white space only", " \n", ErrMalformed, "object"},
		{"truncated", `{"type":"call_log"`, ErrMalformed, "decode"},
		{"trailing object", `{"type":"call_log"}{"type":"call_log"}`, ErrMalformed, "after top-level value"},
		{"trailing garbage", `{"type":"call_log"} x`, ErrMalformed, "after top-level value"},
		{"trailing brace", `{"type":"call_log"}}`, ErrMalformed, "after top-level value"},
		{"trailing bracket", `{"type":"call_log"}]`, ErrMalformed, "after top-level value"},
		{"trailing NUL", "{\"type\":\"call_log\"}\x00", ErrMalformed, "after top-level value"},
		{"member name in another case", `{"type":"accept","Call_ID":"aaaaaaaaaaaaaaaaaaaaaaaaaa"}`, ErrMalformed, "Call_ID"},
		{"repeated member", `{"type":"accept","call_id":"aaaaaaaaaaaaaaaaaaaaaaaaaa","call_id":"bbbbbbbbbbbbbbbbbbbbbbbbbb"}`, ErrMalformed, "duplicate"},
		{"over 16 KiB", `{"type":"error","code":"internal","message":"` + long(MaxMessageBytes) + `"}`, ErrTooLarge, "bytes"},
		{"ice url http", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"ice_servers":[{"urls":["http://evil.example/"]}]}`, ErrInvalid, "ice_servers"},
		{"ice url second bad", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"ice_servers":[{"urls":["stun:ok","javascript:alert(1)"]}]}`, ErrInvalid, "ice_servers"},
		{"ice no urls", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"ice_servers":[{"urls":[]}]}`, ErrInvalid, "ice_servers"},
		{"ice 5 servers", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"ice_servers":` + iceServers(5) + `}`, ErrInvalid, "ice_servers"},
		{"ice credential too long", `{"type":"ringing","call_id":"` + tID + `","ice_servers":[{"urls":["turn:x"],"credential":"` + long(129) + `"}]}`, ErrInvalid, "ice_servers"},
		{"ice policy", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"ice_transport_policy":"none"}`, ErrInvalid, "ice_transport_policy"},
		{"ice policy upper", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"ice_transport_policy":"RELAY"}`, ErrInvalid, "ice_transport_policy"},
		{"calls over 200", `{"type":"call_log","calls":` + calls(201) + `}`, ErrInvalid, "calls"},
		{"calls huge", `{"type":"call_log","calls":` + calls(10000) + `}`, ErrTooLarge, "bytes"},
		// encoding/json does not name the field when time.Time's own
		// UnmarshalJSON fails; the error quotes the bad value instead. Only the
		// server sends times, so no client-facing error depends on this.
		{"endpoint http", `{"type":"push_unsubscribe","endpoint":"http://fcm.googleapis.com/x"}`, ErrInvalid, "endpoint"},
		{"endpoint no host", `{"type":"push_unsubscribe","endpoint":"https:///x"}`, ErrInvalid, "endpoint"},
		{"endpoint user info", `{"type":"push_unsubscribe","endpoint":"https://a:b@fcm.googleapis.com/x"}`, ErrInvalid, "endpoint"},
		{"endpoint fragment", `{"type":"push_unsubscribe","endpoint":"https://fcm.googleapis.com/x#y"}`, ErrInvalid, "endpoint"},
		{"endpoint space", `{"type":"push_unsubscribe","endpoint":"https://fcm.googleapis.com/x y"}`, ErrInvalid, "endpoint"},
		{"endpoint too long", `{"type":"push_unsubscribe","endpoint":"https://fcm.googleapis.com/` + long(MaxEndpointBytes) + `"}`, ErrTooLarge, "endpoint"},
		{"p256dh not on the curve", `{"type":"push_subscribe","endpoint":"` + tEndpoint + `","p256dh":"` + tPoint[:len(tPoint)-2] + `AA","auth":"` + tAuth + `"}`, ErrInvalid, "p256dh"},
		{"p256dh compressed", `{"type":"push_subscribe","endpoint":"` + tEndpoint + `","p256dh":"AAAA","auth":"` + tAuth + `"}`, ErrInvalid, "p256dh"},
		{"auth 15 bytes", `{"type":"push_subscribe","endpoint":"` + tEndpoint + `","p256dh":"` + tPoint + `","auth":"AAAAAAAAAAAAAAAAAAAA"}`, ErrInvalid, "auth"},
		{"push_subscribe without auth", `{"type":"push_subscribe","endpoint":"` + tEndpoint + `","p256dh":"` + tPoint + `"}`, ErrInvalid, "auth"},
		{"phone without plus", `{"type":"phone_set","phone":"13812345678","consent":true}`, ErrInvalid, "phone"},
		{"phone too long", `{"type":"phone_set","phone":"+8613812345678901","consent":true}`, ErrInvalid, "phone"},
		{"phone with spaces", `{"type":"phone_set","phone":"+86 138 1234 5678","consent":true}`, ErrInvalid, "phone"},
		{"phone without consent", `{"type":"phone_set","phone":"+8613812345678"}`, ErrInvalid, "consent"},
		{"phone consent false", `{"type":"phone_set","phone":"+8613812345678","consent":false}`, ErrInvalid, "consent"},
		{"phone on notify_status", `{"type":"notify_status","phone":"+8613812345678"}`, ErrInvalid, "phone"},
		{"phone_hint unmasked", `{"type":"notify_status","phone_hint":"+8613812345678"}`, ErrInvalid, "phone_hint"},
		{"vapid_key short", `{"type":"notify_status","vapid_key":"BAAA"}`, ErrInvalid, "vapid_key"},
		{"bad time", `{"type":"challenge","nonce":"` + tNonce + `","server_time":"yesterday"}`, ErrMalformed, `"yesterday"`},
		{"status without health", `{"type":"status"}`, ErrInvalid, "health"},
		{"status health unknown", `{"type":"status","health":"online"}`, ErrInvalid, "health"},
		{"status faults when ready", `{"type":"status","health":"ready","faults":["camera"]}`, ErrInvalid, "faults"},
		{"status fault unknown", `{"type":"status","health":"needs_repair","faults":["flux_capacitor"]}`, ErrInvalid, "faults"},
		{"status fault twice", `{"type":"status","health":"needs_repair","faults":["camera","camera"]}`, ErrInvalid, "faults"},
		{"status faults empty", `{"type":"status","health":"needs_repair","faults":[]}`, ErrInvalid, "faults"},
		{"status faults too many", `{"type":"status","health":"needs_repair","faults":["camera","button","microphone","speaker","storage","camera"]}`, ErrInvalid, "faults"},
		{"status fault free text", `{"type":"status","health":"needs_repair","faults":["camera missing since 18:00 at home"]}`, ErrInvalid, "faults"},
		{"presence health while offline", `{"type":"presence","peer_online":false,"health":"ready"}`, ErrInvalid, "health"},
		{"faults on ring", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"faults":["camera"]}`, ErrInvalid, "faults"},
		{"health on hello", `{"type":"hello","role":"terminal","health":"ready"}`, ErrInvalid, "health"},
		{"budget no total", `{"type":"status","health":"ready","budget":{"total_bytes":0,"used_bytes":0,"limit":"low","until":"2026-12-01T00:00:00Z"}}`, ErrInvalid, "total_bytes"},
		{"budget total too large", `{"type":"status","health":"ready","budget":{"total_bytes":1099511627777,"used_bytes":0,"limit":"low","until":"2026-12-01T00:00:00Z"}}`, ErrInvalid, "total_bytes"},
		{"budget used negative", `{"type":"status","health":"ready","budget":{"total_bytes":5,"used_bytes":-1,"limit":"low","until":"2026-12-01T00:00:00Z"}}`, ErrInvalid, "used_bytes"},
		{"budget limit unknown", `{"type":"status","health":"ready","budget":{"total_bytes":5,"used_bytes":1,"limit":"hd","until":"2026-12-01T00:00:00Z"}}`, ErrInvalid, "limit"},
		{"budget without until", `{"type":"status","health":"ready","budget":{"total_bytes":5,"used_bytes":1,"limit":"low"}}`, ErrInvalid, "until"},
		{"budget until not a time", `{"type":"status","health":"ready","budget":{"total_bytes":5,"used_bytes":1,"limit":"low","until":"next month"}}`, ErrMalformed, "next month"},
		{"budget unknown member", `{"type":"status","health":"ready","budget":{"total_bytes":5,"used_bytes":1,"limit":"low","until":"2026-12-01T00:00:00Z","free":true}}`, ErrMalformed, "free"},
		{"budget total as text", `{"type":"status","health":"ready","budget":{"total_bytes":"5","used_bytes":1,"limit":"low","until":"2026-12-01T00:00:00Z"}}`, ErrMalformed, "total_bytes"},
		{"budget while offline", `{"type":"presence","peer_online":false,"budget":{"total_bytes":5,"used_bytes":1,"limit":"low","until":"2026-12-01T00:00:00Z"}}`, ErrInvalid, "online"},
		{"budget on ring", `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"budget":{"total_bytes":5,"used_bytes":1,"limit":"low","until":"2026-12-01T00:00:00Z"}}`, ErrInvalid, "budget"},
		{"budget on hello", `{"type":"hello","role":"terminal","budget":{"total_bytes":5,"used_bytes":1,"limit":"low","until":"2026-12-01T00:00:00Z"}}`, ErrInvalid, "budget"},
		{"ping carries nothing", `{"type":"ping","call_id":"` + tID + `"}`, ErrInvalid, "call_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode([]byte(tc.json))
			if err == nil {
				t.Fatalf("Decode accepted %.200s as %+v", tc.json, m)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error = %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrTooLarge, ErrMalformed, ErrInvalid} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("Decode error %v is also %v", err, other)
				}
			}
			if !strings.HasPrefix(err.Error(), "protocol: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
			if !reflect.DeepEqual(m, Message{}) {
				t.Errorf("Decode returned %+v along with its error, want the zero Message", m)
			}
		})
	}
}

// TestDecodeLimitsAreInclusive: a field exactly at its limit is accepted.
func TestDecodeLimitsAreInclusive(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	calls := make([]string, 200)
	for i := range calls {
		calls[i] = `{}`
	}
	for name, js := range map[string]string{
		"sdp at limit":       `{"type":"offer","call_id":"` + tID + `"` + tSig + `,"sdp":"v=0` + long(MaxSDPBytes-3) + `"}`,
		"candidate at limit": `{"type":"candidate","call_id":"` + tID + `","candidate":{"candidate":"candidate:` + long(MaxCandidateBytes-10) + `"}}`,
		"token 512":          `{"type":"hello","role":"parent","parent_id":"` + tID + `","token":"` + long(512) + `"}`,
		"4 ice servers":      `{"type":"ring","call_id":"` + tID + `"` + tSig + tNonceF + `,"ice_servers":[{"urls":["stun:a"]},{"urls":["stun:b"]},{"urls":["turn:c"]},{"urls":["turns:d"]}]}`,
		"200 calls":          `{"type":"call_log","calls":[` + strings.Join(calls, ",") + `]}`,
		"message 64 long":    `{"type":"hello","role":"terminal","version":"` + long(64) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode([]byte(js)); err != nil {
				t.Fatalf("Decode at the limit: %v", err)
			}
		})
	}

	// The whole message: exactly MaxMessageBytes is accepted, one more is not.
	pad := func(total int) []byte {
		head := `{"type":"error","code":"internal","message":"`
		tail := `"}`
		// Fill with JSON white space after the object; the size counts it.
		b := []byte(head + long(512) + tail)
		return append(b, []byte(strings.Repeat(" ", total-len(b)))...)
	}
	if _, err := Decode(pad(MaxMessageBytes)); err != nil {
		t.Fatalf("Decode of exactly %d bytes: %v", MaxMessageBytes, err)
	}
	if _, err := Decode(pad(MaxMessageBytes + 1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Decode of %d bytes: %v, want ErrTooLarge", MaxMessageBytes+1, err)
	}
}

// sampleMessages are Go-built messages of every type, with the optional fields
// in use, as the terminal, server and phone build them.
func sampleMessages() []Message {
	yes, no := true, false
	mid, idx, ufrag := "0", uint16(0), "abcd"
	at := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	return []Message{
		{Type: TypeChallenge, Nonce: tNonce, ServerTime: at},
		{Type: TypeHello, Role: RoleTerminal, DeviceID: tID, PublicKey: "AAAA", Signature: "BBBB", Version: "terminald/0.1"},
		{Type: TypeHello, Role: RoleParent, ParentID: tID, Token: "dG9rZW4"},
		{Type: TypeHello, Role: RolePairing},
		{Type: TypeWelcome, Role: RoleParent, DeviceID: tID, ParentID: tID2, Paired: &yes, PeerOnline: &no, ServerTime: at},
		{Type: TypeError, Code: ErrCodeBadMessage, Text: `protocol: ring: field "sdp" not allowed`, RefType: TypeRing, CallID: tID},
		{Type: TypePresence, PeerOnline: &no},
		{Type: TypeRing, CallID: tID, Nonce: tNonce, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln", ICEServers: []ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "1:" + tID, Credential: "Y3JlZA"}}, ICETransportPolicy: "relay"},
		{Type: TypeRing, CallID: tID, Nonce: tNonce, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln", ICEServers: []ICEServer{}},
		{Type: TypeRinging, CallID: tID},
		{Type: TypeAccept, CallID: tID, Nonce: tNonce, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln"},
		{Type: TypePrepare, CallID: tID, Nonce: tNonce, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln"},
		{Type: TypePrepare, CallID: tID, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln"},
		{Type: TypeOffer, CallID: tID, SDP: tSDP, Nonce: tNonce, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln"},
		{Type: TypeHangup, CallID: tID, Reason: ReasonNoAnswer},
		{Type: TypeOffer, CallID: tID, SDP: tSDP, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln"},
		{Type: TypeAnswer, CallID: tID, SDP: tSDP + "a=x:<&>\u2028\r\n", SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln"},
		{Type: TypeCandidate, CallID: tID, Candidate: &Candidate{Candidate: tCand, SDPMid: &mid, SDPMLineIndex: &idx, UsernameFragment: &ufrag}},
		{Type: TypeCandidate, CallID: tID, Candidate: &Candidate{}},
		{Type: TypeCallLog},
		{Type: TypeCallLog, Calls: []CallRecord{}},
		{Type: TypeCallLog, Calls: []CallRecord{
			{CallID: tID, Direction: DirFromTerminal, StartedAt: at, Outcome: OutcomeMissed},
			{CallID: tID2, Direction: DirFromParent, StartedAt: at, AnsweredAt: at.Add(time.Second), EndedAt: at.Add(time.Minute), Outcome: OutcomeAnswered, Seen: true},
		}},
		{Type: TypePairRequest, DeviceID: tID, Nonce: tNonce, EphemeralKey: "RXA", Proof: "cHJvb2Y", PairID: tID2},
		{Type: TypePairAccept, PairID: tID, EphemeralKey: "RXQ", PublicKey: "RA", Fingerprint: tFP, Signature: "c2ln", Proof: "cHJvb2Y"},
		{Type: TypePairConfirm, PairID: tID, PublicKey: "UA", Signature: "c2ln", Proof: "cHJvb2Y"},
		{Type: TypePairComplete, PairID: tID},
		{Type: TypePairReject, PairID: tID, Reason: "bad_secret"},
		{Type: TypePaired, DeviceID: tID, ParentID: tID2, PairID: tID, Token: "dG9rZW4"},
		{Type: TypeUnpair},
		{Type: TypeUnpaired, DeviceID: tID},
		{Type: TypeOffer, CallID: tID, SDP: tSDP, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln", Restart: 2},
		{Type: TypeAnswer, CallID: tID, SDP: tSDP, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln", Restart: 2},
		{Type: TypeResume, CallID: tID},
		{Type: TypeResumed, CallID: tID, PeerOnline: &yes, ICEServers: []ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "1:" + tID, Credential: "Y3JlZA"}}, ICETransportPolicy: "all"},
		{Type: TypePushSubscribe, Endpoint: tEndpoint, P256DH: tPoint, Auth: tAuth},
		{Type: TypePushUnsubscribe, Endpoint: tEndpoint},
		{Type: TypePhoneSet, Phone: "+8613812345678", Consent: &yes},
		{Type: TypePhoneClear},
		{Type: TypeNotifyStatus},
		{Type: TypeNotifyStatus, VAPIDKey: tPoint, Subscribed: &no, PhoneHint: MaskPhone("+8613812345678"), SMS: &yes, Voice: &no},
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		t.Run(m.Type, func(t *testing.T) {
			b, err := Encode(m)
			if err != nil {
				t.Fatalf("Encode(%+v): %v", m, err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(Encode(m)) of %s: %v", b, err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip of %s:\n got %+v\nwant %+v", b, got, m)
			}
		})
	}
}

// TestEncodeKeepsPresence: an empty but set list stays on the wire, so an
// empty call log can be told from a request for one.
func TestEncodeKeepsPresence(t *testing.T) {
	b, err := Encode(Message{Type: TypeCallLog, Calls: []CallRecord{}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"call_log","calls":[]}`; string(b) != want {
		t.Fatalf("empty call log = %s, want %s", b, want)
	}
	b, err = Encode(Message{Type: TypeCallLog})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"call_log"}`; string(b) != want {
		t.Fatalf("call log request = %s, want %s", b, want)
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want error
	}{
		{"no type", Message{CallID: tID}, ErrInvalid},
		{"missing field", Message{Type: TypeHangup, CallID: tID}, ErrInvalid},
		{"field not allowed", Message{Type: TypeRing, CallID: tID, SDP: "v=0"}, ErrInvalid},
		{"bad ID", Message{Type: TypeAccept, CallID: "not-an-id", SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln"}, ErrInvalid},
		{"bad role", Message{Type: TypeHello, Role: "root"}, ErrInvalid},
		{"restart on a ring", Message{Type: TypeRing, CallID: tID, Nonce: tNonce, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln", Restart: 1}, ErrInvalid},
		{"negative restart", Message{Type: TypeOffer, CallID: tID, SDP: tSDP, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln", Restart: -1}, ErrInvalid},
		{"restart over the limit", Message{Type: TypeOffer, CallID: tID, SDP: tSDP, SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln", Restart: MaxRestarts + 1}, ErrInvalid},
		{"resume without call", Message{Type: TypeResume}, ErrInvalid},
		{"sdp too big", Message{Type: TypeOffer, CallID: tID, SDP: "v=0" + strings.Repeat("a", MaxSDPBytes), SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln"}, ErrTooLarge},
		{"bad policy", Message{Type: TypeRing, CallID: tID, ICETransportPolicy: "any", SignedAt: "2026-11-28T18:00:00Z", Signature: "c2ln"}, ErrInvalid},
		// Every field valid, but together over MaxMessageBytes once encoded.
		{"message too big", Message{Type: TypeCallLog, Calls: func() []CallRecord {
			r := make([]CallRecord, 200)
			for i := range r {
				r[i] = CallRecord{CallID: tID, Direction: DirFromParent, Outcome: OutcomeCancelled, StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), EndedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)}
			}
			return r
		}()}, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(tc.m)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Encode = %s, %v; want %v", b, err, tc.want)
			}
			if b != nil {
				t.Fatalf("Encode returned %d bytes along with its error", len(b))
			}
		})
	}
}

func TestValidID(t *testing.T) {
	for _, id := range []string{tID, tID2, NewID()} {
		if !ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
	}
	for _, id := range []string{"", tID[:25], tID + "a", strings.ToUpper(tID), "0" + tID[1:], "8" + tID[1:], "=" + tID[1:], tID[:25] + "\n"} {
		if ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts survives an
// Encode/Decode round trip unchanged: what the server relays is what it
// checked.
func FuzzDecode(f *testing.F) {
	addMessageSeeds(f)
	f.Add([]byte(`{"type":"call_log"}}`))
	f.Add([]byte(`{"type":"challenge","nonce":"` + tNonce + `","server_time":"0001-01-01T00:00:00+00:00"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode error without a sentinel: %v", err)
			}
			return
		}
		b, err := Encode(m)
		if err != nil {
			// The one legitimate failure: JSON escaping (U+2028, replaced
			// invalid UTF-8, HTML characters) can make the canonical form
			// longer than the bytes received.
			if raw, _ := json.Marshal(m); errors.Is(err, ErrTooLarge) && len(raw) > MaxMessageBytes {
				return
			}
			t.Fatalf("Decode accepted %q but Encode refuses it: %v", data, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(m)) = %v\ninput:   %q\nencoded: %s", err, data, b)
		}
		if !reflect.DeepEqual(normalize(got), normalize(m)) {
			t.Fatalf("round trip changed the message\ninput:   %q\nencoded: %s\n got %+v\nwant %+v", data, b, got, m)
		}
	})
}

// normalize puts every time in UTC: "+00:00" decodes with the Local zone and
// re-encodes as "Z", the same instant in another *time.Location.
func normalize(m Message) Message {
	m.ServerTime = m.ServerTime.UTC()
	if m.Calls != nil {
		calls := make([]CallRecord, len(m.Calls))
		for i, c := range m.Calls {
			c.StartedAt, c.AnsweredAt, c.EndedAt = c.StartedAt.UTC(), c.AnsweredAt.UTC(), c.EndedAt.UTC()
			calls[i] = c
		}
		m.Calls = calls
	}
	return m
}

func ExampleDecode() {
	_, err := Decode([]byte(`{"type":"ring","call_id":"abcdefghijklmnopqrstuvwxyz","sdp":"v=0"}`))
	fmt.Println(err)
	// Output: protocol: ring: field "sdp" not allowed: invalid message
}

// addMessageSeeds seeds a fuzz target with every message type, minimal and
// full.
func addMessageSeeds(f *testing.F) {
	for _, tc := range validMessages {
		f.Add([]byte(tc.json))
	}
	for _, m := range sampleMessages() {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}
