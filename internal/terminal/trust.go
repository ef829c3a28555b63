package terminal

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
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
	// clockOffset corrects the board's clock by the server's (set at
	// login): boards often have no real-time clock, and a call's
	// signatures carry the time. See setClock for the bounds a server is
	// held to.
	clockOffset time.Duration
	// floor is the latest time a source the terminal trusts has vouched
	// for: the binary's build, the paired parent's signed messages. The
	// clock is never set before it (terminalstore.ClockFloor).
	floor time.Time
	// calls holds the binding (package pairing) of each call the loop
	// knows: the nonces of its ring and accept. Every signature from the
	// accept on must cover the terminal's own nonce, so nothing recorded
	// from an earlier call can be replayed into this one.
	calls map[string]*pairing.Binding
	// unsaved holds the rings whose seen mark could not be written
	// (ringFromParent), so none rings twice while the disk is full.
	unsaved map[string]bool

	// The pairing in progress: the verified request waiting for the press,
	// the handshake after it, the parent key after the page's confirm.
	pairReq map[string]pairing.Request
	pairHS  *pairing.TerminalHandshake
	// dead: a test's fault hook stopped the terminal at a pairing step
	// (Deps.PairFault); the loop ends and nothing more is sent.
	dead bool
}

// loadTrust reads the persistent DTLS certificate, the stored parent key
// and the clock floor.
func loadTrust(store *terminalstore.Store, p *terminalstore.Parent) (trust, error) {
	tr := trust{calls: map[string]*pairing.Binding{}, pairReq: map[string]pairing.Request{}, unsaved: map[string]bool{}}
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
	if tr.floor, err = store.ClockFloor(); err != nil {
		return tr, err
	}
	if b := buildTime(); b.After(tr.floor) {
		tr.floor = b
	}
	return tr, nil
}

// buildTime is when the binary's source was committed (zero when unknown,
// as in tests): no real clock reads earlier.
func buildTime() time.Time {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return time.Time{}
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.time" {
			t, _ := time.Parse(time.RFC3339, s.Value)
			return t
		}
	}
	return time.Time{}
}

// now is the board's clock corrected by the server's.
func (t *Terminal) now() time.Time { return time.Now().Add(t.tr.clockOffset) }

// setClock takes the server's time at login as the clock signatures are
// made and checked with, held to the floor: a server may move the clock
// forward as it likes (at worst the parent then refuses the terminal's
// messages as stale, until an honest login moves it back), but never to
// before the latest time a trusted source vouched for, so it cannot make an
// old recording look fresh. Replay protection rests on the calls' nonces
// and the persisted call IDs, not on this clock; the bound keeps the time
// check meaningful too. Every change is logged.
func (t *Terminal) setClock(server time.Time) {
	if server.IsZero() {
		return
	}
	local := time.Now()
	floor := t.tr.floor
	if server.Before(floor) {
		off := time.Duration(0)
		if local.Before(floor) {
			off = floor.Sub(local) // the board's clock is unset: the floor is the best guess
		}
		t.tr.clockOffset = off
		t.log.Error("the server's clock is earlier than this unit has known the time to be; not taking it",
			"server_time", server.UTC().Format(time.RFC3339), "floor", floor.Format(time.RFC3339), "offset", off.Round(time.Second))
		return
	}
	off := server.Sub(local)
	if off > 2*time.Second || off < -2*time.Second {
		lvl := slog.LevelInfo
		if !local.Before(floor) && (off > pairing.MaxSkew || off < -pairing.MaxSkew) {
			// A board whose clock looks set, moved a long way: worth a look.
			lvl = slog.LevelWarn
		}
		t.log.Log(context.Background(), lvl, "board clock differs from the server's; signing with the server's time", "offset", off.Round(time.Second))
		t.tr.clockOffset = off
	} else {
		t.tr.clockOffset = 0
	}
}

