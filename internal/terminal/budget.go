package terminal

import (
	"time"

	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/internal/terminal/databudget"
	"github.com/tuanju/tuanju/media"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// The monthly data budget (package databudget, docs/databudget.md). The
// loop counts each call's bytes from pion's statistics (the session's
// meter) and adds them to the month's usage in the state file every
// Config.BudgetFlush of a call and when it ends, so a power cut loses at
// most that much of one call. From the usage it decides what a call may
// start at (startMedia), tells the call machine when calls are voice only
// (its light and connect sound), and reports the budget to the parent's
// page with its status.

// DefaultBudgetFlush is how often a call's bytes are written while it
// lasts: a power cut loses at most this much of one call's count (at the
// low profile, 30 s are under 1 MB both ways), and an SD card takes two
// small writes a minute of a call.
const DefaultBudgetFlush = 30 * time.Second

// budgetState is the budget now: the configured total and the month's
// usage, as of the last write.
func (t *Terminal) budgetState() databudget.State {
	return databudget.Of(t.cfg.DataBudget, t.usage.Month, t.usage.Total(), t.d.Now())
}

// budgetVoiceOnly reports whether the budget keeps calls to voice now.
func (t *Terminal) budgetVoiceOnly() bool {
	return t.cfg.DataBudget > 0 && databudget.VoiceOnly(t.cfg.Capture.Profile, t.budgetState().Limit)
}

// callProfile is the profile a call starting now uses: the configured
// one, lowered by the budget; voice only when the machine started the call
// so (its light and sound said so already).
func (t *Terminal) callProfile() media.Profile {
	p := t.cfg.Capture.Profile
	if t.cfg.DataBudget > 0 {
		p = databudget.Cap(p, t.budgetState().Limit)
	}
	if t.m.CallVoiceOnly && p.Video {
		p = media.AudioOnly
	}
	return p
}

// checkBudget tells the machine when calls become voice only, or stop
// being (a new month starts, at local midnight): from the health tick and
// after each count.
func (t *Terminal) checkBudget() {
	if v := t.budgetVoiceOnly(); v != t.m.VoiceOnly {
		t.log.Info("data budget", "voice_only", v, "used", t.budgetState().Used, "total", t.cfg.DataBudget)
		t.step(call.BudgetChanged{VoiceOnly: v})
	}
}

// countCall adds what s carried since its last count to the month's
// usage in the state file. A write that fails is retried at the next
// count with the bytes it missed: nothing is lost but to a power cut.
func (t *Terminal) countCall(s *session, now time.Time) {
	if s == nil || s.meter == nil {
		return
	}
	c := s.meter.Read(s.pc)
	s.countedAt = now
	d := c.Sub(s.counted)
	if d.Sent <= 0 && d.Received <= 0 {
		return
	}
	u, err := t.d.Store.AddDataUsage(databudget.Month(t.d.Now()), max(d.Sent, 0), max(d.Received, 0))
	if err != nil {
		t.log.Error("cannot write the call's data usage; will retry", "call_id", s.callID, "err", err)
		t.stateWriteFailed()
		return
	}
	t.usage, s.counted = u, c
	t.checkBudget()
	if t.cfg.DataBudget > 0 && s == t.sess {
		// The budget may have run low during the call: what it sends
		// steps down with it (normal → low → very low → voice), as the
		// next call would start (TestLimitCallMidway).
		b := t.budgetState()
		if lim := databudget.Cap(t.cfg.Capture.Profile, b.Limit); s.limitTo(lim) {
			t.log.Info("the data budget lowers the call in progress", "call_id", s.callID, "limit", lim.Name,
				"used", b.Used, "total", b.Total)
		}
	}
}

// countDue reads the current call's meter (every health tick: a pair an
// ICE restart drops keeps all but its last second) and writes what it
// counted when its last write is Config.BudgetFlush old.
func (t *Terminal) countDue(now time.Time) {
	s := t.sess
	if s == nil || s.meter == nil {
		return
	}
	if now.Sub(s.countedAt) >= t.cfg.BudgetFlush {
		t.countCall(s, now)
		return
	}
	s.meter.Read(s.pc)
}

// reportedBudget is the budget the status carries (none without one): the
// parent's page shows it.
func (t *Terminal) reportedBudget() *protocol.Budget {
	if t.cfg.DataBudget <= 0 {
		return nil
	}
	b := t.budgetState()
	// What a call starts at: the budget's step, or the configured profile
	// when that is leaner. A unit without a camera says the budget's step:
	// its calls are voice only anyway, and not for want of data.
	limit := b.Limit
	if c := t.cfg.Capture.Profile; c.Video {
		limit = databudget.Cap(c, b.Limit)
	}
	return &protocol.Budget{
		TotalBytes: min(b.Total, protocol.MaxBudgetBytes),
		UsedBytes:  min(b.Used, protocol.MaxBudgetBytes),
		Limit:      limit.Name,
		Until:      b.Until,
	}
}

// BudgetStatus is the data budget in Status.
type BudgetStatus struct {
	TotalBytes int64  `json:"total_bytes,omitempty"` // 0: no budget
	UsedBytes  int64  `json:"used_bytes"`            // this month, as written
	Month      string `json:"month"`
	Limit      string `json:"limit,omitempty"` // the richest profile a call may start at
	VoiceOnly  bool   `json:"voice_only,omitempty"`
}

func (t *Terminal) budgetStatus() BudgetStatus {
	b := t.budgetState()
	st := BudgetStatus{UsedBytes: b.Used, Month: databudget.Month(t.d.Now()), VoiceOnly: t.m.VoiceOnly}
	if t.cfg.DataBudget > 0 {
		st.TotalBytes, st.Limit = t.cfg.DataBudget, b.Limit.Name
	}
	return st
}
