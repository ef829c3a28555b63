package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/signing"
)

func sample() bundle.Unit {
	return bundle.Unit{
		Unit: "B1-00001", DeviceID: "abcdefghijklmnopqrstuvwxyz", Batch: "B1", Site: "新河小学", Region: "河北",
		IssuedAt: time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC), Identity: "-----BEGIN PRIVATE KEY-----\n…",
		PairingSecret: "AAAAAAAAAAAAAAAAAAAAAA",
		Settings: bundle.Settings{ServerURL: "wss://t.example.org/ws", PublicURL: "https://t.example.org",
			TimeZone: "Asia/Shanghai", Language: "zh-CN", ReunionWindows: []string{"Sat 19:00-20:00"},
			WiFi: []bundle.WiFi{{SSID: "school", PSK: "secret-passphrase"}}, APN: &bundle.APN{Name: "cmnet"}, DataBudgetMB: 500},
	}
}

func key(t *testing.T) *signing.Key {
	t.Helper()
	k, err := signing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRoundTrip: a bundle decodes to what was encoded, and encoding is
// deterministic (a re-run batch rewrites the same bytes).
func TestRoundTrip(t *testing.T) {
	k := key(t)
	b, err := bundle.Encode(sample(), k)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := bundle.Encode(sample(), k)
	if string(b) != string(b2) {
		t.Fatal("two encodings of the same unit differ")
	}
	u, err := bundle.Decode(b, []ed25519.PublicKey{k.Public()})
	if err != nil {
		t.Fatal(err)
	}
	if u.Site != "新河小学" || u.Settings.APN.Name != "cmnet" || u.Settings.ReunionWindows[0] != "Sat 19:00-20:00" || !u.IssuedAt.Equal(sample().IssuedAt) {
		t.Fatalf("decoded %+v", u)
	}
}

// TestRefusals: every way a bundle can be wrong is refused with its own
// error, and nothing of the body is returned.
func TestRefusals(t *testing.T) {
	k, other := key(t), key(t)
	good, err := bundle.Encode(sample(), k)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := bundle.Encode(sample(), other)
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 1
		return b
	}
	unknownField := func() []byte {
		// A body with a field this terminal does not know, properly signed:
		// strict decoding refuses it.
		b := append([]byte(nil), good[:14]...)
		body := append([]byte(`{"extra":1,`), good[15:len(good)-72]...)
		b[10], b[11], b[12], b[13] = byte(len(body)>>24), byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
		b = append(b[:14], body...)
		id := k.ID()
		b = append(b, id[:]...)
		return append(b, k.Sign(b)...)
	}
	version := flip(9)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, bundle.ErrTruncated},
		{"half the header", good[:5], bundle.ErrTruncated},
		{"not a bundle", []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"), bundle.ErrMalformed},
		{"truncated body", good[:len(good)/2], bundle.ErrTruncated},
		{"truncated signature", good[:len(good)-1], bundle.ErrTruncated},
		{"trailing bytes", append(append([]byte(nil), good...), '\n'), bundle.ErrMalformed},
		{"other version", version, bundle.ErrVersion},
		{"body byte changed", flip(40), bundle.ErrTampered},
		{"signature changed", flip(len(good) - 3), bundle.ErrTampered},
		{"key ID changed", flip(len(good) - 70), bundle.ErrForeign},
		{"another programme's key", foreign, bundle.ErrForeign},
		{"unknown field, signed", unknownField(), bundle.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := bundle.Decode(tc.in, []ed25519.PublicKey{k.Public()})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if u.Unit != "" || u.Identity != "" {
				t.Fatalf("a refused bundle returned its body: %+v", u)
			}
		})
	}
}

// TestRolloverKeys: a terminal holding the old and the new signing key
// takes bundles from both.
func TestRolloverKeys(t *testing.T) {
	old, cur := key(t), key(t)
	keys, err := signing.ParsePublic(append(signing.PublicPEM(old.Public()), signing.PublicPEM(cur.Public())...))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*signing.Key{old, cur} {
		b, _ := bundle.Encode(sample(), k)
		if _, err := bundle.Decode(b, keys); err != nil {
			t.Fatalf("key %s: %v", k.ID(), err)
		}
	}
}

