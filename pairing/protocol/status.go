package protocol

import (
	"fmt"
	"slices"
)

// A terminal's health, as the terminal itself knows it (docs/protocol.md,
// "Presence"): it reports it with status whenever it changes, and the server
// passes it to the parent's page inside presence (and the parent's
// welcome), so that the page says "needs repair" for a unit whose camera is
// gone rather than "online". Nothing but these words travels: never what a
// call carries.
//
// A page cannot see WebSocket pings, so it asks the server with ping, which
// the server answers with pong: a page whose link silently stopped carrying
// packets notices it and reconnects, rather than claim its child's terminal
// is online.
const (
	TypeStatus = "status" // terminal → server: its health, after login and whenever it changes
	TypePing   = "ping"   // parent or pairing page → server: is this link alive?
	TypePong   = "pong"   // server → the socket that sent ping
)

// Health values of status, presence and welcome. Offline (no socket) and
// revoked (reason) are the server's to say; these are the terminal's.
const (
	HealthReady       = "ready"        // connected, no call: a call can go through
	HealthInCall      = "in_call"      // a call is being set up or is live
	HealthNeedsRepair = "needs_repair" // hardware a call needs is broken; Faults names it
)

// Faults: the parts a terminal in needs_repair names.
const (
	FaultButton     = "button"
	FaultCamera     = "camera"
	FaultMicrophone = "microphone"
	FaultSpeaker    = "speaker"
	FaultStorage    = "storage"
)

var (
	healths = []string{HealthReady, HealthInCall, HealthNeedsRepair}
	faults  = []string{FaultButton, FaultCamera, FaultMicrophone, FaultSpeaker, FaultStorage}
)

// ValidHealth reports whether h is one of the Health* values.
func ValidHealth(h string) bool { return slices.Contains(healths, h) }

// ValidFault reports whether f is one of the Fault* values.
func ValidFault(f string) bool { return slices.Contains(faults, f) }

// validateStatus checks health and faults; it is part of Validate.
func (m *Message) validateStatus(bad func(field, why string) error) error {
	if m.Health != "" && !ValidHealth(m.Health) {
		return bad("health", fmt.Sprintf("must be one of %v", healths))
	}
	if m.Faults != nil {
		if m.Health != HealthNeedsRepair {
			return bad("faults", "are allowed only with health needs_repair")
		}
		if len(m.Faults) == 0 || len(m.Faults) > len(faults) {
			return bad("faults", fmt.Sprintf("must list 1 to %d parts", len(faults)))
		}
		for i, f := range m.Faults {
			if !ValidFault(f) {
				return bad("faults", fmt.Sprintf("entry %q is not one of %v", truncate(f), faults))
			}
			if slices.Contains(m.Faults[:i], f) {
				return bad("faults", fmt.Sprintf("name %q twice", f))
			}
		}
	}
	// Only a terminal that is there has a health.
	if m.Health != "" && m.PeerOnline != nil && !*m.PeerOnline {
		return bad("health", "is only for a terminal that is online (peer_online true)")
	}
	return nil
}
