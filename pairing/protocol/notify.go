package protocol

import (
	"crypto/ecdh"
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// How a parent whose page is closed still hears the child (docs/protocol.md,
// "Notifications"): the page hands the server a Web Push subscription
// (RFC 8030, 8291, 8292) and, where the programme sends text messages, a
// phone number the parent agreed to give. All of them go over the parent's
// authenticated socket; the server answers each with notify_status.
const (
	TypePushSubscribe   = "push_subscribe"   // parent → server: keep this browser's push subscription
	TypePushUnsubscribe = "push_unsubscribe" // parent → server: forget it
	TypePhoneSet        = "phone_set"        // parent → server: text / call this number (with consent)
	TypePhoneClear      = "phone_clear"      // parent → server: forget the number
	// TypeNotifyStatus without fields is a parent's request; the server's
	// answer says what will reach the parent.
	TypeNotifyStatus = "notify_status"
)

// Limits of the notification fields.
const (
	// MaxEndpointBytes bounds a push subscription's endpoint URL. Real ones
	// (FCM, Mozilla's autopush, Apple, Microsoft) are 150–500 bytes.
	MaxEndpointBytes = 1024
	// PushKeyBytes is an uncompressed P-256 point: the subscription's
	// p256dh and the server's VAPID key (RFC 8291 section 3.1, RFC 8292).
	PushKeyBytes = 65
	// PushAuthBytes is the subscription's authentication secret (RFC 8291
	// section 3.2).
	PushAuthBytes = 16
)

var (
	// phonePattern is an E.164 number: "+", a country code that does not
	// start with 0, at most 15 digits in all, at least 7.
	phonePattern = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	// phoneHintPattern is a number as the server shows it back: "+", stars,
	// and the last four digits (MaskPhone).
	phoneHintPattern = regexp.MustCompile(`^\+\*{3,11}[0-9]{4}$`)
)

// ValidPhone reports whether s is a phone number in E.164 form
// (+8613812345678).
func ValidPhone(s string) bool { return phonePattern.MatchString(s) }

// MaskPhone is how a number appears anywhere but the notifier's webhook:
// in notify_status, and in the server's logs. Only its last four digits
// are left (+*********5678), which tells a parent which number it is and a
// reader of the log nothing.
func MaskPhone(phone string) string {
	if !ValidPhone(phone) {
		return "+***0000"
	}
	digits := phone[1:]
	return "+" + strings.Repeat("*", len(digits)-4) + digits[len(digits)-4:]
}

// validateNotify checks the fields of the notification messages; it is part
// of Validate.
func (m *Message) validateNotify(bad func(field, why string) error) error {
	if m.Endpoint != "" {
		if err := CheckEndpoint(m.Endpoint); err != nil {
			return fmt.Errorf("protocol: %s: %w", m.Type, err)
		}
	}
	for _, k := range []struct{ name, v string }{{"p256dh", m.P256DH}, {"vapid_key", m.VAPIDKey}} {
		if k.v != "" && !validPushKey(k.v) {
			return bad(k.name, fmt.Sprintf("is not base64url of a %d-byte uncompressed P-256 point", PushKeyBytes))
		}
	}
	if m.Auth != "" {
		if b, err := base64.RawURLEncoding.DecodeString(m.Auth); err != nil || len(b) != PushAuthBytes {
			return bad("auth", fmt.Sprintf("is not base64url of %d bytes", PushAuthBytes))
		}
	}
	if m.Phone != "" && !ValidPhone(m.Phone) {
		return bad("phone", "is not an E.164 number (+, country code, number; 7 to 15 digits)")
	}
	if m.PhoneHint != "" && !phoneHintPattern.MatchString(m.PhoneHint) {
		return bad("phone_hint", "is not a masked number (+, stars, four digits)")
	}
	if m.Type == TypePhoneSet && m.Consent != nil && !*m.Consent {
		return bad("consent", "must be true: a number is kept only with the parent's agreement")
	}
	return nil
}

// validPushKey reports whether s is base64url (no padding) of a point on
// P-256 in uncompressed form.
func validPushKey(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != PushKeyBytes {
		return false
	}
	_, err = ecdh.P256().NewPublicKey(b)
	return err == nil
}

// CheckEndpoint checks a push subscription's endpoint: an https URL of at
// most MaxEndpointBytes printable ASCII, with a host and without user
// information or a fragment. Which hosts the server will post to is its own
// policy (push.endpoint_hosts), not the protocol's.
func CheckEndpoint(endpoint string) error {
	if len(endpoint) > MaxEndpointBytes {
		return fmt.Errorf("endpoint of %d bytes exceeds %d: %w", len(endpoint), MaxEndpointBytes, ErrTooLarge)
	}
	for i := 0; i < len(endpoint); i++ {
		if c := endpoint[i]; c <= 0x20 || c >= 0x7f {
			return fmt.Errorf("endpoint has a byte 0x%02x that is not printable ASCII: %w", c, ErrInvalid)
		}
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("endpoint is not an https URL: %w", ErrInvalid)
	}
	if u.User != nil || u.Fragment != "" || strings.Contains(endpoint, "#") {
		return fmt.Errorf("endpoint carries user information or a fragment: %w", ErrInvalid)
	}
	return nil
}
