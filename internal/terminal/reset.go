package terminal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// The factory reset erases the family's pairing and the call log. The
// parent, far away, then needs the unit's QR label to pair again, so a reset
// is a deliberate act that a child does not do by chance. There are two,
// and both run only while the terminal is not running (so never in a call):
//
//   - the power-up gesture (device.ResetGesture): the button held while the
//     unit powers up, then three short presses; BootReset runs it before
//     the terminal starts;
//   - the technician's service command, `terminald reset --yes`, which needs
//     the state file, held by a running terminald.
//
// Both go through FactoryReset, which also refuses within RecentCall of the
// end of a call: a unit power-cycled right after a call (a child pulling
// the plug and pushing it back, the button still held) keeps its pairing.
// Neither touches the identity or the label's pairing secret
// (terminalstore.FactoryReset). The server is told with unpair on the next
// login, before anything else (sendUnpair), and the old parent's page then.

// RecentCall is how long after the end of a call no reset is accepted.
const RecentCall = time.Minute

// ErrRecentCall: a reset was asked for during or just after a call.
var ErrRecentCall = errors.New("terminal: no factory reset within a minute of a call")

// FactoryReset erases the pairing and the call log in store and marks the
// unpair for the server, unless a call ended less than RecentCall before
// now (ErrRecentCall, nothing erased). now is the wall clock the call log
// was written with; a clock behind the log (a board without a real-time
// clock, before the server set it) does not count as "just after".
func FactoryReset(store *terminalstore.Store, now time.Time, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	calls, err := store.Calls(1)
	if err != nil {
		return fmt.Errorf("terminal: factory reset: %w", err)
	}
	if len(calls) > 0 {
		if since := now.Sub(calls[0].EndedAt); since >= 0 && since < RecentCall {
			return fmt.Errorf("%w (the last ended %v ago)", ErrRecentCall, since.Round(time.Second))
		}
	}
	old := ""
	if p, err := store.Parent(); err == nil {
		old = p.ParentID
	}
	if err := store.FactoryReset(); err != nil {
		return fmt.Errorf("terminal: factory reset: %w", err)
	}
	log.Warn("factory reset: pairing and call log erased; the server is told on the next login", "old_parent_id", old)
	return nil
}

// ResetButton is what BootReset needs of the button (a *device.Button).
type ResetButton interface {
	Events() <-chan device.ButtonEvent
	Pressed() bool
}

// BootDeps are what BootReset works with: the button, freshly opened at
// power-up, its lights and sound, and the state file.
type BootDeps struct {
	Button  ResetButton
	LEDs    LEDs
	Speaker CuePlayer // may be nil
	Store   *terminalstore.Store
	Opts    device.ResetOpts
	Log     *slog.Logger
	// Now, if set, replaces time.Now for the wall clock FactoryReset
	// compares with the call log.
	Now func() time.Time
}

// resetTick is how often BootReset gives the recogniser the time.
const resetTick = 100 * time.Millisecond

// BootReset runs the power-up reset gesture. Call it after opening the
// button and before New: it returns at once (false) unless the button is
// held down at that moment, and otherwise when the gesture is decided —
// true when the unit was reset. Any doubt boots normally. Only ctx's end
// is an error.
func BootReset(ctx context.Context, d BootDeps) (bool, error) {
	if d.Button == nil || !d.Button.Pressed() {
		return false, nil
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "reset")
	now := d.Now
	if now == nil {
		now = time.Now
	}
	play := func(c call.Cue) {
		if d.Speaker != nil {
			d.Speaker.PlayCue(string(c))
		}
	}
	show := func(p device.Pattern) {
		if d.LEDs == nil {
			return
		}
		if err := d.LEDs.Show(p); err != nil {
			log.Error("cannot show lights", "pattern", p, "err", err)
		}
	}
	log.Info("button held at power-up: hold on for the reset light, or let go to boot")
	g := device.NewResetGesture(time.Now(), d.Opts)
	tick := time.NewTicker(resetTick)
	defer tick.Stop()
	for {
		var v device.ResetVerdict
		select {
		case <-ctx.Done():
			show(device.Off)
			return false, fmt.Errorf("terminal: reset gesture: %w", ctx.Err())
		case ev, ok := <-d.Button.Events():
			if !ok {
				return false, nil
			}
			g, v = g.Event(ev)
		case t := <-tick.C:
			g, v = g.Tick(t, d.Button.Pressed())
		}
		switch v {
		case device.ResetArm:
			log.Warn("reset armed: let go, then press three times to erase the pairing")
			show(device.ResetArmed)
			play(call.CueReset)
		case device.ResetConfirmed:
			if err := FactoryReset(d.Store, now(), log); err != nil {
				log.Error("factory reset refused", "err", err)
				show(device.Off)
				play(call.CueRefused)
				return false, nil
			}
			play(call.CueReset)
			return true, nil
		case device.ResetCancelled, device.ResetStuck:
			log.Info("no reset: booting", "why", g.Why)
			show(device.Off)
			if v == device.ResetCancelled {
				play(call.CueRefused)
			}
			return false, nil
		}
	}
}

// sendUnpair tells the server about a reset it has not confirmed yet.
func (t *Terminal) sendUnpair() {
	if !t.unpairPending {
		return
	}
	if t.conn == nil {
		t.log.Info("server out of reach: unpair will be sent on the next login")
		return
	}
	t.conn.Send(protocol.Message{Type: protocol.TypeUnpair})
}

// unpairConfirmed handles the server's unpaired: the reset is known there,
// so the pending flag can go.
func (t *Terminal) unpairConfirmed() {
	if !t.unpairPending {
		return
	}
	if err := t.d.Store.ClearUnpairPending(); err != nil {
		t.log.Error("cannot clear the pending unpair; it will be sent again", "err", err)
		return
	}
	t.unpairPending = false
	t.log.Info("server confirmed the factory reset")
}
