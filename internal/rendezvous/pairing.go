package rendezvous

import (
	"errors"
	"time"

	"github.com/tuanju/tuanju/internal/protocol"
)

// Pairing relay (docs/protocol.md, "Pairing"). The server only forwards the
// page's proof to the terminal and the terminal's proof back; it never sees
// the secret, so it cannot pair anyone on its own. What it adds is the
// gatekeeping: registered, online, unpaired, rate-limited, one request at a
// time per terminal, and the atomic write of the pairing.

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
	term.send(protocol.Message{Type: protocol.TypePairRequest, DeviceID: m.DeviceID, Nonce: m.Nonce, Proof: m.Proof, PairID: p.id})
	s.log.Info("pair request forwarded", "target", m.DeviceID, "pair", p.id)
}

// takePending removes and returns the request a terminal is answering, or
// nil if it is not that terminal's.
func (h *hub) takePending(s *session, pairID string) *pendingPair {
	p := h.pending[pairID]
	if p == nil || p.terminal != s {
		return nil
	}
	p.timer.Stop()
	delete(h.pending, pairID)
	return p
}

func (h *hub) pairAccept(s *session, m protocol.Message) {
	p := h.takePending(s, m.PairID)
	if p == nil {
		s.sendError(protocol.ErrCodeNotAllowed, "no pairing request with this pair_id is waiting (expired or withdrawn)", m)
		return
	}
	ref := protocol.Message{Type: protocol.TypePairRequest, PairID: p.id}
	parentID := protocol.NewID()
	token, hash := newToken()
	if err := h.store.CreatePairing(p.deviceID, parentID, hash, h.now()); err != nil {
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
	p.page.send(protocol.Message{
		Type: protocol.TypePaired, DeviceID: p.deviceID, ParentID: parentID, Token: token, PairID: p.id, Proof: m.Proof,
	})
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
