package rendezvous

import (
	"slices"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// status takes a terminal's report of its own health (docs/protocol.md,
// "Presence") and, when it changed, passes it to its parent's sockets in a
// presence, so that the page shows what the terminal knows — "needs repair
// (camera)" — rather than "online" for a unit that cannot take a call.
// Only the report's words travel; the server keeps the last one per socket
// for the parent's welcome. The terminal's data budget (used of total,
// what calls are limited to, until when) travels the same way. An unpaired terminal's report is kept (it may
// pair) and goes nowhere. h.mu is held.
func (h *hub) status(s *session, m protocol.Message) {
	h.srv.fleet.noteHealth(s.deviceID, m.Health, m.Faults) // the fleet report's needs repair
	if m.Health == s.health && slices.Equal(m.Faults, s.faults) && sameBudget(m.Budget, s.budget) {
		return
	}
	if m.Health != s.health || !slices.Equal(m.Faults, s.faults) {
		s.log.Info("terminal health", "health", m.Health, "faults", m.Faults, "was", s.health)
	}
	s.health, s.faults = m.Health, slices.Clone(m.Faults)
	if m.Budget != nil {
		b := *m.Budget
		s.budget = &b
	} else {
		s.budget = nil
	}
	h.sendAll(h.parentsOf(s), presenceOf(s))
}

// sameBudget reports whether two reported budgets say the same.
func sameBudget(a, b *protocol.Budget) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.TotalBytes == b.TotalBytes && a.UsedBytes == b.UsedBytes && a.Limit == b.Limit && a.Until.Equal(b.Until)
}

// presenceOf is the presence a parent gets for its online terminal s.
func presenceOf(s *session) protocol.Message {
	return protocol.Message{Type: protocol.TypePresence, PeerOnline: boolp(true), Health: s.health, Faults: s.faults, Budget: s.budget}
}
