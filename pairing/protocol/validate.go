package protocol

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// fingerprintPattern is a DTLS fingerprint's canonical form.
var fingerprintPattern = regexp.MustCompile(`^sha-256 [0-9A-F]{2}(:[0-9A-F]{2}){31}$`)

// ValidFingerprint reports whether fp is a DTLS fingerprint in canonical
// form: "sha-256 " and 32 upper-case hex bytes separated by colons.
func ValidFingerprint(fp string) bool { return fingerprintPattern.MatchString(fp) }

// rule says which fields a message type requires and which it may carry.
type rule struct {
	required []string
	optional []string
}

// rules: each type's fields. Two are optional for a prepared call (docs/
// protocol.md, "Preparing a call"): a prepare of the callee's ring carries
// the nonce its accept will, the caller's prepare of its own call none (the
// callee chooses it); and the callee's first offer to such a prepare
// carries that nonce.
var rules = map[string]rule{
	TypeChallenge:    {required: []string{"nonce"}, optional: []string{"server_time"}},
	TypeHello:        {required: []string{"role"}, optional: []string{"device_id", "public_key", "signature", "certificate", "parent_id", "token", "version"}},
	TypeWelcome:      {required: []string{"role"}, optional: []string{"device_id", "parent_id", "pair_id", "paired", "peer_online", "reason", "health", "faults", "budget", "server_time"}},
	TypeError:        {required: []string{"code"}, optional: []string{"message", "ref_type", "call_id", "pair_id"}},
	TypePresence:     {required: []string{"peer_online"}, optional: []string{"reason", "health", "faults", "budget"}},
	TypeRing:         {required: []string{"call_id", "nonce", "signed_at", "signature"}, optional: []string{"ice_servers", "ice_transport_policy"}},
	TypeRinging:      {required: []string{"call_id"}, optional: []string{"ice_servers", "ice_transport_policy"}},
	TypeAccept:       {required: []string{"call_id", "nonce", "signed_at", "signature"}},
	TypePrepare:      {required: []string{"call_id", "signed_at", "signature"}, optional: []string{"nonce"}},
	TypeHangup:       {required: []string{"call_id", "reason"}},
	TypeOffer:        {required: []string{"call_id", "sdp", "signed_at", "signature"}, optional: []string{"restart", "nonce"}},
	TypeAnswer:       {required: []string{"call_id", "sdp", "signed_at", "signature"}, optional: []string{"restart"}},
	TypeCandidate:    {required: []string{"call_id", "candidate"}},
	TypeCallLog:      {optional: []string{"calls"}},
	TypePairRequest:  {required: []string{"device_id", "nonce", "ephemeral_key", "proof"}, optional: []string{"pair_id", "source"}},
	TypePairAccept:   {required: []string{"pair_id", "ephemeral_key", "public_key", "fingerprint", "signature", "proof"}},
	TypePairConfirm:  {required: []string{"pair_id", "public_key", "signature", "proof"}, optional: []string{"token"}},
	TypePairComplete: {required: []string{"pair_id"}},
	TypePairReject:   {required: []string{"pair_id", "reason"}},
	TypePaired:       {required: []string{"device_id", "parent_id"}, optional: []string{"pair_id", "token"}},
	TypeUnpair:       {optional: []string{"reason"}},
	TypeUnpaired:     {required: []string{"device_id"}},
	TypeResume:       {required: []string{"call_id"}},
	TypeResumed:      {required: []string{"call_id", "peer_online"}, optional: []string{"ice_servers", "ice_transport_policy"}},

	TypePushSubscribe:   {required: []string{"endpoint", "p256dh", "auth"}},
	TypePushUnsubscribe: {required: []string{"endpoint"}},
	TypePhoneSet:        {required: []string{"phone", "consent"}},
	TypePhoneClear:      {},
	TypeNotifyStatus:    {optional: []string{"vapid_key", "subscribed", "phone_hint", "sms", "voice"}},

	TypeStatus: {required: []string{"health"}, optional: []string{"faults", "budget"}},
	TypePing:   {},
	TypePong:   {},
}

