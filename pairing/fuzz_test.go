package pairing

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The pairing messages and signed call messages are untrusted input on both
// sides. Each fuzz target starts from a genuine message and lets the fuzzer
// change every field; the property is that nothing but the genuine content
// is ever accepted (an ECDSA signature may differ: (r, -s) verifies too, and
// signs nothing else), that refusals carry a sentinel, and that nothing
// panics.

func refused(err error) bool {
	return errors.Is(err, ErrBadProof) || errors.Is(err, ErrBadKey) || errors.Is(err, ErrWrongDevice) ||
		errors.Is(err, ErrFingerprint) || errors.Is(err, ErrStale)
}

func FuzzAccept(f *testing.F) {
	key, _ := NewKey()
	spki, _ := EncodePublicKey(&key.PublicKey)
	id, _ := DeviceIDOf(spki)
	secret := NewSecret()
	// One genuine exchange; the parent's state is rebuilt per input from
	// the same request so that the genuine accept stays valid.
	ph, err := StartParent(secret, id)
	if err != nil {
		f.Fatal(err)
	}
	_, good, err := AcceptRequest(secret, key, testFP, pairID, ph.Request())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good.EphemeralKey, good.PublicKey, good.Fingerprint, good.Signature, good.Proof)
	f.Add(good.EphemeralKey, good.PublicKey, good.Fingerprint, good.Signature, good.Proof+"A")
	f.Add("", "", "", "", "")
	f.Add("BAAA", "MFkw", "sha-256 00", "AAAA", "AAAA")
	f.Fuzz(func(t *testing.T, eph, pub, fp, sig, proof string) {
		h := *ph // a copy: Accept records keys on success
		a := Accept{EphemeralKey: eph, PublicKey: pub, Fingerprint: fp, Signature: sig, Proof: proof}
		dev, err := h.Accept(pairID, a)
		if err != nil {
			if !refused(err) {
				t.Fatalf("Accept refused without a sentinel: %v", err)
			}
			if _, cerr := h.Confirm(key); cerr == nil {
				t.Fatal("Confirm works after a refused Accept")
			}
			return
		}
		if eph != good.EphemeralKey || pub != good.PublicKey || fp != good.Fingerprint || proof != good.Proof {
			t.Fatalf("Accept took a forged accept %+v", a)
		}
		if dev.DeviceID != id || !dev.PublicKey.Equal(&key.PublicKey) {
			t.Fatalf("Accept returned %+v", dev)
		}
	})
}

func FuzzConfirm(f *testing.F) {
	key, _ := NewKey()
	parent, _ := NewKey()
	spki, _ := EncodePublicKey(&key.PublicKey)
	id, _ := DeviceIDOf(spki)
	secret := NewSecret()
	ph, _ := StartParent(secret, id)
	th, acc, err := AcceptRequest(secret, key, testFP, pairID, ph.Request())
	if err != nil {
		f.Fatal(err)
	}
	if _, err := ph.Accept(pairID, acc); err != nil {
		f.Fatal(err)
	}
	good, err := ph.Confirm(parent)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good.PublicKey, good.Signature, good.Proof)
	f.Add(spki, good.Signature, good.Proof) // the device's own key instead
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, pub, sig, proof string) {
		p, err := th.VerifyConfirm(Confirm{PublicKey: pub, Signature: sig, Proof: proof})
		if err != nil {
			if !refused(err) {
				t.Fatalf("VerifyConfirm refused without a sentinel: %v", err)
			}
			return
		}
		if pub != good.PublicKey || proof != good.Proof || !p.Equal(&parent.PublicKey) {
			t.Fatalf("VerifyConfirm took a forged confirm (%q, %q, %q)", pub, sig, proof)
		}
	})
}

func FuzzVerifyCall(f *testing.F) {
	key, _ := NewKey()
	now := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	const call = "aaaaaaaaaaaaaaaaaaaaaaaaaa"
	b := Binding{CallID: call, RingNonce: strings.Repeat("r", 43), AcceptNonce: strings.Repeat("a", 43)}
	b.OfferHash, _ = SDPHash("v=0\r\na=fingerprint:" + testFP + "\r\n")
	sdp := "v=0\r\ns=-\r\na=fingerprint:" + testFP + "\r\n"
	good, err := SignCall(key, "answer", b, sdp, now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("answer", call, b.RingNonce, b.AcceptNonce, b.OfferHash, good.SignedAt, good.Signature, sdp)
	f.Add("offer", call, b.RingNonce, b.AcceptNonce, b.OfferHash, good.SignedAt, good.Signature, sdp)
	f.Add("answer", call, b.RingNonce, b.AcceptNonce, b.OfferHash, good.SignedAt, good.Signature, sdp+"\ra=fingerprint:sha-256 00\r\n")
	f.Add("answer", call, b.AcceptNonce, b.RingNonce, b.OfferHash, good.SignedAt, good.Signature, sdp)
	f.Add("ring", call, b.RingNonce, "", "", "2026-11-28T18:00:00Z", "", "")
	f.Fuzz(func(t *testing.T, typ, callID, ringNonce, acceptNonce, offerHash, at, sig, sdp2 string) {
		fb := Binding{CallID: callID, RingNonce: ringNonce, AcceptNonce: acceptNonce, OfferHash: offerHash}
		err := VerifyCall(&key.PublicKey, typ, fb, sdp2, CallSig{at, sig}, now)
		if err != nil {
			if !refused(err) && !errors.Is(err, ErrBadSDP) {
				t.Fatalf("VerifyCall refused without a sentinel: %v", err)
			}
			return
		}
		if typ != "answer" || fb != b || at != good.SignedAt || sdp2 != sdp {
			t.Fatalf("VerifyCall took a forged %s %+v over %q", typ, fb, sdp2)
		}
	})
}
