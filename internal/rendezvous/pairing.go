package rendezvous

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// Pairing relay (docs/protocol.md, "Pairing"). The server forwards the
// handshake of package pairing between the page and the terminal without
// being able to read or alter it: it never sees the label's secret, and
// everything is bound to that secret, the ECDH keys of the exchange and the
// terminal's key. What it adds is the gatekeeping: registered, online,
// unpaired, rate-limited, one request at a time per terminal, the order of
// the four messages, and the pairing's two-phase write across the three
// parties:
//
//  1. the page makes its own token and keeps its credential (parent ID =
//     pair ID) before it sends pair_confirm;
//  2. the server stores a pending pairing (Store.PutPendingPairing) before
//     it forwards the confirm;
//  3. the terminal stores the parent before it sends pair_complete;
//  4. only then does the server commit (Store.CompletePairing).
//
// A crash anywhere leaves a pending record that only the terminal's word
// ends: at its next login the welcome names it (pair_id) and the terminal
// completes it (it has the parent) or rejects it (it has not). A page that
// logs in meanwhile is told pairing_pending, then welcome or auth_failed.
// So the family ends paired on all three sides or on none (tests/e2e
// TestPairingFaultPoints).

// pairStep is where a pending pairing is.
type pairStep int

const (
	stepAsked     pairStep = iota // pair_request forwarded; the terminal waits for its button
	stepAccepted                  // pair_accept forwarded to the page
	stepConfirmed                 // pair_confirm forwarded to the terminal
)

// FaultPoint names a step of pairing on the server where a test may stop
// it as a crash would (Server.SetPairFault): nothing after the point runs.
type FaultPoint string

// The server's pairing steps, in order.
const (
	FaultConfirmReceived  FaultPoint = "server: pair_confirm received"
	FaultPendingStored    FaultPoint = "server: pending pairing stored"
	FaultConfirmForwarded FaultPoint = "server: pair_confirm forwarded"
	FaultCompleteReceived FaultPoint = "server: pair_complete received"
	FaultCommitted        FaultPoint = "server: pairing committed"
	FaultPairedSent       FaultPoint = "server: paired sent"
)

// FaultPoints are the server's pairing steps, in order.
var FaultPoints = []FaultPoint{FaultConfirmReceived, FaultPendingStored, FaultConfirmForwarded,
	FaultCompleteReceived, FaultCommitted, FaultPairedSent}

// SetPairFault installs a test's hook, called at each FaultPoint; when it
// returns true the server stops there as if the process died: the hub
// handles nothing more (what was queued to sockets still goes out, as from
// a killed process's socket buffers), and the test closes the server and
// starts another on the same data directory. nil removes the hook.
func (s *Server) SetPairFault(f func(FaultPoint) bool) { s.pairFault.Store(&f) }

// fault runs the test hook at step, under the hub's lock; true: stop.
func (h *hub) fault(step FaultPoint) bool {
	f := h.srv.pairFault.Load()
	if f == nil || *f == nil || !(*f)(step) {
		return false
	}
	h.closed = true
	h.log.Warn("fault injected: the server stops here", "step", string(step))
	return true
}

