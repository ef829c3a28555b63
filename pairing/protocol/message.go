// Package protocol defines the signalling messages that the terminal, the
// parent's phone and the rendezvous server exchange over WebSocket, and the
// rules every decoder of them enforces. docs/protocol.md is the prose version;
// keep the two in step.
//
// Every message is one JSON object with a "type" field. One flat struct
// carries all types so that a decoder can reject unknown fields strictly and
// so that other clients (the parent's web page) can build messages with plain
// object literals.
package protocol

import (
	"bytes"
	"fmt"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Subprotocol is the WebSocket subprotocol name both sides must offer.
const Subprotocol = "tuanju.v3"

// Limits on untrusted input (docs/protocol.md, "Limits"). Measured on real
// calls (tests/e2e browser tests, 2026-11): the terminal's offer (pion,
// H.264 + Opus, trickle ICE) is 1,671–2,387 bytes, Chromium's answer 1,722
// bytes, a whole offer message 2,565 bytes once JSON-escaped; Chromium's
// own offer with every codec, which never reaches us, is ~6–7 KB. The
// longest candidate seen was 136 bytes (a relay candidate with network-id
// and network-cost); an IPv6 relay candidate with an IPv6 raddr is ~210.
// So the limits leave several times the headroom real clients need while a
// flood of maximal messages costs the server at most 16 KiB per read.
//
// MaxSDPBytes leaves room for JSON escaping inside one message: every line
// ends in CRLF, which encodes as four bytes ("\r\n"), so an SDP of 15,000
// bytes with 300 lines is ~15,700 bytes on the wire.
const (
	MaxMessageBytes   = 16 << 10 // one WebSocket message, as received or sent
	MaxSDPBytes       = 15_000   // offer and answer "sdp"
	MaxCandidateBytes = 255      // one candidate line ("candidate:...")
	MaxReasonBytes    = 64
	MaxCandidates     = 50 // per side per call
	// MaxRestarts bounds a call's ICE restarts (the offer's "restart").
	MaxRestarts = 1000
	// MaxICEServers bounds a message's ice_servers entries (a TURN
	// cluster's turn.urls are handed out as that many).
	MaxICEServers = 4
	// MaxCertificateChars bounds a terminal hello's certificate: base64url of
	// at most devcert.MaxCertBytes (1,500) bytes. The one field allowed past
	// the 512 characters of the other base64url fields.
	MaxCertificateChars = 2048
)

// Type names. The comment says who may send it.
const (
	TypeChallenge    = "challenge"     // server → any, first message on every socket
	TypeHello        = "hello"         // client → server, authentication
	TypeWelcome      = "welcome"       // server → client, authentication succeeded
	TypeError        = "error"         // server → client
	TypePresence     = "presence"      // server → client: the paired peer went on/offline
	TypeRing         = "ring"          // caller → server → callee
	TypeRinging      = "ringing"       // server → caller: the callee is being rung
	TypeAccept       = "accept"        // callee → server → caller
	TypePrepare      = "prepare"       // parent → server → terminal: its offer now, while it rings (docs/protocol.md, "Preparing a call")
	TypeHangup       = "hangup"        // either → server → other (cancel, decline, hang up)
	TypeOffer        = "offer"         // terminal → server → parent
	TypeAnswer       = "answer"        // parent → server → terminal
	TypeCandidate    = "candidate"     // either → server → other
	TypeCallLog      = "call_log"      // parent → server (request); server → parent (the log)
	TypePairRequest  = "pair_request"  // pairing page → server → terminal
	TypePairAccept   = "pair_accept"   // terminal → server → pairing page (after the button press)
	TypePairConfirm  = "pair_confirm"  // pairing page → server → terminal
	TypePairComplete = "pair_complete" // terminal → server: the page's confirm verified and the parent stored; commit the pairing
	TypePairReject   = "pair_reject"   // terminal → server
	TypePaired       = "paired"        // server → pairing page and terminal
	TypeUnpair       = "unpair"        // terminal → server: the terminal was factory-reset
	TypeUnpaired     = "unpaired"      // server → the old parent's sockets (then closed), and → terminal (ack)
	// TypeResume: a socket that lost its connection mid-call asks to be
	// bound to that call again (docs/protocol.md, "Resuming a call").
	TypeResume  = "resume"  // terminal or parent → server
	TypeResumed = "resumed" // server → the resumed side (and the other, once both are back)
)

// Roles a socket can authenticate as.
const (
	RoleTerminal = "terminal"
	RoleParent   = "parent"
	RolePairing  = "pairing"
)

// Hangup reasons.
const (
	ReasonCancel            = "cancel"             // caller gave up before an answer
	ReasonDecline           = "decline"            // callee refused
	ReasonHangup            = "hangup"             // a connected call ended normally
	ReasonNoAnswer          = "no_answer"          // the caller's ring timer ran out
	ReasonBusy              = "busy"               // the callee is already in a call
	ReasonUnavailable       = "unavailable"        // the callee is offline
	ReasonFailed            = "failed"             // media could not be set up or was lost
	ReasonAnsweredElsewhere = "answered_elsewhere" // another tab of the same parent answered
	ReasonPeerLeft          = "peer_left"          // the other side's socket closed
)

// ReasonRevoked, in a presence or a parent's welcome that says the terminal
// is offline, says why: the programme revoked it (revoked_devices_file), so
// it stays offline until reinstated, and the family should ask the
// programme rather than check the terminal's power and network.
const ReasonRevoked = "revoked"

// Error codes sent in "error" messages.
const (
	ErrCodeBadMessage    = "bad_message"    // malformed, oversized or unknown message
	ErrCodeAuthFailed    = "auth_failed"    // hello rejected; the socket is closed
	ErrCodeNotAllowed    = "not_allowed"    // message not allowed for this role or state
	ErrCodeNotPaired     = "not_paired"     // the terminal has no parent (or the parent no terminal)
	ErrCodeUnknownCall   = "unknown_call"   // call_id is not the caller's active call
	ErrCodeUnknownDevice = "unknown_device" // pairing: no such device is registered
	ErrCodeDeviceOffline = "device_offline" // pairing: the terminal is not connected
	ErrCodeAlreadyPaired = "already_paired" // pairing: the terminal already has a parent
	ErrCodePairRejected  = "pair_rejected"  // pairing: the terminal refused (see message)
	ErrCodeRateLimited   = "rate_limited"   // too many attempts; retry later
	ErrCodeBusy          = "busy"           // a call is already in progress
	ErrCodeInternal      = "internal"       // server fault; nothing was changed
	// ErrCodePairingPending answers a parent's login whose pairing the
	// terminal has not yet confirmed stored (docs/protocol.md, "Pairing",
	// step 6): the credential is neither good nor dead yet; try again later.
	ErrCodePairingPending = "pairing_pending"
	// ErrCodePairBusy answers a pair_request while another request for the
	// same terminal is under way (another phone is pairing, or an earlier
	// pairing is still being completed): the server keeps one at a time.
	// Unlike rate_limited it says nothing is wrong with this page's tries.
	ErrCodePairBusy = "pair_busy"
)

// ReasonNotPaired is the terminal's pair_reject of a pending pairing
// (welcome's pair_id) that it has not stored: the server rolls it back.
// On an unpair it says the server keeps a parent the terminal never stored
// (a split pairing healed at login), not that the unit was reset.
const ReasonNotPaired = "not_paired"

// TokenBytes is the size of a parent's bearer token, which its page makes
// and sends in pair_confirm (base64url: 43 characters).
const TokenBytes = 32

// ICEServer is one STUN/TURN server handed to a client for one call.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Candidate mirrors the browser's RTCIceCandidateInit.
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// CallRecord is one entry of a call log, as the parent sees it.
type CallRecord struct {
	CallID     string    `json:"call_id"`
	Direction  string    `json:"direction"` // "from_terminal" or "from_parent"
	StartedAt  time.Time `json:"started_at"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	Outcome    string    `json:"outcome"` // see Outcome*
	Seen       bool      `json:"seen"`    // the parent has looked at it (missed-call badge)
}

// Call directions and outcomes.
const (
	DirFromTerminal = "from_terminal"
	DirFromParent   = "from_parent"

	OutcomeRinging   = "ringing"
	OutcomeAnswered  = "answered"
	OutcomeMissed    = "missed" // rang, nobody answered or the callee was offline
	OutcomeDeclined  = "declined"
	OutcomeCancelled = "cancelled"
	OutcomeFailed    = "failed"
	// OutcomeInterrupted: the call was in progress when the server stopped
	// without ending it (a crash, a power cut); the server closes such calls
	// at its next start. A child's call nobody answered is closed as missed
	// instead, so the parent still sees that the child tried.
	OutcomeInterrupted = "interrupted"
)

// Message is every signalling message. Only the fields of its Type may be set;
// Validate enforces that.
type Message struct {
	Type string `json:"type"`

	// challenge
	Nonce      string    `json:"nonce,omitempty"`
	ServerTime time.Time `json:"server_time,omitzero"`

	// hello
	Role      string `json:"role,omitempty"`
	DeviceID  string `json:"device_id,omitempty"`
	PublicKey string `json:"public_key,omitempty"` // base64url SPKI DER, ECDSA P-256
	Signature string `json:"signature,omitempty"`  // hello: ASN.1 ECDSA over LoginMessage; pairing and calls: P1363 (see package pairing)
	// terminal: base64url DER of its device certificate, signed by a program CA
	Certificate string `json:"certificate,omitempty"`
	ParentID    string `json:"parent_id,omitempty"`
	Token       string `json:"token,omitempty"` // parent: credential from pairing
	Version     string `json:"version,omitempty"`

	// welcome / presence
	Paired     *bool `json:"paired,omitempty"`
	PeerOnline *bool `json:"peer_online,omitempty"`
	// Health and Faults: a terminal's status, and the presence and welcome
	// that carry it to its parent (status.go). Faults is omitzero like the
	// lists below: an empty list would count as set.
	Health string   `json:"health,omitempty"`
	Faults []string `json:"faults,omitzero"`
	// Budget: the terminal's monthly data budget (budget.go), on status,
	// presence and welcome.
	Budget *Budget `json:"budget,omitempty"`

	// error
	Code    string `json:"code,omitempty"`
	Text    string `json:"message,omitempty"`
	RefType string `json:"ref_type,omitempty"`

	// calls. The two lists are omitzero, not omitempty: an empty non-nil list
	// counts as set (see setFields), so Encode must keep it ("calls":[] is an
	// empty log, not a request for one).
	CallID             string       `json:"call_id,omitempty"`
	Reason             string       `json:"reason,omitempty"`
	SDP                string       `json:"sdp,omitempty"`
	Candidate          *Candidate   `json:"candidate,omitempty"`
	ICEServers         []ICEServer  `json:"ice_servers,omitzero"`
	ICETransportPolicy string       `json:"ice_transport_policy,omitempty"`
	Calls              []CallRecord `json:"calls,omitzero"`

	// Restart numbers an ICE restart's offer and answer (1, 2, …; absent on
	// the call's first offer and answer); the signature covers it.
	Restart int `json:"restart,omitempty"`

	// SignedAt is when a signed call message (ring, accept, offer, answer)
	// was signed, RFC 3339 UTC; Signature is the signature (package pairing).
	SignedAt string `json:"signed_at,omitempty"`

	// pairing
	PairID       string `json:"pair_id,omitempty"`
	Proof        string `json:"proof,omitempty"`
	EphemeralKey string `json:"ephemeral_key,omitempty"` // ECDH P-256, uncompressed point, base64url
	Fingerprint  string `json:"fingerprint,omitempty"`   // the terminal's DTLS certificate: "sha-256 AB:…"
	// Source, on a pair_request the server relays to a terminal, is an
	// opaque tag of the page's network (the same for every page on it for
	// the server's lifetime, and no IP address): the terminal counts wrong
	// proofs per source. What a page sends here is replaced.
	Source string `json:"source,omitempty"`

	// notifications (notify.go): a browser's push subscription, a phone
	// number given with consent, and the server's notify_status.
	Endpoint   string `json:"endpoint,omitempty"`
	P256DH     string `json:"p256dh,omitempty"`
	Auth       string `json:"auth,omitempty"`
	Phone      string `json:"phone,omitempty"`
	Consent    *bool  `json:"consent,omitempty"`
	VAPIDKey   string `json:"vapid_key,omitempty"`
	Subscribed *bool  `json:"subscribed,omitempty"`
	PhoneHint  string `json:"phone_hint,omitempty"`
	SMS        *bool  `json:"sms,omitempty"`
	Voice      *bool  `json:"voice,omitempty"`
}

// Decode parses one message from untrusted bytes: size-limited, strict (an
// unknown field is an error), and validated.
func Decode(data []byte) (Message, error) {
	var m Message
	if len(data) > MaxMessageBytes {
		return m, fmt.Errorf("protocol: message of %d bytes exceeds %d: %w", len(data), MaxMessageBytes, ErrTooLarge)
	}
	// encoding/json would happily decode null into the zero Message; only an
	// object is a message.
	if body := bytes.TrimLeft(data, jsonSpace); len(body) == 0 || body[0] != '{' {
		return Message{}, fmt.Errorf("protocol: decode: %w: not a JSON object", ErrMalformed)
	}
	// json/v2 semantics: member names match exactly (encoding/json would
	// take "Call_ID" for call_id), a repeated name is an error (a later one
	// would silently win), unknown members are an error, and nothing but
	// white space may follow the object.
	if err := jsonv2.Unmarshal(data, &m, jsonv2.RejectUnknownMembers(true)); err != nil {
		return Message{}, fmt.Errorf("protocol: decode: %w: %v", ErrMalformed, err)
	}
	if err := m.Validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// Encode marshals a message after validating it, so that a bug on our side
// never puts something on the wire that a strict peer would reject.
//
// It marshals with json/v2, set to write exactly what encoding/json writes
// (encodeOptions, TestEncodeMatchesEncodingJSON): the server encodes every
// message it sends, a call log of 50 records after each call, and
// encoding/json was 8% of a node's CPU in a call setup (issue 16,
// BenchmarkEncode, BenchmarkCallSetups).
func Encode(m Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := jsonv2.Marshal(m, encodeOptions)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode %s: %w", m.Type, err)
	}
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("protocol: encode %s: %d bytes: %w", m.Type, len(b), ErrTooLarge)
	}
	return b, nil
}

// encodeOptions make json/v2 write what encoding/json wrote, byte for
// byte: omitempty drops a zero number and false as it did (restart), and
// <, >, &, U+2028 and U+2029 are escaped as it escaped them.
var encodeOptions = jsonv2.JoinOptions(
	jsonv1.OmitEmptyWithLegacySemantics(true),
	jsontext.EscapeForHTML(true),
	jsontext.EscapeForJS(true),
)

// jsonSpace is the white space RFC 8259 allows between tokens.
const jsonSpace = " \t\r\n"

// The shapes every message's fields are checked against (as the regular
// expressions in charset_test.go say). A charset is checked without a
// regexp engine: the server checks every field of every message, and
// matching them with package regexp was a tenth of a node's CPU in a call
// setup (issue 16, BenchmarkCallSetups).
var (
	idPattern     = newCharset("a-z2-7", 26, 26)
	b64urlPattern = newCharset("A-Za-z0-9_-", 1, 512)
	// certPattern is unbounded: the validator checks MaxCertificateChars
	// first.
	certPattern = newCharset("A-Za-z0-9_-", 1, -1)
	wordPattern = newCharset("a-z_", 1, 64)
)

// charset is a string's allowed bytes and its length bounds (max < 0: none).
type charset struct {
	ok       [256]bool
	min, max int
}

// newCharset takes the bytes as in a regexp's class: single bytes and a-b
// ranges.
func newCharset(class string, min, max int) *charset {
	c := &charset{min: min, max: max}
	for i := 0; i < len(class); i++ {
		if i+2 < len(class) && class[i+1] == '-' {
			for b := int(class[i]); b <= int(class[i+2]); b++ {
				c.ok[b] = true
			}
			i += 2
			continue
		}
		c.ok[class[i]] = true
	}
	return c
}

// MatchString reports whether s has only the set's bytes, within its bounds.
func (c *charset) MatchString(s string) bool {
	if len(s) < c.min || (c.max >= 0 && len(s) > c.max) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !c.ok[s[i]] {
			return false
		}
	}
	return true
}

// ValidID reports whether s has the shape of a device, parent, call or pair ID:
// 16 random bytes in lower-case base32 without padding.
func ValidID(s string) bool { return idPattern.MatchString(s) }