// floorStep is how far the floor must move before vouch raises it: a
// call's ring, accept and answer come seconds apart, and a floor a minute
// low costs nothing (it already trails the parent's clock by MaxSkew), so
// a call costs at most one write of it, not three.
const floorStep = time.Minute

// maxUnsavedRings bounds the rings kept in memory when their seen marks
// cannot be written: far more than a family rings in the ten minutes a
// signature stays fresh.
const maxUnsavedRings = 1000

// vouch raises the clock floor to a time the paired parent signed (the
// parent's phone keeps network time), persisted so it holds after a reboot.
func (t *Terminal) vouch(signedAt string) {
	at, err := time.Parse(time.RFC3339, signedAt)
	if err != nil {
		return
	}
	// A message signed up to MaxSkew ahead of the truth still verifies:
	// keep the floor safely behind the parent's clock.
	at = at.Add(-pairing.MaxSkew)
	if at.Sub(t.tr.floor) < floorStep {
		return
	}
	t.tr.floor = at
	if err := t.d.Store.RaiseClockFloor(at); err != nil {
		t.log.Warn("cannot store the clock floor", "err", err)
		t.stateWriteFailed()
	}
}

// binding returns the call's binding, making it if new; it keeps only a
// few, since the loop handles one call at a time.
func (t *Terminal) binding(callID string) *pairing.Binding {
	if b := t.tr.calls[callID]; b != nil {
		return b
	}
	if len(t.tr.calls) >= 4 {
		for id := range t.tr.calls {
			if id != t.m.CallID {
				delete(t.tr.calls, id)
			}
		}
	}
	b := &pairing.Binding{CallID: callID}
	t.tr.calls[callID] = b
	return b
}

// signRing signs the terminal's ring with a fresh nonce of its own.
func (t *Terminal) signRing(callID string) (protocol.Message, error) {
	b := t.binding(callID)
	b.RingNonce, b.AcceptNonce, b.OfferHash = pairing.NewNonce(), "", ""
	m := protocol.Message{Type: protocol.TypeRing, CallID: callID, Nonce: b.RingNonce}
	return t.sign(m, *b)
}

// signAccept accepts the parent's (verified) ring with a fresh nonce, or
// with the one the prepared call's offer brought (prepare.go).
func (t *Terminal) signAccept(callID string) (protocol.Message, error) {
	b := t.tr.calls[callID]
	if b == nil || b.RingNonce == "" {
		return protocol.Message{}, fmt.Errorf("terminal: accept %s: no verified ring: %w", callID, ErrProtocol)
	}
	b.AcceptNonce = t.preparedNonce(callID)
	if b.AcceptNonce == "" {
		b.AcceptNonce = pairing.NewNonce()
	}
	return t.sign(protocol.Message{Type: protocol.TypeAccept, CallID: callID, Nonce: b.AcceptNonce}, *b)
}

// sign signs m (ring, accept, offer) over binding b with the device key.
func (t *Terminal) sign(m protocol.Message, b pairing.Binding) (protocol.Message, error) {
	sig, err := pairing.SignCall(t.key, m.Type, b, m.SDP, t.now())
	if err != nil {
		return m, fmt.Errorf("terminal: sign %s: %w", m.Type, err)
	}
	m.SignedAt, m.Signature = sig.SignedAt, sig.Signature
	return m, nil
}

// sendSigned sends a ring or accept made by signRing or signAccept; one that
// cannot be signed is not sent (the peer would refuse it anyway) and the
// call fails at once: the child sees it, rather than "calling" for the ring
// timeout while nothing reached the server.
func (t *Terminal) sendSigned(callID string, m protocol.Message, err error) {
	if err != nil {
		t.log.Error("cannot sign", "type", m.Type, "call_id", callID, "err", err)
		t.raise(call.SignFailed{CallID: callID})
		return
	}
	t.send(m)
}

// errNoParentKey: a ring, accept or answer arrived but the terminal holds
// no parent key to check it with.
var errNoParentKey = errors.New("terminal: no paired parent key")