func (h *hub) pairRequest(s *session, m protocol.Message) {
	now := h.srv.now()
	if !h.ipLimit.allow(addressKey(s.ip), now) {
		s.log.Warn("pair request rate limited", "by", "ip", "target", m.DeviceID)
		s.sendError(protocol.ErrCodeRateLimited, "too many pairing attempts from this address; wait a minute", m)
		return
	}
	if _, err := h.store.Device(m.DeviceID); err != nil {
		if errors.Is(err, ErrNotFound) {
			s.sendError(protocol.ErrCodeUnknownDevice, "no terminal with this ID has ever connected", m)
			return
		}
		s.log.Error("pair request", "err", err)
		s.sendError(protocol.ErrCodeInternal, "could not look up the terminal", m)
		return
	}
	// Before the terminal's own rate: a source that keeps guessing wrong
	// must not use up the real parent's requests either.
	if !h.srv.pairFails.allow(m.DeviceID, prefixKey(s.ip), now) {
		s.log.Warn("pair request refused: too many wrong proofs from this network", "target", m.DeviceID)
		s.sendError(protocol.ErrCodeRateLimited, "too many wrong pairing codes from this network for this terminal; try again later", m)
		return
	}
	if !h.deviceLimit.allow(m.DeviceID, now) {
		s.log.Warn("pair request rate limited", "by", "device", "target", m.DeviceID)
		s.sendError(protocol.ErrCodeRateLimited, "too many pairing attempts for this terminal; wait a minute", m)
		return
	}
	if _, err := h.store.ParentOf(m.DeviceID); err == nil {
		s.sendError(protocol.ErrCodeAlreadyPaired, "this terminal is already paired", m)
		return
	} else if !errors.Is(err, ErrNotFound) {
		s.log.Error("pair request", "err", err)
		s.sendError(protocol.ErrCodeInternal, "could not look up the pairing", m)
		return
	}
	if _, err := h.store.PendingOf(m.DeviceID); err == nil {
		s.sendError(protocol.ErrCodePairBusy, "the terminal is still finishing an earlier pairing; try again in a minute", m)
		return
	} else if !errors.Is(err, ErrNotFound) {
		s.log.Error("pair request", "err", err)
		s.sendError(protocol.ErrCodeInternal, "could not look up the pairing", m)
		return
	}
	term := h.terminals[m.DeviceID]
	if term == nil {
		s.sendError(protocol.ErrCodeDeviceOffline, "the terminal is not connected", m)
		return
	}
	if term.pairedParent != "" {
		s.sendError(protocol.ErrCodeAlreadyPaired, "this terminal is already paired", m)
		return
	}
	for _, p := range h.pending {
		if p.deviceID == m.DeviceID {
			// Another phone is pairing (or this one, from another tab):
			// one request per terminal. Not rate_limited: this page has
			// tried nothing wrong and nothing too often.
			s.sendError(protocol.ErrCodePairBusy, "another phone is pairing with this terminal right now", m)
			return
		}
	}
	p := &pendingPair{id: protocol.NewID(), deviceID: m.DeviceID, page: s, terminal: term}
	h.pending[p.id] = p
	p.timer = time.AfterFunc(h.srv.cfg.PairTimeout, func() { h.pairTimeout(p) })
	term.send(protocol.Message{Type: protocol.TypePairRequest, DeviceID: m.DeviceID, Nonce: m.Nonce,
		EphemeralKey: m.EphemeralKey, Proof: m.Proof, PairID: p.id, Source: h.srv.sourceTag(s.ip)})
	s.log.Info("pair request forwarded", "target", m.DeviceID, "pair", p.id)
}

// pendingFor returns the request a terminal is answering, or nil if it is
// not that terminal's.
func (h *hub) pendingFor(s *session, pairID string) *pendingPair {
	p := h.pending[pairID]
	if p == nil || p.terminal != s {
		return nil
	}
	return p
}

// takePending removes and returns the request a terminal is answering.
func (h *hub) takePending(s *session, pairID string) *pendingPair {
	p := h.pendingFor(s, pairID)
	if p == nil {
		return nil
	}
	p.timer.Stop()
	delete(h.pending, pairID)
	return p
}

// pairAccept: the terminal's button was pressed; its half of the handshake
// goes to the page.
func (h *hub) pairAccept(s *session, m protocol.Message) {
	p := h.pendingFor(s, m.PairID)
	if p == nil || p.step != stepAsked {
		s.sendError(protocol.ErrCodeNotAllowed, "no pairing request with this pair_id is waiting for an accept", m)
		return
	}
	p.step = stepAccepted
	p.page.send(protocol.Message{Type: protocol.TypePairAccept, PairID: p.id, EphemeralKey: m.EphemeralKey,
		PublicKey: m.PublicKey, Fingerprint: m.Fingerprint, Signature: m.Signature, Proof: m.Proof})
}

