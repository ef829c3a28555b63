package pairing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
)

const (
	devID  = "abcdefghijklmnopqrstuvwxyz"
	devID2 = "234567abcdefghijklmnopqrst"
	pairID = "234567abcdefghijklmnopqrst"
)

// Known-answer vector, the same in docs/protocol.md's terms for any client
// (the parent's page implements it with WebCrypto). The expected proofs were
// computed outside Go:
//
//	printf 'tuanju/v1 pair request\n%s\n%s' $D $N |
//	  openssl dgst -sha256 -mac HMAC -macopt hexkey:000102030405060708090a0b0c0d0e0f -binary |
//	  base64 | tr '+/' '-_' | tr -d =
var kat = struct {
	secret                 Secret
	secretText             string
	deviceID, nonce, pair  string
	requestProof, accProof string
}{
	secret:       Secret{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	secretText:   "AAECAwQFBgcICQoLDA0ODw",
	deviceID:     devID,
	nonce:        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", // bytes 0..31
	pair:         pairID,
	requestProof: "Lp-A-wGhkV8U3-GjA3KK5R5yRHmgJ1pn7T5OhgHGXzQ",
	accProof:     "B2osqL5EnwozPiZaho6ZWQ26ixZ4axjTfVk3PP8aMZo",
}

// refMAC is HMAC-SHA256 over the exact documented byte string, written
// independently of the package's helper.
func refMAC(key []byte, msg string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func TestKnownAnswer(t *testing.T) {
	if got := kat.secret.String(); got != kat.secretText {
		t.Fatalf("secret text = %s, want %s", got, kat.secretText)
	}
	wantReq := refMAC(kat.secret[:], "tuanju/v1 pair request\n"+kat.deviceID+"\n"+kat.nonce)
	if wantReq != kat.requestProof {
		t.Fatalf("crypto/hmac over the documented bytes = %s, the pinned vector says %s", wantReq, kat.requestProof)
	}
	if got := RequestProof(kat.secret, kat.deviceID, kat.nonce); got != kat.requestProof {
		t.Fatalf("RequestProof = %s, want %s (docs/protocol.md bytes)", got, kat.requestProof)
	}

	wantAcc := refMAC(kat.secret[:], "tuanju/v1 pair accept\n"+kat.deviceID+"\n"+kat.nonce+"\n"+kat.pair)
	if wantAcc != kat.accProof {
		t.Fatalf("crypto/hmac over the documented bytes = %s, the pinned vector says %s", wantAcc, kat.accProof)
	}
	if got := AcceptProof(kat.secret, kat.deviceID, kat.nonce, kat.pair); got != kat.accProof {
		t.Fatalf("AcceptProof = %s, want %s (docs/protocol.md bytes)", got, kat.accProof)
	}
}

// TestProofsWithRandomSecrets repeats the independent computation for fresh
// secrets, so a fixed secret cannot hide a bug.
func TestProofsWithRandomSecrets(t *testing.T) {
	for range 20 {
		s := NewSecret()
		if got, want := RequestProof(s, devID, "bm9uY2U"), refMAC(s[:], "tuanju/v1 pair request\n"+devID+"\nbm9uY2U"); got != want {
			t.Fatalf("RequestProof = %s, want %s", got, want)
		}
		if got, want := AcceptProof(s, devID, "bm9uY2U", pairID), refMAC(s[:], "tuanju/v1 pair accept\n"+devID+"\nbm9uY2U\n"+pairID); got != want {
			t.Fatalf("AcceptProof = %s, want %s", got, want)
		}
	}
}

func TestProofs(t *testing.T) {
	s, s2 := NewSecret(), NewSecret()
	const nonce, nonce2 = "bm9uY2Ux", "bm9uY2Uy"

	req := RequestProof(s, devID, nonce)
	acc := AcceptProof(s, devID, nonce, pairID)
	if req != RequestProof(s, devID, nonce) || acc != AcceptProof(s, devID, nonce, pairID) {
		t.Fatal("proofs are not deterministic")
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(req); err != nil || len(b) != sha256.Size {
		t.Fatalf("RequestProof %q is not 32 bytes of base64url: %v", req, err)
	}
	if req == acc {
		t.Fatal("request and accept proofs are equal: no domain separation")
	}
	// An accept proof must not be computable from a request (or the other
	// way round) by choosing the inputs: pairID "" gives the closest string.
	if AcceptProof(s, devID, nonce, "") == req {
		t.Fatal("accept proof with an empty pair ID equals the request proof")
	}

	for name, other := range map[string]string{
		"request, other nonce":  RequestProof(s, devID, nonce2),
		"request, other device": RequestProof(s, devID2, nonce),
		"request, other secret": RequestProof(s2, devID, nonce),
	} {
		if other == req {
			t.Errorf("%s: proof unchanged", name)
		}
	}
	for name, other := range map[string]string{
		"accept, other nonce":   AcceptProof(s, devID, nonce2, pairID),
		"accept, other device":  AcceptProof(s, devID2, nonce, pairID),
		"accept, other pair ID": AcceptProof(s, devID, nonce, devID),
		"accept, other secret":  AcceptProof(s2, devID, nonce, pairID),
	} {
		if other == acc {
			t.Errorf("%s: proof unchanged", name)
		}
	}
}

func TestVerify(t *testing.T) {
	s := NewSecret()
	p := RequestProof(s, devID, "bm9uY2U")
	tests := []struct {
		name string
		got  string
		want bool
	}{
		{"same", p, true},
		{"recomputed", RequestProof(s, devID, "bm9uY2U"), true},
		{"other proof", RequestProof(NewSecret(), devID, "bm9uY2U"), false},
		{"last char changed", p[:len(p)-1] + string(p[len(p)-1]^1), false},
		{"truncated", p[:len(p)-1], false},
		{"extended", p + "A", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		if got := Verify(p, tc.got); got != tc.want {
			t.Errorf("%s: Verify = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestURLRoundTrip(t *testing.T) {
	for _, base := range []string{"https://tuanju.example.org", "https://tuanju.example.org/", "http://127.0.0.1:8443", "https://example.org/prefix/"} {
		s := NewSecret()
		u := URL(base, devID, s)
		if want := strings.TrimRight(base, "/") + "/pair#"; !strings.HasPrefix(u, want) {
			t.Fatalf("URL(%q) = %s, want it to start with %s", base, u, want)
		}
		d, got, err := ParseURL(u)
		if err != nil {
			t.Fatalf("ParseURL(%s): %v", u, err)
		}
		if d != devID || got != s {
			t.Fatalf("ParseURL(%s) = %s, %x; want %s, %x", u, d, got[:], devID, s[:])
		}
	}
	if got, want := URL("https://x.example", kat.deviceID, kat.secret), "https://x.example/pair#d="+kat.deviceID+"&s="+kat.secretText; got != want {
		t.Fatalf("URL = %s, want the documented form %s", got, want)
	}
}

// TestSecretOnlyInFragment: browsers never send the fragment, so the server
// that serves /pair must never see the secret.
func TestSecretOnlyInFragment(t *testing.T) {
	s := NewSecret()
	raw := URL("https://tuanju.example.org", devID, s)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u.Fragment, s.String()) {
		t.Fatalf("fragment %q does not hold the secret", u.Fragment)
	}
	for part, v := range map[string]string{"path": u.Path, "raw query": u.RawQuery, "host": u.Host, "user": u.User.String()} {
		if strings.Contains(v, s.String()) {
			t.Errorf("the secret is in the URL's %s %q", part, v)
		}
	}
	// What an HTTP client puts on the wire: the request URI has no fragment.
	if uri := u.RequestURI(); strings.Contains(uri, s.String()) || uri != "/pair" {
		t.Errorf("request URI = %q, want /pair with no secret", uri)
	}
}

func TestParseURLRejects(t *testing.T) {
	good := NewSecret().String()
	tests := []struct {
		name string
		url  string
		want error
	}{
		{"no fragment", "https://x.example/pair", ErrBadURL},
		{"empty fragment", "https://x.example/pair#", ErrBadURL},
		{"no device", "https://x.example/pair#s=" + good, ErrBadURL},
		{"empty device", "https://x.example/pair#d=&s=" + good, ErrBadURL},
		{"no secret", "https://x.example/pair#d=" + devID, ErrBadURL},
		{"empty secret", "https://x.example/pair#d=" + devID + "&s=", ErrBadURL},
		{"secret in the query", "https://x.example/pair?s=" + good + "#d=" + devID, ErrBadURL},
		{"secret too short", "https://x.example/pair#d=" + devID + "&s=" + base64.RawURLEncoding.EncodeToString(make([]byte, 15)), ErrBadSecret},
		{"secret too long", "https://x.example/pair#d=" + devID + "&s=" + base64.RawURLEncoding.EncodeToString(make([]byte, 17)), ErrBadSecret},
		{"secret padded", "https://x.example/pair#d=" + devID + "&s=" + base64.URLEncoding.EncodeToString(make([]byte, 16)), ErrBadSecret},
		{"secret std base64", "https://x.example/pair#d=" + devID + "&s=" + "+/+/+/+/+/+/+/+/+/+/+w", ErrBadSecret},
		{"secret not base64", "https://x.example/pair#d=" + devID + "&s=" + "!!!!!!!!!!!!!!!!!!!!!!", ErrBadSecret},
		{"bad escape in fragment", "https://x.example/pair#d=" + devID + "&s=%zz", ErrBadURL},
		{"not a URL", "https://x.example/%zz#d=" + devID + "&s=" + good, ErrBadURL},
		{"control character", "https://x.example/\x7f/pair#d=" + devID + "&s=" + good, ErrBadURL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, s, err := ParseURL(tc.url)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseURL(%q) = %q, %x, %v; want %v", tc.url, d, s[:], err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "pairing: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
			if d != "" || s != (Secret{}) {
				t.Errorf("ParseURL returned %q, %x along with its error", d, s[:])
			}
		})
	}
}

func TestParseSecret(t *testing.T) {
	s := NewSecret()
	got, err := ParseSecret(s.String())
	if err != nil || got != s {
		t.Fatalf("ParseSecret(String()) = %x, %v; want %x", got[:], err, s[:])
	}
	if len(s.String()) != 22 {
		t.Fatalf("String() = %q, want 22 characters", s.String())
	}
	if s == NewSecret() {
		t.Fatal("two NewSecret calls gave the same secret")
	}
	for _, bad := range []string{"", "AAAA", s.String() + "AA", s.String()[:21], s.String() + "=="} {
		if _, err := ParseSecret(bad); !errors.Is(err, ErrBadSecret) {
			t.Errorf("ParseSecret(%q) = %v, want ErrBadSecret", bad, err)
		}
	}
}

// FuzzParseURL: ParseURL never panics, fails only with its sentinels, and
// whatever it accepts makes the same pairing URL again.
func FuzzParseURL(f *testing.F) {
	f.Add(URL("https://tuanju.example.org", devID, kat.secret))
	f.Add(URL("http://127.0.0.1:8443/", devID2, NewSecret()))
	f.Add("https://x.example/pair#d=" + devID + "&s=")
	f.Add("https://x.example/pair#s=" + kat.secretText)
	f.Add("#d=a&s=" + kat.secretText + "&d=b")
	f.Add("%zz")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		d, s, err := ParseURL(raw)
		if err != nil {
			if !errors.Is(err, ErrBadURL) && !errors.Is(err, ErrBadSecret) {
				t.Fatalf("ParseURL(%q): error without a sentinel: %v", raw, err)
			}
			if d != "" || s != (Secret{}) {
				t.Fatalf("ParseURL(%q) returned %q, %x along with its error", raw, d, s[:])
			}
			return
		}
		if d == "" {
			t.Fatalf("ParseURL(%q) accepted an empty device ID", raw)
		}
		d2, s2, err := ParseURL(URL("https://x.example", d, s))
		if err != nil || d2 != d || s2 != s {
			t.Fatalf("ParseURL(%q) = %q, %x; its URL parses as %q, %x, %v", raw, d, s[:], d2, s2[:], err)
		}
	})
}
