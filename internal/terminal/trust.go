package terminal

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/internal/call"
	"github.com/tuanju/tuanju/internal/protocol"
	"github.com/tuanju/tuanju/internal/terminalstore"
	"github.com/tuanju/tuanju/pairing"
)

// Trust: the terminal believes only its one paired parent, recognised by
// the key exchanged at pairing (package pairing), never the rendezvous
// server. Everything the parent sends that could start a call, answer one
// or carry media keys is signed with that key; everything the terminal
// sends of the kind is signed with the device key.

// trust is the loop-owned state of pairing and call authentication.
type trust struct {
	parentKey *ecdsa.PublicKey // nil: no (usable) pairing
	cert      webrtc.Certificate
	fp        string // the DTLS certificate's fingerprint, "sha-256 AB:…"
	// clockOffset (nanoseconds) corrects the board's clock by the
	// server's (set at login): boards often have no real-time clock, and a
	// call's signatures carry the time. Atomic: the session signs its offer
	// off the loop.
	clockOffset *atomic.Int64
	// seenRings: call IDs of parent rings already acted on, so a replayed
	// ring (inside the signature's time window) cannot ring again.
	seenRings map[string]time.Time

	// The pairing in progress: the verified request waiting for the press,
	// the handshake after it, the parent key after the page's confirm.
	pairReq    map[string]pairing.Request
	pairHS     *pairing.TerminalHandshake
	pairParent *ecdsa.PublicKey
}

// loadTrust reads the persistent DTLS certificate and the stored parent key.
func loadTrust(store *terminalstore.Store, p *terminalstore.Parent) (trust, error) {
	tr := trust{seenRings: map[string]time.Time{}, pairReq: map[string]pairing.Request{}, clockOffset: new(atomic.Int64)}
	key, x, err := store.DTLSCertificate()
	if err != nil {
		return tr, err
	}
	tr.cert = webrtc.CertificateFromX509(key, x)
	fps, err := tr.cert.GetFingerprints()
	if err != nil || len(fps) == 0 {
		return tr, fmt.Errorf("terminal: dtls fingerprint: %v: %w", err, ErrConfig)
	}
	for _, f := range fps {
		if f.Algorithm == "sha-256" {
			tr.fp, err = pairing.Fingerprint(f.Algorithm, f.Value)
		}
	}
	if tr.fp == "" || err != nil {
		return tr, fmt.Errorf("terminal: no sha-256 dtls fingerprint: %v: %w", err, ErrConfig)
	}
	if p != nil && p.PublicKey != "" {
		if tr.parentKey, err = pairing.ParsePublicKey(p.PublicKey); err != nil {
			return tr, fmt.Errorf("terminal: stored parent key: %w", err)
		}
	}
	return tr, nil
}

// now is the board's clock corrected by the server's.
func (t *Terminal) now() time.Time { return time.Now().Add(time.Duration(t.tr.clockOffset.Load())) }

// setClock records the server's time at login.
func (t *Terminal) setClock(server time.Time) {
	if server.IsZero() {
		return
	}
	off := time.Until(server)
	if off > 2*time.Second || off < -2*time.Second {
		t.log.Info("board clock differs from the server's; signing with the server's time", "offset", off.Round(time.Second))
		t.tr.clockOffset.Store(int64(off))
	} else {
		t.tr.clockOffset.Store(0)
	}
}

// signed returns m signed with the device key (ring, accept, offer).
func (t *Terminal) signed(m protocol.Message) (protocol.Message, error) {
	sig, err := pairing.SignCall(t.key, m.Type, m.CallID, t.now(), m.SDP)
	if err != nil {
		return m, fmt.Errorf("terminal: sign %s: %w", m.Type, err)
	}
	m.SignedAt, m.Signature = sig.SignedAt, sig.Signature
	return m, nil
}

// sendSigned signs and sends; a message that cannot be signed is not sent
// (the peer would refuse it anyway) and the call fails.
func (t *Terminal) sendSigned(m protocol.Message) {
	sm, err := t.signed(m)
	if err != nil {
		t.log.Error("cannot sign", "type", m.Type, "err", err)
		t.step(call.MediaFailed{CallID: m.CallID})
		return
	}
	t.send(sm)
}

// errNoParentKey: a ring, accept or answer arrived but the terminal holds
// no parent key to check it with.
var errNoParentKey = errors.New("terminal: no paired parent key")

// fromParent checks that m (ring, accept or answer) was signed by the
// paired parent for this call, now, and for an answer over its SDP's
// fingerprint. A ring must also be new.
func (t *Terminal) fromParent(m protocol.Message) error {
	if t.tr.parentKey == nil {
		return errNoParentKey
	}
	now := t.now()
	c := pairing.CallSig{Type: m.Type, CallID: m.CallID, SignedAt: m.SignedAt, Signature: m.Signature}
	if m.Type == protocol.TypeAnswer {
		fp, err := pairing.SDPFingerprint(m.SDP)
		if err != nil {
			return err
		}
		c.Fingerprint = fp
	}
	if err := pairing.VerifyCall(t.tr.parentKey, c, m.SDP, now); err != nil {
		return err
	}
	if m.Type == protocol.TypeRing {
		for id, at := range t.tr.seenRings {
			if now.Sub(at) > 2*pairing.MaxSkew {
				delete(t.tr.seenRings, id)
			}
		}
		if _, seen := t.tr.seenRings[m.CallID]; seen {
			return fmt.Errorf("terminal: ring %s replayed: %w", m.CallID, pairing.ErrStale)
		}
		t.tr.seenRings[m.CallID] = now
	}
	return nil
}

