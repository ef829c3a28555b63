package terminal

import (
	"fmt"
	"slices"
	"time"

	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// cameraSettle is how long a camera that failed mid-call must be back before
// the fault clears: a camera being re-plugged comes and goes for a moment.
const cameraSettle = 3 * time.Second

// checkHealth raises "needs repair" while hardware a call needs is broken —
// the button stuck, the camera gone — or the server refuses this unit's
// credentials, and clears it when all is well again.
func (t *Terminal) checkHealth() {
	var faults, parts []string
	if t.d.ButtonStuck != nil && t.d.ButtonStuck() {
		faults = append(faults, "call button stuck")
		parts = append(parts, protocol.FaultButton)
	}
	if err := media.CameraPresent(t.cfg.Capture); err != nil {
		faults = append(faults, "camera missing")
		parts = append(parts, protocol.FaultCamera)
	} else if !t.cameraLostAt.IsZero() && time.Since(t.cameraLostAt) < cameraSettle {
		faults = append(faults, "camera failed mid-call")
		parts = append(parts, protocol.FaultCamera)
	}
	if t.refused {
		// Not a part the server could be told of: it refused the login.
		faults = append(faults, "device certificate refused by the server")
	}
	changed := fmt.Sprint(faults) != fmt.Sprint(t.faults)
	t.faults, t.faultParts = faults, parts
	switch {
	case len(faults) > 0 && (t.m.State != call.Fault || changed):
		t.log.Error("showing needs-repair", "faults", faults)
		t.step(call.FaultRaised{})
	case len(faults) == 0 && t.m.State == call.Fault:
		t.log.Info("hardware is well again", "was", "needs repair")
		t.step(call.FaultCleared{})
	}
}

// health is what the terminal tells the server of itself
// (docs/protocol.md, "Presence"): needs repair while in Fault, naming the
// parts at fault; in a call once one is being set up; ready otherwise. The
// parent's page shows it, so that a parent does not ring a unit that cannot
// ring. A unit with a data budget adds it (budget.go): the page shows how
// much is used and why a call is voice only.
func (t *Terminal) health() protocol.Message {
	m := protocol.Message{Type: protocol.TypeStatus, Health: protocol.HealthReady}
	switch t.m.State {
	case call.Fault:
		m.Health = protocol.HealthNeedsRepair
		if len(t.faultParts) > 0 {
			m.Faults = slices.Clone(t.faultParts)
		}
	case call.Connecting, call.InCall:
		m.Health = protocol.HealthInCall
	}
	m.Budget = t.reportedBudget()
	return m
}

// reportHealth sends status when the health differs from what this
// connection last carried; at the end of each turn of the loop, so a
// connection gets it right after its login and after every change.
func (t *Terminal) reportHealth() {
	if t.conn == nil || !t.m.Online {
		return
	}
	h := t.health()
	if t.reported != nil && t.reported.Health == h.Health && slices.Equal(t.reported.Faults, h.Faults) && sameBudget(t.reported.Budget, h.Budget) {
		return
	}
	t.log.Info("health reported", "health", h.Health, "faults", h.Faults)
	t.send(h)
	t.reported = &h
}

// sameBudget reports whether two reported budgets say the same.
func sameBudget(a, b *protocol.Budget) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.TotalBytes == b.TotalBytes && a.UsedBytes == b.UsedBytes && a.Limit == b.Limit && a.Until.Equal(b.Until)
}

// petWatchdog tells the hardware watchdog the loop is alive. Reaching this
// tick is the proof of life; a full event queue means the loop is falling
// behind, so it is not petted then. A stuck button still pets: a reboot
// cannot fix it and would only loop.
func (t *Terminal) petWatchdog() {
	if t.d.Watchdog == nil {
		return
	}
	if len(t.events) == cap(t.events) {
		t.log.Error("event queue full: not petting the watchdog")
		return
	}
	if err := t.d.Watchdog.Pet(); err != nil {
		t.log.Error("watchdog pet failed", "err", err)
	}
}