// setFields lists the JSON names of the fields that are set.
func (m *Message) setFields() []string {
	var f []string
	add := func(name string, set bool) {
		if set {
			f = append(f, name)
		}
	}
	add("nonce", m.Nonce != "")
	add("server_time", !m.ServerTime.IsZero())
	add("role", m.Role != "")
	add("device_id", m.DeviceID != "")
	add("public_key", m.PublicKey != "")
	add("signature", m.Signature != "")
	add("certificate", m.Certificate != "")
	add("parent_id", m.ParentID != "")
	add("token", m.Token != "")
	add("version", m.Version != "")
	add("paired", m.Paired != nil)
	add("peer_online", m.PeerOnline != nil)
	add("code", m.Code != "")
	add("message", m.Text != "")
	add("ref_type", m.RefType != "")
	add("call_id", m.CallID != "")
	add("reason", m.Reason != "")
	add("sdp", m.SDP != "")
	add("candidate", m.Candidate != nil)
	add("ice_servers", m.ICEServers != nil)
	add("ice_transport_policy", m.ICETransportPolicy != "")
	add("calls", m.Calls != nil)
	add("pair_id", m.PairID != "")
	add("proof", m.Proof != "")
	add("signed_at", m.SignedAt != "")
	add("ephemeral_key", m.EphemeralKey != "")
	add("fingerprint", m.Fingerprint != "")
	add("source", m.Source != "")
	add("restart", m.Restart != 0)
	add("endpoint", m.Endpoint != "")
	add("p256dh", m.P256DH != "")
	add("auth", m.Auth != "")
	add("phone", m.Phone != "")
	add("consent", m.Consent != nil)
	add("vapid_key", m.VAPIDKey != "")
	add("subscribed", m.Subscribed != nil)
	add("phone_hint", m.PhoneHint != "")
	add("sms", m.SMS != nil)
	add("voice", m.Voice != nil)
	add("health", m.Health != "")
	add("faults", m.Faults != nil)
	add("budget", m.Budget != nil)
	return f
}

// Validate checks that the message's type is known, that exactly the fields
// its type allows are set, and that every field has the right shape and size.
func (m *Message) Validate() error {
	r, ok := rules[m.Type]
	if !ok {
		return fmt.Errorf("protocol: unknown message type %q: %w", truncate(m.Type), ErrInvalid)
	}
	set := m.setFields()
	for _, f := range set {
		if !slices.Contains(r.required, f) && !slices.Contains(r.optional, f) {
			return fmt.Errorf("protocol: %s: field %q not allowed: %w", m.Type, f, ErrInvalid)
		}
	}
	for _, f := range r.required {
		if !slices.Contains(set, f) {
			return fmt.Errorf("protocol: %s: field %q missing: %w", m.Type, f, ErrInvalid)
		}
	}
	if m.Type == TypeOffer && m.Nonce != "" && m.Restart != 0 {
		return fmt.Errorf("protocol: offer: a nonce comes only with a call's first offer: %w", ErrInvalid)
	}
	return m.validateValues()
}