// onPairRequest checks a pairing request before the child sees anything.
func (t *Terminal) onPairRequest(m protocol.Message) {
	if err := t.mayPair(); err != nil {
		// Outside the pairing window: no light, no sound, no proof check.
		t.log.Info("pairing request refused", "pair_id", m.PairID, "err", err)
		t.send(protocol.Message{Type: protocol.TypePairReject, PairID: m.PairID, Reason: "not_pairable"})
		return
	}
	r := pairing.Request{DeviceID: m.DeviceID, Nonce: m.Nonce, EphemeralKey: m.EphemeralKey, Proof: m.Proof}
	err := pairing.VerifyRequest(t.pairingSecret(), t.deviceID, r)
	if err == nil {
		// One request waits at a time; a new one replaces the old.
		t.tr.pairReq = map[string]pairing.Request{m.PairID: r}
	}
	t.log.Info("pairing request", "pair_id", m.PairID, "proof_ok", err == nil, "err", err)
	t.step(call.PairRequest{PairID: m.PairID, ProofOK: err == nil})
	if err != nil {
		t.pairProofFailed()
	}
}

// acceptPairing answers the waiting request after the button press.
func (t *Terminal) acceptPairing(pairID string) {
	r, ok := t.tr.pairReq[pairID]
	delete(t.tr.pairReq, pairID)
	if !ok {
		t.log.Warn("pairing press for a request that is gone", "pair_id", pairID)
		return
	}
	hs, acc, err := pairing.AcceptRequest(t.pairingSecret(), t.key, t.tr.fp, pairID, r)
	if err != nil {
		t.log.Error("cannot answer the pairing request", "pair_id", pairID, "err", err)
		t.send(protocol.Message{Type: protocol.TypePairReject, PairID: pairID, Reason: "bad_secret"})
		return
	}
	t.tr.pairHS, t.tr.pairParent = hs, nil
	t.send(protocol.Message{Type: protocol.TypePairAccept, PairID: pairID, EphemeralKey: acc.EphemeralKey,
		PublicKey: acc.PublicKey, Fingerprint: acc.Fingerprint, Signature: acc.Signature, Proof: acc.Proof})
}

// onPairConfirm checks the page's key confirmation; only then may the
// server store the pairing.
func (t *Terminal) onPairConfirm(m protocol.Message) {
	hs := t.tr.pairHS
	if hs == nil || hs.PairID() != m.PairID {
		t.log.Warn("pairing confirm for no pairing of ours", "pair_id", m.PairID)
		return
	}
	key, err := hs.VerifyConfirm(pairing.Confirm{PublicKey: m.PublicKey, Signature: m.Signature, Proof: m.Proof})
	if err != nil {
		t.log.Warn("pairing confirm refused", "pair_id", m.PairID, "err", err)
		t.tr.pairHS = nil
		t.send(protocol.Message{Type: protocol.TypePairReject, PairID: m.PairID, Reason: "bad_proof"})
		return
	}
	t.tr.pairParent = key
	t.send(protocol.Message{Type: protocol.TypePairComplete, PairID: m.PairID})
}

// onPaired stores the pairing the server confirmed, with the parent key
// this terminal verified itself.
func (t *Terminal) onPaired(m protocol.Message) {
	hs, key := t.tr.pairHS, t.tr.pairParent
	t.tr.pairHS, t.tr.pairParent = nil, nil
	if hs == nil || key == nil || hs.PairID() != m.PairID {
		t.log.Error("server says paired, but this terminal completed no such pairing; ignoring", "pair_id", m.PairID, "parent_id", m.ParentID)
		return
	}
	enc, err := pairing.EncodePublicKey(key)
	if err != nil {
		t.log.Error("cannot store the pairing", "err", err)
		return
	}
	// The machine only pairs when it believes it has no parent; if the
	// store still holds one, the server had forgotten it (see
	// terminalstore.ReplaceParent) and this press-confirmed pairing wins.
	p := terminalstore.Parent{ParentID: m.ParentID, PairedAt: time.Now().UTC(), PublicKey: enc}
	err = t.d.Store.SetParent(p)
	if errors.Is(err, terminalstore.ErrAlreadyPaired) {
		t.log.Warn("replacing a pairing the server no longer knew", "old_parent_id", t.parentID, "parent_id", m.ParentID)
		err = t.d.Store.ReplaceParent(p)
	}
	if err != nil {
		t.log.Error("cannot store the pairing", "err", err)
		return
	}
	t.log.Info("paired", "parent_id", m.ParentID)
	t.parentID, t.tr.parentKey = m.ParentID, key
	t.window.close()
	// The server has bound this connection to the new parent already;
	// presence follows when the parent's page logs in.
	t.step(call.PairDone{})
}