// verifyParent checks one signed message from the parent over binding b.
func (t *Terminal) verifyParent(m protocol.Message, b pairing.Binding) error {
	if t.tr.parentKey == nil {
		return errNoParentKey
	}
	sig := pairing.CallSig{SignedAt: m.SignedAt, Signature: m.Signature}
	if err := pairing.VerifyCall(t.tr.parentKey, m.Type, b, m.SDP, sig, t.now()); err != nil {
		return err
	}
	t.vouch(m.SignedAt)
	return nil
}

// ringFromParent checks a parent's ring: signed by the paired parent over
// its own nonce, in time, and for a call ID this unit has never acted on —
// also across reboots (terminalstore.MarkCallSeen), so a ring the server
// recorded cannot ring the child again.
func (t *Terminal) ringFromParent(m protocol.Message) error {
	b := pairing.Binding{CallID: m.CallID, RingNonce: m.Nonce}
	if err := t.verifyParent(m, b); err != nil {
		return err
	}
	if t.tr.unsaved[m.CallID] {
		return fmt.Errorf("terminal: ring %s replayed: %w", m.CallID, pairing.ErrStale)
	}
	fresh, err := t.d.Store.MarkCallSeen(m.CallID)
	if err != nil {
		// The disk is full or failing: the parent's ring must still ring
		// the child. The ID is kept in memory instead, so it cannot ring
		// again in this run; after a restart, the signature's time
		// (pairing.MaxSkew) still bounds a replay to minutes.
		t.log.Warn("cannot record the ring as seen on disk; keeping it in memory", "call_id", m.CallID, "err", err)
		t.stateWriteFailed()
		if len(t.tr.unsaved) >= maxUnsavedRings {
			clear(t.tr.unsaved)
		}
		t.tr.unsaved[m.CallID] = true
		fresh = true
	}
	if !fresh {
		return fmt.Errorf("terminal: ring %s replayed: %w", m.CallID, pairing.ErrStale)
	}
	*t.binding(m.CallID) = b
	return nil
}

// acceptFromParent checks the parent's accept of the terminal's ring: it
// must sign the ring's nonce (which only this terminal chose) and bring its
// own.
func (t *Terminal) acceptFromParent(m protocol.Message) error {
	b := t.tr.calls[m.CallID]
	if b == nil || b.RingNonce == "" {
		return fmt.Errorf("terminal: accept %s: not a ring of ours: %w", m.CallID, ErrProtocol)
	}
	if b.AcceptNonce != "" {
		return fmt.Errorf("terminal: accept %s: accepted already: %w", m.CallID, ErrProtocol)
	}
	nb := *b
	nb.AcceptNonce = m.Nonce
	if err := t.verifyParent(m, nb); err != nil {
		return err
	}
	*b = nb
	return nil
}

// answerFromParent checks the parent's answer to s's newest offer: it must
// sign both nonces s was made under, the hash of the exact offer this
// terminal sent, and its own exact bytes, which are then the bytes applied.
func (t *Terminal) answerFromParent(m protocol.Message, s *session) error {
	if s.bind.AcceptNonce == "" || s.offerHash == "" {
		return fmt.Errorf("terminal: answer %s: no offer of ours to answer: %w", m.CallID, ErrProtocol)
	}
	nb := s.bind
	nb.OfferHash, nb.Restart = s.offerHash, m.Restart
	return t.verifyParent(m, nb)
}