// FuzzDecode: no input panics the decoder, and only the one signed bundle
// is accepted (Ed25519 signatures are not malleable).
func FuzzDecode(f *testing.F) {
	k, _ := signing.NewKey()
	good, _ := bundle.Encode(sample(), k)
	f.Add(good)
	f.Add(good[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := bundle.Decode(b, []ed25519.PublicKey{k.Public()}); err == nil && string(b) != string(good) {
			t.Fatalf("accepted %d bytes that are not the signed bundle", len(b))
		}
		bundle.DecodeStored(b)
	})
}

// TestReadFrom: a bundle at the start of a raw provisioning partition is
// read back whole, whatever follows it; an erased partition, a damaged
// header and a bundle cut short are each told apart.
func TestReadFrom(t *testing.T) {
	k := key(t)
	good, err := bundle.Encode(sample(), k)
	if err != nil {
		t.Fatal(err)
	}
	part := func(head []byte, fill byte) []byte {
		p := bytes.Repeat([]byte{fill}, 1<<20)
		copy(p, head)
		return p
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"after zeros", part(good, 0), nil},
		{"after erased flash", part(good, 0xFF), nil},
		{"after old data", part(good, 'x'), nil},
		{"exactly the bundle", good, nil},
		{"zeroed partition", part(nil, 0), bundle.ErrEmpty},
		{"erased partition", part(nil, 0xFF), bundle.ErrEmpty},
		{"garbage", part([]byte("MZ\x90\x00"), 0), bundle.ErrMalformed},
		{"other version", part(append(append([]byte(nil), good[:9]...), good[9]^1), 0), bundle.ErrVersion},
		{"cut short", good[:len(good)-1], bundle.ErrTruncated},
		{"header cut short", good[:5], bundle.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := bundle.ReadFrom(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			if !bytes.Equal(b, good) {
				t.Fatalf("read %d bytes, want the %d-byte bundle", len(b), len(good))
			}
			if _, err := bundle.Decode(b, []ed25519.PublicKey{k.Public()}); err != nil {
				t.Fatalf("the bundle read back does not verify: %v", err)
			}
		})
	}
}

// TestWiFiCheck: what a unit can join passes, and everything else is
// refused with ErrBadWiFi, at Encode too, so a batch never ships it.
func TestWiFiCheck(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		name string
		w    bundle.WiFi
		ok   bool
	}{
		{"passphrase", bundle.WiFi{SSID: "school", PSK: "password1"}, true},
		{"8 characters", bundle.WiFi{SSID: "s", PSK: "12345678"}, true},
		{"63 characters", bundle.WiFi{SSID: "s", PSK: strings.Repeat("x", 63)}, true},
		{"quotes and braces", bundle.WiFi{SSID: "a\"}\nnetwork={", PSK: "p\"}{ ~ass"}, true},
		{"64 hex digits", bundle.WiFi{SSID: "s", PSK: hex64}, true},
		{"64 hex digits, upper case", bundle.WiFi{SSID: "s", PSK: strings.ToUpper(hex64)}, true},
		{"open", bundle.WiFi{SSID: "guest"}, true},
		{"32-byte ssid", bundle.WiFi{SSID: strings.Repeat("学", 10) + "ab", PSK: ""}, true},
		{"empty ssid", bundle.WiFi{PSK: "password1"}, false},
		{"33-byte ssid", bundle.WiFi{SSID: strings.Repeat("s", 33)}, false},
		{"7 characters", bundle.WiFi{SSID: "s", PSK: "1234567"}, false},
		{"64 characters, not hex", bundle.WiFi{SSID: "s", PSK: strings.Repeat("x", 64)}, false},
		{"65 hex digits", bundle.WiFi{SSID: "s", PSK: hex64 + "0"}, false},
		{"newline in psk", bundle.WiFi{SSID: "s", PSK: "password\n1"}, false},
		{"non-ASCII psk", bundle.WiFi{SSID: "s", PSK: "密码密码密码"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.w.Check()
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, bundle.ErrBadWiFi)) {
				t.Fatalf("Check() = %v, want ok %v", err, tc.ok)
			}
			u := sample()
			u.Settings.WiFi = []bundle.WiFi{{SSID: "school", PSK: "password1"}, tc.w}
			_, err = bundle.Encode(u, key(t))
			if tc.ok != (err == nil) || (err != nil && !(errors.Is(err, bundle.ErrBadWiFi) && strings.Contains(err.Error(), "wifi[1]"))) {
				t.Fatalf("Encode = %v, want ok %v (an error naming wifi[1])", err, tc.ok)
			}
		})
	}
}

