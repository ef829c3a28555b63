package pairing

import (
	"encoding/base64"
	"encoding/hex"
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

// Known-answer vectors for the parts of the handshake that are
// deterministic, computed outside Go (docs/protocol.md has the same table
// for other clients; the page implements it with WebCrypto):
//
//	printf 'tuanju/v2 pair request\n%s\n%s\n%s' $D $N $E |
//	  openssl dgst -sha256 -mac HMAC -macopt hexkey:000102030405060708090a0b0c0d0e0f -binary | base64url
//	openssl kdf -keylen 64 -kdfopt digest:SHA256 -kdfopt hexkey:2021…3f \
//	  -kdfopt hexsalt:0001…0f -kdfopt hexinfo:<"tuanju/v2 pair keys\ndGg"> HKDF
//	printf 'tuanju/v2 pair\n…' | openssl dgst -sha256 -binary | base64url
var kat = struct {
	secret                Secret
	secretText            string
	deviceID, nonce, pair string
	ephemeral             string
	requestProof          string
	z                     []byte
	th                    string
	keys                  string // k_t || k_p, hex
	transcriptOut         string
}{
	secret:       Secret{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	secretText:   "AAECAwQFBgcICQoLDA0ODw",
	deviceID:     devID,
	nonce:        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", // bytes 0..31
	pair:         pairID,
	ephemeral:    "BAECAwQ",
	requestProof: "xjrWX1tIOBQE_ln1c0RNb42E6gG7SbhNUBaGvjK32Go",
	z: []byte{0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
		0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f},
	th:            "dGg",
	keys:          "EBAD287523C06289F8A7F9AC5D631AD1F3963A9CD5F9511EB713C060CA2A75C6C2EC2D62CD8B938B540C2337780A2BCCC5B602C5A4BA8C49F29649F0FBF58BFC",
	transcriptOut: "Crx0Go1ehcvCu6-LkecJz48h_CY5kJjKZR5baMH8rhc",
}

func TestKnownAnswer(t *testing.T) {
	if got := kat.secret.String(); got != kat.secretText {
		t.Fatalf("secret text = %s, want %s", got, kat.secretText)
	}
	if got := requestProof(kat.secret, kat.deviceID, kat.nonce, kat.ephemeral); got != kat.requestProof {
		t.Fatalf("request proof = %s, want %s (docs/protocol.md bytes)", got, kat.requestProof)
	}
	kt, kp, err := keys(kat.secret, kat.z, kat.th)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ToUpper(hex.EncodeToString(append(kt, kp...))); got != kat.keys {
		t.Fatalf("HKDF keys = %s, want %s", got, kat.keys)
	}
	th := transcript(kat.deviceID, kat.pair, Request{Nonce: kat.nonce, EphemeralKey: "Ep"},
		Accept{EphemeralKey: "Et", PublicKey: "Dk", Fingerprint: "sha-256 AA"})
	if th != kat.transcriptOut {
		t.Fatalf("transcript hash = %s, want %s", th, kat.transcriptOut)
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
