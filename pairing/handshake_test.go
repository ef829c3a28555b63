package pairing

import (
	"crypto/ecdsa"
	"errors"
	"testing"
)

const testFP = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"

type pairRig struct {
	secret   Secret
	dev      *ecdsa.PrivateKey
	deviceID string
	parent   *ecdsa.PrivateKey
}

func newPairRig(t *testing.T) pairRig {
	t.Helper()
	dev, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	par, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := EncodePublicKey(&dev.PublicKey)
	id, err := DeviceIDOf(d)
	if err != nil {
		t.Fatal(err)
	}
	return pairRig{secret: NewSecret(), dev: dev, deviceID: id, parent: par}
}

// TestHandshake: both sides end with the other's long-term key.
func TestHandshake(t *testing.T) {
	r := newPairRig(t)
	ph, err := StartParent(r.secret, r.deviceID)
	if err != nil {
		t.Fatal(err)
	}
	req := ph.Request()
	if err := VerifyRequest(r.secret, r.deviceID, req); err != nil {
		t.Fatalf("terminal refuses a good request: %v", err)
	}
	th, acc, err := AcceptRequest(r.secret, r.dev, testFP, pairID, req)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ph.Accept(pairID, acc)
	if err != nil {
		t.Fatalf("page refuses a good accept: %v", err)
	}
	if !dev.PublicKey.Equal(&r.dev.PublicKey) || dev.Fingerprint != testFP || dev.DeviceID != r.deviceID {
		t.Fatalf("page learned %+v", dev)
	}
	conf, err := ph.Confirm(r.parent)
	if err != nil {
		t.Fatal(err)
	}
	got, err := th.VerifyConfirm(conf)
	if err != nil {
		t.Fatalf("terminal refuses a good confirm: %v", err)
	}
	if !got.Equal(&r.parent.PublicKey) {
		t.Fatal("terminal learned another parent key")
	}
}