// TestAPNCheck: operators' APNs pass; a name outside 3GPP TS 23.003's
// letters, digits, hyphens and dots, and a user or password with a quote,
// backslash, newline or non-ASCII byte (what could end pppd's quotes or add
// a line to its files or to the chat script) is refused with ErrBadAPN
// naming the field, at Encode too, so a batch never ships it.
func TestAPNCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    bundle.APN
		says string // "" is accepted
	}{
		{"China Mobile", bundle.APN{Name: "cmnet"}, ""},
		{"dotted, hyphen", bundle.APN{Name: "m2m.t-mobile.com"}, ""},
		{"upper case, digits", bundle.APN{Name: "3GNET"}, ""},
		{"credentials", bundle.APN{Name: "ctnet", User: "ctnet@mycdma.cn", Password: "vnet.mobi"}, ""},
		{"spaces and # in credentials", bundle.APN{Name: "a", User: "user name", Password: "p#ss word $x ^M"}, ""},
		{"user only", bundle.APN{Name: "a", User: "u"}, ""},
		{"100 characters", bundle.APN{Name: strings.Repeat("a", 49) + "." + strings.Repeat("a", 50)}, ""},
		{"empty", bundle.APN{}, "apn name"},
		{"101 characters", bundle.APN{Name: strings.Repeat("a.", 51)[:101]}, "apn name"},
		{"64-character label", bundle.APN{Name: strings.Repeat("a", 64)}, "apn name"},
		{"empty label", bundle.APN{Name: "cm..net"}, "apn name"},
		{"trailing dot", bundle.APN{Name: "cmnet."}, "apn name"},
		{"quote", bundle.APN{Name: `cmnet"`}, "apn name"},
		{"space", bundle.APN{Name: "cm net"}, "apn name"},
		{"newline and option", bundle.APN{Name: "x\nplugin evil.so"}, "apn name"},
		{"chat escape", bundle.APN{Name: `x\c`}, "apn name"},
		{"chat control character", bundle.APN{Name: "x^M"}, "apn name"},
		{"underscore", bundle.APN{Name: "cm_net"}, "apn name"},
		{"non-ASCII", bundle.APN{Name: "移动"}, "apn name"},
		{"user: double quote", bundle.APN{Name: "a", User: `u" plugin "evil.so`}, "user has a character"},
		{"user: newline", bundle.APN{Name: "a", User: "x\nplugin evil.so"}, "user has a character"},
		{"user: single quote", bundle.APN{Name: "a", User: "it's"}, "user has a character"},
		{"user: backslash", bundle.APN{Name: "a", User: `a\"`}, "user has a character"},
		{"user: non-ASCII", bundle.APN{Name: "a", User: "用户"}, "user has a character"},
		{"user: 65 characters", bundle.APN{Name: "a", User: strings.Repeat("u", 65)}, "user is 65 characters"},
		{"password: newline", bundle.APN{Name: "a", User: "u", Password: "p\nnoauth"}, "password has a character"},
		{"password: quote", bundle.APN{Name: "a", User: "u", Password: `p" * "`}, "password has a character"},
		{"password: NUL", bundle.APN{Name: "a", User: "u", Password: "p\x00"}, "password has a character"},
		{"password: 65 characters", bundle.APN{Name: "a", User: "u", Password: strings.Repeat("p", 65)}, "password is 65 characters"},
		{"password without user", bundle.APN{Name: "a", Password: "p"}, "password without a user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.a.Check()
			if (tc.says == "") != (err == nil) || (err != nil && (!errors.Is(err, bundle.ErrBadAPN) || !strings.Contains(err.Error(), tc.says))) {
				t.Fatalf("Check() = %v, want ok %v (an error saying %q)", err, tc.says == "", tc.says)
			}
			u := sample()
			a := tc.a
			u.Settings.APN = &a
			_, err = bundle.Encode(u, key(t))
			if (tc.says == "") != (err == nil) || (err != nil && !(errors.Is(err, bundle.ErrBadAPN) && strings.Contains(err.Error(), tc.says))) {
				t.Fatalf("Encode = %v, want ok %v", err, tc.says == "")
			}
		})
	}
}
