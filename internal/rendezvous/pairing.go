package rendezvous

import (
	"errors"
	"time"

	"github.com/tuanju/tuanju/internal/protocol"
)

// Pairing relay (docs/protocol.md, "Pairing"). The server forwards the
// handshake of package pairing between the page and the terminal without
// being able to read or alter it: it never sees the label's secret, and
// everything is bound to that secret, the ECDH keys of the exchange and the
// terminal's key. What it adds is the gatekeeping: registered, online,
// unpaired, rate-limited, one request at a time per terminal, the order of
// the four messages, and the atomic write of the pairing once the terminal
// says it verified the page's confirm.

// pairStep is where a pending pairing is.
type pairStep int

const (
	stepAsked     pairStep = iota // pair_request forwarded; the terminal waits for its button
	stepAccepted                  // pair_accept forwarded to the page
	stepConfirmed                 // pair_confirm forwarded to the terminal
)

func (h *hub) pairRequest(s *session, m protocol.Message) {
	now := h.srv.now()
	if !h.ipLimit.allow(s.ip, now) {
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
			s.sendError(protocol.ErrCodeRateLimited, "another pairing request is waiting for this terminal", m)
			return
		}
	}
	p := &pendingPair{id: protocol.NewID(), deviceID: m.DeviceID, page: s, terminal: term}
	h.pending[p.id] = p
	p.timer = time.AfterFunc(h.srv.cfg.PairTimeout, func() { h.pairTimeout(p) })
	term.send(protocol.Message{Type: protocol.TypePairRequest, DeviceID: m.DeviceID, Nonce: m.Nonce,
		EphemeralKey: m.EphemeralKey, Proof: m.Proof, PairID: p.id})
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

// pairConfirm: the page verified the terminal and sends its key.
func (h *hub) pairConfirm(s *session, m protocol.Message) {
	p := h.pending[m.PairID]
	if p == nil || p.page != s || p.step != stepAccepted {
		s.sendError(protocol.ErrCodeNotAllowed, "no pairing with this pair_id is waiting for a confirm", m)
		return
	}
	p.step = stepConfirmed
	p.parentKey = m.PublicKey
	p.terminal.send(protocol.Message{Type: protocol.TypePairConfirm, PairID: p.id, PublicKey: m.PublicKey,
		Signature: m.Signature, Proof: m.Proof})
}

// pairComplete: the terminal verified the page's confirm. Store the
// pairing and give the page its login.
func (h *hub) pairComplete(s *session, m protocol.Message) {
	p := h.pendingFor(s, m.PairID)
	if p == nil || p.step != stepConfirmed {
		s.sendError(protocol.ErrCodeNotAllowed, "no pairing with this pair_id is waiting to complete", m)
		return
	}
	h.takePending(s, m.PairID)
	ref := protocol.Message{Type: protocol.TypePairRequest, PairID: p.id}
	parentID := protocol.NewID()
	token, hash := newToken()
	if err := h.store.CreatePairing(p.deviceID, parentID, hash, p.parentKey, h.now()); err != nil {
		code, text := protocol.ErrCodeInternal, "could not store the pairing"
		if errors.Is(err, ErrAlreadyPaired) {
			code, text = protocol.ErrCodeAlreadyPaired, "this terminal is already paired"
		} else {
			s.log.Error("create pairing", "err", err)
		}
		p.page.sendError(code, text, ref)
		s.sendError(code, text, m)
		return
	}
	s.pairedParent = parentID
	h.srv.writeAudit(AuditPaired, p.deviceID, parentID)
	p.page.send(protocol.Message{Type: protocol.TypePaired, DeviceID: p.deviceID, ParentID: parentID, Token: token, PairID: p.id})
	s.send(protocol.Message{Type: protocol.TypePaired, DeviceID: p.deviceID, ParentID: parentID, PairID: p.id})
	s.log.Info("paired", "parent", parentID, "pair", p.id)
}

func (h *hub) pairReject(s *session, m protocol.Message) {
	p := h.takePending(s, m.PairID)
	if p == nil {
		s.sendError(protocol.ErrCodeNotAllowed, "no pairing request with this pair_id is waiting (expired or withdrawn)", m)
		return
	}
	p.page.sendError(protocol.ErrCodePairRejected, m.Reason, protocol.Message{Type: protocol.TypePairRequest, PairID: p.id})
	s.log.Info("pairing rejected by the terminal", "reason", m.Reason, "pair", p.id)
}

func (h *hub) pairTimeout(p *pendingPair) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending[p.id] != p {
		return
	}
	delete(h.pending, p.id)
	p.page.sendError(protocol.ErrCodePairRejected, "timeout", protocol.Message{Type: protocol.TypePairRequest, PairID: p.id})
}