// pairConfirm: the page verified the terminal and sends its key and the
// token it made for its login. The pending pairing is stored before the
// terminal sees the confirm, so whatever the terminal does with it, the
// server can finish or roll back after a crash of either.
func (h *hub) pairConfirm(s *session, m protocol.Message) {
	p := h.pending[m.PairID]
	if p == nil || p.page != s || p.step != stepAccepted {
		s.sendError(protocol.ErrCodeNotAllowed, "no pairing with this pair_id is waiting for a confirm", m)
		return
	}
	if raw, err := base64.RawURLEncoding.DecodeString(m.Token); err != nil || len(raw) != protocol.TokenBytes {
		s.sendError(protocol.ErrCodeBadMessage, "pair_confirm needs the page's token: 32 random bytes, base64url", m)
		return
	}
	if h.fault(FaultConfirmReceived) {
		return
	}
	sum := sha256.Sum256([]byte(m.Token))
	rec := PendingPairing{PairID: p.id, TokenHash: sum[:], PublicKey: m.PublicKey, CreatedAt: h.now()}
	err := h.store.PutPendingPairing(p.deviceID, rec)
	h.pairingWrites.Add(1)
	if err != nil {
		code, text := protocol.ErrCodeInternal, "could not store the pairing"
		if errors.Is(err, ErrAlreadyPaired) {
			code, text = protocol.ErrCodeAlreadyPaired, "this terminal is already paired"
		} else {
			s.log.Error("store pending pairing", "err", err)
		}
		h.takePending(p.terminal, p.id)
		s.sendError(code, text, protocol.Message{Type: protocol.TypePairRequest, PairID: p.id})
		return
	}
	if h.fault(FaultPendingStored) {
		return
	}
	p.step = stepConfirmed
	p.terminal.send(protocol.Message{Type: protocol.TypePairConfirm, PairID: p.id, PublicKey: m.PublicKey,
		Signature: m.Signature, Proof: m.Proof})
	h.fault(FaultConfirmForwarded)
}

// pairComplete: the terminal verified the page's confirm and stored the
// parent. Commit the pending pairing and tell both sides. A pair_complete
// with no request in memory is the terminal finishing, at a later login, a
// pairing the welcome named as pending.
func (h *hub) pairComplete(s *session, m protocol.Message) {
	p := h.pendingFor(s, m.PairID)
	if p != nil && p.step != stepConfirmed {
		s.sendError(protocol.ErrCodeNotAllowed, "no pairing with this pair_id is waiting to complete", m)
		return
	}
	if h.fault(FaultCompleteReceived) {
		return
	}
	if p != nil {
		h.takePending(s, m.PairID)
	}
	parent, committed, err := h.store.CompletePairing(s.deviceID, m.PairID, h.now())
	h.pairingWrites.Add(1)
	if err != nil {
		code, text := protocol.ErrCodeInternal, "could not store the pairing; it stays pending until your next login"
		switch {
		case errors.Is(err, ErrNotFound):
			code, text = protocol.ErrCodeNotAllowed, "no pairing with this pair_id is waiting to complete"
		case errors.Is(err, ErrAlreadyPaired):
			code, text = protocol.ErrCodeAlreadyPaired, "this terminal is already paired"
		default:
			s.log.Error("complete pairing", "pair", m.PairID, "err", err)
		}
		if p != nil && p.page != nil {
			p.page.sendError(code, text, protocol.Message{Type: protocol.TypePairRequest, PairID: p.id})
		}
		s.sendError(code, text, m)
		return
	}
	if h.fault(FaultCommitted) {
		return
	}
	s.pairedParent = m.PairID
	if committed {
		h.srv.writeAudit(AuditPaired, s.deviceID, m.PairID)
	}
	if p != nil && p.page != nil {
		// The page made the token: paired carries none.
		p.page.send(protocol.Message{Type: protocol.TypePaired, DeviceID: s.deviceID, ParentID: m.PairID, PairID: m.PairID})
	}
	s.send(protocol.Message{Type: protocol.TypePaired, DeviceID: s.deviceID, ParentID: m.PairID, PairID: m.PairID})
	s.log.Info("paired", "parent", m.PairID, "pair", m.PairID, "at_login", p == nil, "key", parent.PublicKey != "")
	h.fault(FaultPairedSent)
}