// TestHandshakeAttacks: every way a party without the secret, the device
// key or the exchange's state could try to complete a pairing fails, with
// the error that says why.
func TestHandshakeAttacks(t *testing.T) {
	r := newPairRig(t)
	stranger, _ := NewKey()
	flip := func(s string) string { // change one character, keep base64url
		b := []byte(s)
		if b[len(b)/2] == 'A' {
			b[len(b)/2] = 'B'
		} else {
			b[len(b)/2] = 'A'
		}
		return string(b)
	}
	type exchange struct {
		ph  *ParentHandshake
		req Request
		th  *TerminalHandshake
		acc Accept
	}
	run := func(t *testing.T) exchange {
		ph, err := StartParent(r.secret, r.deviceID)
		if err != nil {
			t.Fatal(err)
		}
		th, acc, err := AcceptRequest(r.secret, r.dev, testFP, pairID, ph.Request())
		if err != nil {
			t.Fatal(err)
		}
		return exchange{ph, ph.Request(), th, acc}
	}

	t.Run("request", func(t *testing.T) {
		wrongSecret, _ := StartParent(NewSecret(), r.deviceID)
		otherDevice, _ := StartParent(r.secret, devID)
		good := run(t).req
		tests := []struct {
			name string
			req  Request
		}{
			{"wrong secret", wrongSecret.Request()},
			{"other device", otherDevice.Request()},
			{"nonce changed", func() Request { q := good; q.Nonce = flip(q.Nonce); return q }()},
			{"ephemeral key changed", func() Request { q := good; q.EphemeralKey = flip(q.EphemeralKey); return q }()},
			{"proof changed", func() Request { q := good; q.Proof = flip(q.Proof); return q }()},
			{"no proof", func() Request { q := good; q.Proof = ""; return q }()},
		}
		for _, tc := range tests {
			if err := VerifyRequest(r.secret, r.deviceID, tc.req); !errors.Is(err, ErrBadProof) && !errors.Is(err, ErrBadKey) {
				t.Errorf("%s: VerifyRequest = %v, want a refusal", tc.name, err)
			}
			if _, _, err := AcceptRequest(r.secret, r.dev, testFP, pairID, tc.req); err == nil {
				t.Errorf("%s: AcceptRequest accepted", tc.name)
			}
		}
	})

	t.Run("accept", func(t *testing.T) {
		other := run(t) // a second, complete exchange whose messages get replayed
		impostor := func() Accept {
			// A terminal with another key (a server that answers itself) that
			// somehow knows the secret: the key does not hash to the label.
			e := run(t)
			d, _ := EncodePublicKey(&stranger.PublicKey)
			_, a, err := accept(r.secret, stranger, d, r.deviceID, testFP, pairID, e.req)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}()
		tests := []struct {
			name    string
			pairID  string
			mutate  func(Accept) Accept
			wantErr error
		}{
			{"replayed from another exchange", pairID, func(Accept) Accept { return other.acc }, ErrBadProof},
			{"other pair ID", devID, func(a Accept) Accept { return a }, ErrBadProof},
			{"fingerprint swapped", pairID, func(a Accept) Accept {
				a.Fingerprint = "sha-256 FF:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"
				return a
			}, ErrBadProof},
			{"fingerprint malformed", pairID, func(a Accept) Accept { a.Fingerprint = "sha-1 00"; return a }, ErrFingerprint},
			{"ephemeral key swapped", pairID, func(a Accept) Accept { a.EphemeralKey = other.acc.EphemeralKey; return a }, ErrBadProof},
			{"signature changed", pairID, func(a Accept) Accept { a.Signature = flip(a.Signature); return a }, ErrBadProof},
			{"proof changed", pairID, func(a Accept) Accept { a.Proof = flip(a.Proof); return a }, ErrBadProof},
			{"another terminal's key", pairID, func(Accept) Accept { return impostor }, ErrWrongDevice},
			{"garbage key", pairID, func(a Accept) Accept { a.PublicKey = "AAAA"; return a }, ErrWrongDevice},
		}
		for _, tc := range tests {
			e := run(t)
			if _, err := e.ph.Accept(tc.pairID, tc.mutate(e.acc)); !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: Accept = %v, want %v", tc.name, err, tc.wantErr)
			}
			if _, err := e.ph.Confirm(r.parent); err == nil {
				t.Errorf("%s: the page confirms after a refused accept", tc.name)
			}
		}
	})

	t.Run("confirm", func(t *testing.T) {
		other := run(t)
		if _, err := other.ph.Accept(pairID, other.acc); err != nil {
			t.Fatal(err)
		}
		otherConf, _ := other.ph.Confirm(r.parent)
		tests := []struct {
			name   string
			mutate func(Confirm) Confirm
		}{
			{"replayed from another exchange", func(Confirm) Confirm { return otherConf }},
			{"key swapped (server substitutes its own)", func(c Confirm) Confirm {
				c.PublicKey, _ = EncodePublicKey(&stranger.PublicKey)
				return c
			}},
			{"signature changed", func(c Confirm) Confirm { c.Signature = flip(c.Signature); return c }},
			{"proof changed", func(c Confirm) Confirm { c.Proof = flip(c.Proof); return c }},
		}
		for _, tc := range tests {
			e := run(t)
			if _, err := e.ph.Accept(pairID, e.acc); err != nil {
				t.Fatal(err)
			}
			c, err := e.ph.Confirm(r.parent)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.th.VerifyConfirm(tc.mutate(c)); !errors.Is(err, ErrBadProof) {
				t.Errorf("%s: VerifyConfirm = %v, want ErrBadProof", tc.name, err)
			}
		}
		// A stranger who knows the secret but signs with a key it then
		// claims is the parent's still needs k_p, which needs the ECDH
		// private key of this exchange.
		e := run(t)
		forged := Confirm{}
		forged.PublicKey, _ = EncodePublicKey(&stranger.PublicKey)
		forged.Signature, _ = sign(stranger, labelConfirm+"\n"+e.th.th+"\n"+forged.PublicKey)
		forged.Proof = mac(r.secret[:], labelConfirm, e.th.th, forged.PublicKey)
		if _, err := e.th.VerifyConfirm(forged); !errors.Is(err, ErrBadProof) {
			t.Errorf("confirm MACed with the label secret instead of k_p: %v", err)
		}
	})
}
