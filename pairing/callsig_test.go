package pairing

import (
	"crypto/ecdsa"
	"errors"
	"strings"
	"testing"
	"time"
)

const fpA = "sha-256 0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9"
const fpB = "sha-256 FF:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9"

func sdpWith(fps ...string) string {
	s := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	for i, fp := range fps {
		s += "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
		if i%2 == 1 { // lower case, as some stacks write it
			alg, hex, _ := strings.Cut(fp, " ")
			fp = strings.ToUpper(alg) + " " + strings.ToLower(hex)
		}
		s += "a=fingerprint:" + fp + "\r\na=setup:actpass\r\n"
	}
	return s
}

func TestSDPFingerprint(t *testing.T) {
	tests := []struct {
		name, sdp, want string
		err             error
	}{
		{"one", sdpWith(fpA), fpA, nil},
		{"same on every section, any case", sdpWith(fpA, fpA, fpA), fpA, nil},
		{"two different", sdpWith(fpA, fpB), "", ErrFingerprint},
		{"none", "v=0\r\ns=-\r\n", "", ErrFingerprint},
		{"sha-1", sdpWith("sha-1 0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D"), "", ErrFingerprint},
		{"truncated", sdpWith(fpA[:40]), "", ErrFingerprint},
		{"no value", "v=0\r\na=fingerprint:sha-256\r\n", "", ErrFingerprint},
	}
	for _, tc := range tests {
		got, err := SDPFingerprint(tc.sdp)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("%s: SDPFingerprint = %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// TestCallSignatures: a signed call message verifies only as exactly what
// was signed, by the right key, in time, with the signed fingerprint.
func TestCallSignatures(t *testing.T) {
	key, _ := NewKey()
	other, _ := NewKey()
	now := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	const call1, call2 = "aaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbb"

	offer, err := SignCall(key, "offer", call1, now, sdpWith(fpA, fpA))
	if err != nil {
		t.Fatal(err)
	}
	if offer.Fingerprint != fpA {
		t.Fatalf("signed fingerprint %q", offer.Fingerprint)
	}
	ring, err := SignCall(key, "ring", call1, now, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyCall(&key.PublicKey, offer, sdpWith(fpA), now.Add(time.Minute)); err != nil {
		t.Fatalf("good offer refused: %v", err)
	}
	if err := VerifyCall(&key.PublicKey, ring, "", now); err != nil {
		t.Fatalf("good ring refused: %v", err)
	}

	tests := []struct {
		name string
		sig  CallSig
		sdp  string
		pub  *ecdsa.PublicKey
		now  time.Time
		want error
	}{
		{"other key", offer, sdpWith(fpA), &other.PublicKey, now, ErrBadProof},
		{"fingerprint swapped in the SDP (man in the middle)", offer, sdpWith(fpB), &key.PublicKey, now, ErrFingerprint},
		{"fingerprint swapped in SDP and signature", func() CallSig { c := offer; c.Fingerprint = fpB; return c }(), sdpWith(fpB), &key.PublicKey, now, ErrBadProof},
		{"second fingerprint added", offer, sdpWith(fpA, fpB), &key.PublicKey, now, ErrFingerprint},
		{"replayed into another call", func() CallSig { c := offer; c.CallID = call2; return c }(), sdpWith(fpA), &key.PublicKey, now, ErrBadProof},
		{"ring presented as accept", func() CallSig { c := ring; c.Type = "accept"; return c }(), "", &key.PublicKey, now, ErrBadProof},
		{"offer presented as answer", func() CallSig { c := offer; c.Type = "answer"; return c }(), sdpWith(fpA), &key.PublicKey, now, ErrBadProof},
		{"time changed", func() CallSig { c := ring; c.SignedAt = "2026-11-28T18:00:01Z"; return c }(), "", &key.PublicKey, now, ErrBadProof},
		{"too old", ring, "", &key.PublicKey, now.Add(MaxSkew + time.Second), ErrStale},
		{"from the future", ring, "", &key.PublicKey, now.Add(-MaxSkew - time.Second), ErrStale},
		{"bad time", func() CallSig { c := ring; c.SignedAt = "yesterday"; return c }(), "", &key.PublicKey, now, ErrBadProof},
		{"fingerprint without SDP", offer, "", &key.PublicKey, now, ErrFingerprint},
		{"no signature", func() CallSig { c := ring; c.Signature = ""; return c }(), "", &key.PublicKey, now, ErrBadProof},
		{"DER instead of P1363", func() CallSig { c := ring; c.Signature = "MEUCIQ" + c.Signature[:80]; return c }(), "", &key.PublicKey, now, ErrBadProof},
	}
	for _, tc := range tests {
		if err := VerifyCall(tc.pub, tc.sig, tc.sdp, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: VerifyCall = %v, want %v", tc.name, err, tc.want)
		}
	}
}