// pairReject: the terminal refused a request, at any step; or, with no
// request in memory, it says at login that it did not store the pending
// pairing the welcome named (protocol.ReasonNotPaired), which is rolled
// back: the page's credential for it will get auth_failed.
func (h *hub) pairReject(s *session, m protocol.Message) {
	p := h.takePending(s, m.PairID)
	if p == nil || p.step == stepConfirmed {
		dropped, err := h.store.DropPendingPairing(s.deviceID, m.PairID)
		h.pairingWrites.Add(1)
		if err != nil {
			s.log.Error("roll back pending pairing", "pair", m.PairID, "err", err)
			s.sendError(protocol.ErrCodeInternal, "could not roll back the pairing; it stays pending until your next login", m)
			return
		}
		if dropped {
			s.log.Info("pending pairing rolled back: the terminal did not store it", "pair", m.PairID, "reason", m.Reason)
		}
		if p == nil {
			if !dropped {
				s.sendError(protocol.ErrCodeNotAllowed, "no pairing request with this pair_id is waiting (expired or withdrawn)", m)
			}
			return
		}
	}
	if p.page != nil {
		p.page.sendError(protocol.ErrCodePairRejected, m.Reason, protocol.Message{Type: protocol.TypePairRequest, PairID: p.id})
	}
	s.log.Info("pairing rejected by the terminal", "reason", m.Reason, "pair", p.id)
	if wrongProof[m.Reason] && p.page != nil {
		h.srv.pairFails.failed(p.deviceID, prefixKey(p.page.ip), h.srv.now())
	}
}

// wrongProof are the terminal's pair_reject reasons that mean the page did
// not know the label's secret (internal/call: "bad_secret" for the
// request, the terminal's "bad_proof" for the confirm), each of which the
// terminal counts against its pairing window. "declined", "timeout" and
// "not_pairable" say nothing about the page.
var wrongProof = map[string]bool{"bad_secret": true, "bad_proof": true}

// pairFailures counts wrong pairing proofs per terminal and source network
// (prefixKey), so that one source cannot spend the wrong proofs after
// which the terminal closes its pairing window (internal/terminal,
// pairwindow.go) nor the per-terminal request rate: after max failures
// within memory, that source's
// requests for that terminal are no longer relayed. Entries exist only
// for proofs the terminal rejected, which the per-terminal request rate
// bounds, and are forgotten after memory.
type pairFailures struct {
	max    int
	memory time.Duration

	mu      sync.Mutex
	sources map[pairSource]*pairFailure
}

type pairSource struct{ deviceID, prefix string }

type pairFailure struct {
	n     int
	first time.Time
}

func newPairFailures(max int, memory time.Duration) *pairFailures {
	return &pairFailures{max: max, memory: memory, sources: map[pairSource]*pairFailure{}}
}

// allow reports whether a pair_request for deviceID from prefix may go on.
func (f *pairFailures) allow(deviceID, prefix string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.sources[pairSource{deviceID, prefix}]
	if e == nil {
		return true
	}
	if now.Sub(e.first) >= f.memory {
		delete(f.sources, pairSource{deviceID, prefix})
		return true
	}
	return e.n < f.max
}

// failed records a proof from prefix that deviceID rejected.
func (f *pairFailures) failed(deviceID, prefix string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := pairSource{deviceID, prefix}
	e := f.sources[k]
	if e == nil || now.Sub(e.first) >= f.memory {
		if len(f.sources) >= limiterPruneAt {
			for k, e := range f.sources {
				if now.Sub(e.first) >= f.memory {
					delete(f.sources, k)
				}
			}
		}
		e = &pairFailure{first: now}
		f.sources[k] = e
	}
	e.n++
}

func (h *hub) pairTimeout(p *pendingPair) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending[p.id] != p {
		return
	}
	delete(h.pending, p.id)
	// A confirmed pairing stays pending in the store: the terminal may
	// still complete it, now or at its next login.
	if p.page != nil {
		p.page.sendError(protocol.ErrCodePairRejected, "timeout", protocol.Message{Type: protocol.TypePairRequest, PairID: p.id})
	}
}

// sourceTag is the opaque tag of a page's network (prefixKey) that a
// relayed pair_request carries, so the terminal can count wrong proofs per
// source (internal/terminal, pairwindow.go) without learning any family's
// address: the first 96 bits of HMAC-SHA256 under a key made at start.
func (s *Server) sourceTag(ip string) string {
	mac := hmac.New(sha256.New, s.sourceKey)
	mac.Write([]byte(prefixKey(ip)))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:12])
}

func randomKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}
