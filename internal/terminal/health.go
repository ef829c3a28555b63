package terminal

import (
	"fmt"
	"time"

	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/media"
)

// cameraSettle is how long a camera that failed mid-call must be back before
// the fault clears: a camera being re-plugged comes and goes for a moment.
const cameraSettle = 3 * time.Second

// checkHealth raises "needs repair" while hardware a call needs is broken —
// the button stuck, the camera gone — or the server refuses this unit's
// credentials, and clears it when all is well again.
func (t *Terminal) checkHealth() {
	var faults []string
	if t.d.ButtonStuck != nil && t.d.ButtonStuck() {
		faults = append(faults, "call button stuck")
	}
	if err := media.CameraPresent(t.cfg.Capture); err != nil {
		faults = append(faults, "camera missing")
	} else if !t.cameraLostAt.IsZero() && time.Since(t.cameraLostAt) < cameraSettle {
		faults = append(faults, "camera failed mid-call")
	}
	if t.refused {
		faults = append(faults, "device certificate refused by the server")
	}
	changed := fmt.Sprint(faults) != fmt.Sprint(t.faults)
	t.faults = faults
	switch {
	case len(faults) > 0 && (t.m.State != call.Fault || changed):
		t.log.Error("showing needs-repair", "faults", faults)
		t.step(call.FaultRaised{})
	case len(faults) == 0 && t.m.State == call.Fault:
		t.log.Info("hardware is well again", "was", "needs repair")
		t.step(call.FaultCleared{})
	}
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
