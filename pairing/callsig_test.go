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

// TestCheckSDP: the one SDP shape both ends accept. The carriage-return
// line is the outside review's man in the middle (issue 9): a line Go's scan
// skipped and pion's parser read.
func TestCheckSDP(t *testing.T) {
	good := sdpWith(fpA)
	tests := []struct {
		name, sdp string
		want      error
	}{
		{"CRLF", good, nil},
		{"LF only", strings.ReplaceAll(good, "\r\n", "\n"), nil},
		{"a line starting with a carriage return", strings.Replace(good, "s=-\r\n", "s=-\r\n\ra=fingerprint:"+fpB+"\r\n", 1), ErrBadSDP},
		{"a lone carriage return inside a line", strings.Replace(good, "s=-", "s=\r-", 1), ErrBadSDP},
		{"a tab", strings.Replace(good, "s=-", "s=\t-", 1), ErrBadSDP},
		{"a NUL", strings.Replace(good, "s=-", "s=\x00-", 1), ErrBadSDP},
		{"DEL", strings.Replace(good, "s=-", "s=\x7f-", 1), ErrBadSDP},
		{"non-ASCII", strings.Replace(good, "s=-", "s=团聚", 1), ErrBadSDP},
		{"no final line end", strings.TrimSuffix(good, "\r\n"), ErrBadSDP},
		{"not v=0", "x" + good, ErrBadSDP},
		{"upper-case attribute name, another certificate", good + "a=FINGERPRINT:" + fpB + "\r\n", ErrFingerprint},
		{"no fingerprint", "v=0\r\ns=-\r\n", ErrFingerprint},
	}
	for _, tc := range tests {
		if err := CheckSDP(tc.sdp); !errors.Is(err, tc.want) {
			t.Errorf("%s: CheckSDP = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func testBinding(call string) Binding {
	return Binding{CallID: call, RingNonce: NewNonce(), AcceptNonce: NewNonce()}
}

// TestCallSignatures: a signed call message verifies only as exactly what
// was signed — type, call, both nonces, every byte of the offer and answer —
// by the right key, in time.
func TestCallSignatures(t *testing.T) {
	key, _ := NewKey()
	other, _ := NewKey()
	now := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	const call1, call2 = "aaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbb"
	b := testBinding(call1)
	offerSDP, answerSDP := sdpWith(fpA, fpA), sdpWith(fpB)
	must := func(c CallSig, err error) CallSig {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ringB := Binding{CallID: call1, RingNonce: b.RingNonce}
	ring := must(SignCall(key, "ring", ringB, "", now))
	accept := must(SignCall(key, "accept", b, "", now))
	prepare := must(SignCall(key, "prepare", b, "", now))
	// The caller's prepare of its own call: over its ring nonce alone.
	callerPrepare := must(SignCall(key, "prepare", ringB, "", now))
	offer := must(SignCall(key, "offer", b, offerSDP, now))
	ab := b
	ab.OfferHash, _ = SDPHash(offerSDP)
	answer := must(SignCall(key, "answer", ab, answerSDP, now))
	// The second ICE restart of the call: a new offer and its answer.
	rb := b
	rb.Restart = 2
	restart := must(SignCall(key, "offer", rb, offerSDP, now))
	rab := ab
	rab.Restart = 2
	restartAnswer := must(SignCall(key, "answer", rab, answerSDP, now))

	type msg struct {
		typ string
		b   Binding
		sdp string
		sig CallSig
	}
	controls := []msg{{"ring", ringB, "", ring}, {"accept", b, "", accept}, {"offer", b, offerSDP, offer}, {"answer", ab, answerSDP, answer},
		{"offer", rb, offerSDP, restart}, {"answer", rab, answerSDP, restartAnswer}, {"prepare", b, "", prepare}, {"prepare", ringB, "", callerPrepare}}
	for _, c := range controls {
		if err := VerifyCall(&key.PublicKey, c.typ, c.b, c.sdp, c.sig, now.Add(time.Minute)); err != nil {
			t.Fatalf("control: a genuine %s is refused: %v", c.typ, err)
		}
	}
	with := func(b Binding, f func(*Binding)) Binding { f(&b); return b }
	tests := []struct {
		name string
		m    msg
		pub  *ecdsa.PublicKey
		now  time.Time
		want error
	}{
		{"other key", controls[2], &other.PublicKey, now, ErrBadProof},
		{"answer fingerprint swapped", msg{"answer", ab, sdpWith(fpA), answer}, &key.PublicKey, now, ErrBadProof},
		{"offer fingerprint swapped", msg{"offer", b, sdpWith(fpB, fpB), offer}, &key.PublicKey, now, ErrBadProof},
		{"one byte of the answer changed (no fingerprint touched)", msg{"answer", ab, strings.Replace(answerSDP, "s=-", "s=x", 1), answer}, &key.PublicKey, now, ErrBadProof},
		{"a hidden session-level fingerprint added (the review's attack)", msg{"answer", ab, strings.Replace(answerSDP, "s=-\r\n", "s=-\r\n\ra=fingerprint:"+fpA+"\r\n", 1), answer}, &key.PublicKey, now, ErrBadSDP},
		{"answer to another offer", msg{"answer", with(ab, func(b *Binding) { b.OfferHash, _ = SDPHash(sdpWith(fpB)) }), answerSDP, answer}, &key.PublicKey, now, ErrBadProof},
		{"accept replayed against a fresh ring nonce", msg{"accept", with(b, func(b *Binding) { b.RingNonce = NewNonce() }), "", accept}, &key.PublicKey, now, ErrBadProof},
		{"answer replayed against a fresh accept nonce", msg{"answer", with(ab, func(b *Binding) { b.AcceptNonce = NewNonce() }), answerSDP, answer}, &key.PublicKey, now, ErrBadProof},
		{"replayed into another call", msg{"offer", with(b, func(b *Binding) { b.CallID = call2 }), offerSDP, offer}, &key.PublicKey, now, ErrBadProof},
		{"ring presented as accept", msg{"accept", b, "", ring}, &key.PublicKey, now, ErrBadProof},
		// A prepare asks for the offer while the phone still rings: the
		// server must not be able to turn it into the parent's accept.
		{"prepare presented as accept", msg{"accept", b, "", prepare}, &key.PublicKey, now, ErrBadProof},
		{"accept presented as prepare", msg{"prepare", b, "", accept}, &key.PublicKey, now, ErrBadProof},
		{"prepare without a nonce", msg{"prepare", with(b, func(b *Binding) { b.AcceptNonce = "" }), "", prepare}, &key.PublicKey, now, ErrBadProof},
		// The caller's prepare, signed over its ring nonce alone, passes for
		// no other message: not the callee's prepare, nor a ring.
		{"the caller's prepare presented as the callee's", msg{"prepare", b, "", callerPrepare}, &key.PublicKey, now, ErrBadProof},
		{"the caller's prepare presented as its ring", msg{"ring", ringB, "", callerPrepare}, &key.PublicKey, now, ErrBadProof},
		{"a ring presented as the caller's prepare", msg{"prepare", ringB, "", ring}, &key.PublicKey, now, ErrBadProof},
		{"the caller's prepare replayed against a fresh ring nonce", msg{"prepare", with(ringB, func(b *Binding) { b.RingNonce = NewNonce() }), "", callerPrepare}, &key.PublicKey, now, ErrBadProof},
		{"offer presented as answer", msg{"answer", ab, offerSDP, offer}, &key.PublicKey, now, ErrBadProof},
		{"time changed", msg{"ring", ringB, "", CallSig{"2026-11-28T18:00:01Z", ring.Signature}}, &key.PublicKey, now, ErrBadProof},
		{"too old", controls[0], &key.PublicKey, now.Add(MaxSkew + time.Second), ErrStale},
		{"from the future", controls[0], &key.PublicKey, now.Add(-MaxSkew - time.Second), ErrStale},
		{"bad time", msg{"ring", ringB, "", CallSig{"yesterday", ring.Signature}}, &key.PublicKey, now, ErrBadProof},
		{"accept without a nonce", msg{"accept", with(b, func(b *Binding) { b.AcceptNonce = "" }), "", accept}, &key.PublicKey, now, ErrBadProof},
		{"ring with an SDP", msg{"ring", ringB, offerSDP, ring}, &key.PublicKey, now, ErrBadProof},
		{"offer without SDP", msg{"offer", b, "", offer}, &key.PublicKey, now, ErrBadSDP},
		{"no signature", msg{"ring", ringB, "", CallSig{ring.SignedAt, ""}}, &key.PublicKey, now, ErrBadProof},
		{"DER instead of P1363", msg{"ring", ringB, "", CallSig{ring.SignedAt, "MEUCIQ" + ring.Signature[:80]}}, &key.PublicKey, now, ErrBadProof},
		{"unsigned type", msg{"hangup", b, "", ring}, &key.PublicKey, now, ErrBadProof},
		// ICE restarts: an earlier offer or answer cannot pass for a later
		// restart's, nor the other way round.
		{"first offer replayed as restart 2", msg{"offer", rb, offerSDP, offer}, &key.PublicKey, now, ErrBadProof},
		{"restart 2's offer replayed as restart 3", msg{"offer", with(rb, func(b *Binding) { b.Restart = 3 }), offerSDP, restart}, &key.PublicKey, now, ErrBadProof},
		{"restart offer taken for the first offer", msg{"offer", b, offerSDP, restart}, &key.PublicKey, now, ErrBadProof},
		{"first answer replayed as restart 2's", msg{"answer", rab, answerSDP, answer}, &key.PublicKey, now, ErrBadProof},
		{"restart answer signed by another key", msg{"answer", rab, answerSDP, restartAnswer}, &other.PublicKey, now, ErrBadProof},
		{"restart on a ring", msg{"ring", with(ringB, func(b *Binding) { b.Restart = 1 }), "", ring}, &key.PublicKey, now, ErrBadProof},
		{"negative restart", msg{"offer", with(rb, func(b *Binding) { b.Restart = -1 }), offerSDP, restart}, &key.PublicKey, now, ErrBadProof},
	}
	for _, tc := range tests {
		if err := VerifyCall(tc.pub, tc.m.typ, tc.m.b, tc.m.sdp, tc.m.sig, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: VerifyCall = %v, want %v", tc.name, err, tc.want)
		}
	}
}