// onPairRequest checks a pairing request before the child sees anything.
func (t *Terminal) onPairRequest(m protocol.Message) {
	if err := t.mayPair(m.Source); err != nil {
		// Outside the pairing window: no light, no sound, no proof check.
		t.log.Info("pairing request refused", "pair_id", m.PairID, "err", err)
		t.send(protocol.Message{Type: protocol.TypePairReject, PairID: m.PairID, Reason: "not_pairable"})
		return
	}
	r := pairing.Request{DeviceID: m.DeviceID, Nonce: m.Nonce, EphemeralKey: m.EphemeralKey, Proof: m.Proof}
	err := pairing.VerifyRequest(t.secret, t.deviceID, r)
	if err == nil {
		// One request waits at a time; a new one replaces the old.
		t.tr.pairReq = map[string]pairing.Request{m.PairID: r}
	}
	t.log.Info("pairing request", "pair_id", m.PairID, "proof_ok", err == nil, "err", err)
	t.step(call.PairRequest{PairID: m.PairID, ProofOK: err == nil})
	if err != nil {
		t.pairProofFailed(m.Source)
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
	hs, acc, err := pairing.AcceptRequest(t.secret, t.key, t.tr.fp, pairID, r)
	if err != nil {
		t.log.Error("cannot answer the pairing request", "pair_id", pairID, "err", err)
		t.send(protocol.Message{Type: protocol.TypePairReject, PairID: pairID, Reason: "bad_secret"})
		return
	}
	t.tr.pairHS = hs
	t.send(protocol.Message{Type: protocol.TypePairAccept, PairID: pairID, EphemeralKey: acc.EphemeralKey,
		PublicKey: acc.PublicKey, Fingerprint: acc.Fingerprint, Signature: acc.Signature, Proof: acc.Proof})
}

// onPairConfirm checks the page's key confirmation, stores the parent, and
// only then says pair_complete: the server commits the pairing only for a
// terminal that has it on disk (docs/protocol.md, "Pairing", step 6). The
// parent ID is the pair ID, which the server chose and the page already
// holds its credential for.
func (t *Terminal) onPairConfirm(m protocol.Message) {
	hs := t.tr.pairHS
	if hs == nil || hs.PairID() != m.PairID {
		t.log.Warn("pairing confirm for no pairing of ours", "pair_id", m.PairID)
		return
	}
	if t.fault(PairFaultConfirmReceived) {
		return
	}
	t.tr.pairHS = nil
	key, err := hs.VerifyConfirm(pairing.Confirm{PublicKey: m.PublicKey, Signature: m.Signature, Proof: m.Proof})
	if err != nil {
		t.log.Warn("pairing confirm refused", "pair_id", m.PairID, "err", err)
		t.send(protocol.Message{Type: protocol.TypePairReject, PairID: m.PairID, Reason: "bad_proof"})
		return
	}
	if t.m.Paired {
		// Unreachable while paired terminals refuse requests; never
		// replace a parent, whatever the handshake.
		t.log.Error("pairing confirm while paired; refusing", "pair_id", m.PairID)
		t.send(protocol.Message{Type: protocol.TypePairReject, PairID: m.PairID, Reason: "not_pairable"})
		return
	}
	enc, err := pairing.EncodePublicKey(key)
	if err == nil {
		// Only a local factory reset removes a parent: a stored one is
		// never replaced (SetParent refuses).
		err = t.d.Store.SetParent(terminalstore.Parent{ParentID: m.PairID, PairedAt: time.Now().UTC(), PublicKey: enc})
	}
	if err != nil {
		// Nothing stored: the server rolls its pending pairing back and
		// the page's credential dies.
		t.log.Error("cannot store the pairing; refusing it", "pair_id", m.PairID, "err", err)
		t.stateWriteFailed()
		t.send(protocol.Message{Type: protocol.TypePairReject, PairID: m.PairID, Reason: "store_failed"})
		return
	}
	if t.fault(PairFaultParentStored) {
		return
	}
	t.log.Info("paired", "parent_id", m.PairID)
	t.parentID, t.tr.parentKey = m.PairID, key
	t.window.close()
	t.step(call.PairDone{})
	t.send(protocol.Message{Type: protocol.TypePairComplete, PairID: m.PairID})
	t.fault(PairFaultCompleteSent)
}

// onPaired is the server's word that it committed the pairing this
// terminal stored: nothing changes here, the terminal's store decided.
func (t *Terminal) onPaired(m protocol.Message) {
	if t.fault(PairFaultPairedReceived) {
		return
	}
	if !t.m.Paired || t.parentID != m.ParentID {
		t.log.Error("server says paired, but this terminal stored no such pairing; ignoring", "pair_id", m.PairID, "parent_id", m.ParentID)
		return
	}
	t.log.Info("the server committed the pairing", "parent_id", m.ParentID)
}

// reconcilePairing compares, at each login, the terminal's pairing with
// the server's (the welcome's parent_id and pending pair_id) and settles a
// difference. The terminal's store decides; the server is only told:
//
//   - a pending pairing the terminal stored is completed (pair_complete),
//     one it did not store is rolled back (pair_reject "not_paired");
//   - a parent the server keeps and the terminal does not (its state was
//     lost, or the registry restored from before a reset) is dropped with
//     unpair, so that phone is told it is no longer paired;
//   - a parent the terminal has and the server lost cannot be rebuilt (the
//     server never had the page's token): it is logged for the technician.
//
// Nothing here makes the terminal trust a key, or forget one: that is only
// ever the button (pairing) or the reset gesture.
func (t *Terminal) reconcilePairing(w protocol.Message) {
	serverPaired := w.Paired != nil && *w.Paired
	local := ""
	if t.m.Paired {
		local = t.parentID
	}
	if t.unpairPending {
		return // the unpair just sent drops the server's pairing, pending or not
	}
	if w.PairID != "" {
		if local == w.PairID {
			t.log.Info("finishing a pairing the server had not committed", "parent_id", local)
			t.send(protocol.Message{Type: protocol.TypePairComplete, PairID: w.PairID})
		} else {
			t.log.Info("rolling back a pairing this unit never stored", "pair_id", w.PairID)
			t.send(protocol.Message{Type: protocol.TypePairReject, PairID: w.PairID, Reason: protocol.ReasonNotPaired})
		}
	}
	switch {
	case serverPaired && w.ParentID == "":
		t.log.Warn("the server says paired but names no parent; cannot compare", "terminal_paired", t.m.Paired)
	case serverPaired && local != w.ParentID:
		t.log.Warn("the server keeps a parent this unit does not trust; telling it to drop it",
			"server_parent_id", w.ParentID, "parent_id", local)
		t.send(protocol.Message{Type: protocol.TypeUnpair, Reason: protocol.ReasonNotPaired})
	case !serverPaired && local != "" && local != w.PairID:
		t.log.Error("the server has no record of this unit's parent (its registry was lost?): the parent cannot reach this unit; factory-reset it and pair again",
			"parent_id", local)
	}
}

// PairFaultPoint names a step of pairing on the terminal where a test may
// stop it as a crash would (Deps.PairFault).
type PairFaultPoint string

// The terminal's pairing steps, in order.
const (
	PairFaultConfirmReceived PairFaultPoint = "terminal: pair_confirm received"
	PairFaultParentStored    PairFaultPoint = "terminal: parent stored"
	PairFaultCompleteSent    PairFaultPoint = "terminal: pair_complete sent"
	PairFaultPairedReceived  PairFaultPoint = "terminal: paired received"
)

// PairFaultPoints are the terminal's pairing steps, in order.
var PairFaultPoints = []PairFaultPoint{PairFaultConfirmReceived, PairFaultParentStored, PairFaultCompleteSent, PairFaultPairedReceived}

// fault runs the test hook at step; true: the terminal stops there, as if
// killed. Its connection is closed at once and the loop ends; the test
// stops it and starts another on the same state file.
func (t *Terminal) fault(step PairFaultPoint) bool {
	if t.d.PairFault == nil || !t.d.PairFault(step) {
		return false
	}
	t.log.Warn("fault injected: the terminal stops here", "step", string(step))
	t.tr.dead = true
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
	return true
}
