package protocol

import (
	"bytes"
	"crypto/elliptic"
	"errors"
	"strings"
	"testing"
)

// TestHelloCertificateLimits: the certificate field alone may exceed 512
// characters, up to MaxCertificateChars, and only on a hello.
func TestHelloCertificateLimits(t *testing.T) {
	hello := func(cert string) Message {
		return Message{Type: TypeHello, Role: RoleTerminal, Certificate: cert}
	}
	tests := []struct {
		name string
		m    Message
		want error
	}{
		{"2048 characters", hello(strings.Repeat("A", MaxCertificateChars)), nil},
		{"2049 characters", hello(strings.Repeat("A", MaxCertificateChars+1)), ErrTooLarge},
		{"standard base64", hello("ab+/"), ErrInvalid},
		{"padding", hello("QQ=="), ErrInvalid},
		{"on a welcome", Message{Type: TypeWelcome, Role: RoleTerminal, Certificate: "QQ"}, ErrInvalid},
		{"signature still 512 at most", Message{Type: TypeHello, Role: RoleTerminal, Signature: strings.Repeat("A", 513)}, ErrInvalid},
	}
	for _, tc := range tests {
		err := tc.m.Validate()
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: Validate() = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestLoginCertificate: the certificate SignLogin puts in the hello comes
// back out through the strict decoder byte for byte.
func TestLoginCertificate(t *testing.T) {
	k := newKey(t, elliptic.P256())
	cert := bytes.Repeat([]byte{0x30, 0x82, 0xff}, 500) // 1,500 bytes: the largest devcert allows
	m, err := SignLogin(k, cert, NewNonce(), "x")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(m)
	if err != nil {
		t.Fatalf("Encode of a hello with a 1,500-byte certificate: %v", err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoginCertificate(d)
	if err != nil || !bytes.Equal(got, cert) {
		t.Fatalf("LoginCertificate = %d bytes, %v; want the 1,500 sent", len(got), err)
	}
	d.Certificate = ""
	if _, err := LoginCertificate(d); !errors.Is(err, ErrInvalid) {
		t.Errorf("LoginCertificate without one err = %v, want ErrInvalid", err)
	}
}
