package rendezvous

import (
	"github.com/tuanju/tuanju/pairing/protocol"
)

// unpair handles a factory-reset terminal's unpair (docs/protocol.md,
// "Factory reset"). The terminal's authenticated socket is the only
// authority needed: the reset was a 10-second press on its own button. The
// old parent loses everything the pairing gave it — its call in progress,
// its call log, its token — and each of its sockets is told and closed.
// A terminal with no pairing gets the same acknowledgement (it may be
// repeating an unpair whose answer it never saw), and the reset is audited
// either way.
//
// An unpair with reason not_paired is the terminal's login reconciliation
// instead (it never stored the parent the server kept): the same deletion,
// audited as pairing_dropped.
func (h *hub) unpair(s *session, m protocol.Message) {
	event := AuditFactoryReset
	switch m.Reason {
	case "":
	case protocol.ReasonNotPaired:
		event = AuditPairingDropped
	default:
		s.sendError(protocol.ErrCodeBadMessage, "unpair reason must be absent or not_paired", m)
		return
	}
	// End a call first: finishCall writes to the pairing's call log, which
	// is about to be deleted.
	if c := h.deviceCall[s.deviceID]; c != nil {
		h.toParentSide(c, hangupMsg(c.id, protocol.ReasonPeerLeft))
		h.finishCall(c, protocol.ReasonPeerLeft, c.fromTerminal)
	}
	parentID, err := h.store.Unpair(s.deviceID)
	h.pairingWrites.Add(1)
	switch {
	case err != nil && parentID == "":
		s.log.Error("unpair", "err", err)
		s.sendError(protocol.ErrCodeInternal, "could not delete the pairing; send unpair again", m)
		return
	case err != nil:
		// The pairing ended, what hung off it not all (natsreg.Unpair):
		// the parent is shut out all the same.
		s.log.Error("unpair: pairing deleted, not all of its parent's records", "err", err)
	}
	s.pairedParent = ""
	h.srv.writeAudit(event, s.deviceID, parentID)
	if parentID != "" {
		for p := range h.parents[parentID] {
			// Taken out of routing now; leave() will find nothing to undo.
			p.left = true
			p.send(protocol.Message{Type: protocol.TypeUnpaired, DeviceID: s.deviceID})
			p.closeWith(CloseUnpaired, "terminal reset")
		}
		delete(h.parents, parentID)
	}
	s.send(protocol.Message{Type: protocol.TypeUnpaired, DeviceID: s.deviceID})
	if event == AuditPairingDropped {
		s.log.Info("terminal does not hold the pairing: deleted", "old_parent", parentID)
		return
	}
	s.log.Info("terminal factory-reset: pairing deleted", "old_parent", parentID)
}