func (m *Message) validateValues() error {
	bad := func(field, why string) error {
		return fmt.Errorf("protocol: %s: %s %s: %w", m.Type, field, why, ErrInvalid)
	}
	for _, id := range []struct{ name, v string }{
		{"device_id", m.DeviceID}, {"parent_id", m.ParentID}, {"call_id", m.CallID}, {"pair_id", m.PairID},
	} {
		if id.v != "" && !ValidID(id.v) {
			return bad(id.name, "is not a 26-character base32 ID")
		}
	}
	for _, b := range []struct{ name, v string }{
		{"nonce", m.Nonce}, {"public_key", m.PublicKey}, {"signature", m.Signature},
		{"token", m.Token}, {"proof", m.Proof}, {"ephemeral_key", m.EphemeralKey}, {"source", m.Source},
	} {
		if b.v != "" && !b64urlPattern.MatchString(b.v) {
			return bad(b.name, "is not base64url of at most 512 characters")
		}
	}
	if len(m.Certificate) > MaxCertificateChars {
		return fmt.Errorf("protocol: %s: certificate of %d characters exceeds %d: %w", m.Type, len(m.Certificate), MaxCertificateChars, ErrTooLarge)
	}
	if m.Certificate != "" && !certPattern.MatchString(m.Certificate) {
		return bad("certificate", "is not base64url")
	}
	for _, w := range []struct{ name, v string }{
		{"role", m.Role}, {"reason", m.Reason}, {"code", m.Code}, {"ref_type", m.RefType},
	} {
		if w.v != "" && !wordPattern.MatchString(w.v) {
			return bad(w.name, "is not a lower-case word")
		}
	}
	if m.Role != "" && m.Role != RoleTerminal && m.Role != RoleParent && m.Role != RolePairing {
		return bad("role", fmt.Sprintf("%q is unknown", m.Role))
	}
	if len(m.Version) > 64 {
		return bad("version", "is longer than 64 bytes")
	}
	if m.SignedAt != "" {
		if _, err := time.Parse(time.RFC3339, m.SignedAt); err != nil || len(m.SignedAt) > 32 {
			return bad("signed_at", "is not an RFC 3339 time")
		}
	}
	if m.Fingerprint != "" && !ValidFingerprint(m.Fingerprint) {
		return bad("fingerprint", `is not "sha-256 " and 32 upper-case hex bytes`)
	}
	if len(m.Text) > 512 {
		return bad("message", "is longer than 512 bytes")
	}
	if m.SDP != "" {
		if err := CheckSDP(m.SDP); err != nil {
			return fmt.Errorf("protocol: %s: %w", m.Type, err)
		}
	}
	if m.Candidate != nil {
		if err := CheckCandidate(*m.Candidate); err != nil {
			return fmt.Errorf("protocol: %s: %w", m.Type, err)
		}
	}
	switch m.ICETransportPolicy {
	case "", "all", "relay":
	default:
		return bad("ice_transport_policy", "must be all or relay")
	}
	if len(m.ICEServers) > MaxICEServers {
		return bad("ice_servers", fmt.Sprintf("has more than %d entries", MaxICEServers))
	}
	for _, s := range m.ICEServers {
		if len(s.URLs) == 0 || len(s.URLs) > 4 || len(s.Username) > 128 || len(s.Credential) > 128 {
			return bad("ice_servers", "entry has a bad shape")
		}
		for _, u := range s.URLs {
			if len(u) > 256 || !(strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") || strings.HasPrefix(u, "stun:")) {
				return bad("ice_servers", "URL is not stun:, turn: or turns:")
			}
		}
	}
	if m.Restart < 0 || m.Restart > MaxRestarts {
		return bad("restart", fmt.Sprintf("is not between 1 and %d", MaxRestarts))
	}
	if len(m.Calls) > 200 {
		return bad("calls", "has more than 200 entries")
	}
	if err := m.validateStatus(bad); err != nil {
		return err
	}
	if err := m.validateBudget(bad); err != nil {
		return err
	}
	return m.validateNotify(bad)
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// CheckSDP checks an offer's or answer's sdp as the server relays it: at
// most MaxSDPBytes, starting with "v=0", and UTF-8. The server does not parse SDP
// (the peers do, and only they know what they offered); these are the
// checks that keep a relay cheap.
func CheckSDP(sdp string) error {
	if len(sdp) > MaxSDPBytes {
		return fmt.Errorf("sdp of %d bytes exceeds %d: %w", len(sdp), MaxSDPBytes, ErrTooLarge)
	}
	if !strings.HasPrefix(sdp, "v=0") {
		return fmt.Errorf("sdp does not start with v=0: %w", ErrInvalid)
	}
	if !utf8.ValidString(sdp) {
		return fmt.Errorf("sdp is not UTF-8: %w", ErrInvalid)
	}
	return nil
}

// CheckCandidate checks one trickled ICE candidate: the line at most
// MaxCandidateBytes and starting with "candidate:" (or empty: the browser's
// end-of-candidates marker), sdpMid at most 32 bytes, usernameFragment at
// most 256, all of them UTF-8.
func CheckCandidate(c Candidate) error {
	if len(c.Candidate) > MaxCandidateBytes {
		return fmt.Errorf("candidate of %d bytes exceeds %d: %w", len(c.Candidate), MaxCandidateBytes, ErrTooLarge)
	}
	if c.Candidate != "" && !strings.HasPrefix(c.Candidate, "candidate:") {
		return fmt.Errorf("candidate does not start with candidate:: %w", ErrInvalid)
	}
	// Decode never yields invalid UTF-8 (JSON rejects it); a Go caller's
	// candidate must not either, or its encoded form would grow (each bad
	// byte becomes a 3-byte U+FFFD) past the limits checked here.
	if !utf8.ValidString(c.Candidate) || (c.SDPMid != nil && !utf8.ValidString(*c.SDPMid)) ||
		(c.UsernameFragment != nil && !utf8.ValidString(*c.UsernameFragment)) {
		return fmt.Errorf("candidate is not UTF-8: %w", ErrInvalid)
	}
	if c.SDPMid != nil && len(*c.SDPMid) > 32 {
		return fmt.Errorf("candidate.sdpMid is longer than 32 bytes: %w", ErrInvalid)
	}
	if c.UsernameFragment != nil && len(*c.UsernameFragment) > 256 {
		return fmt.Errorf("candidate.usernameFragment is longer than 256 bytes: %w", ErrInvalid)
	}
	return nil
}
