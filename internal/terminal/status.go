package terminal

import (
	"image"
	"strings"

	"github.com/tuanju/tuanju/media"
)

// Status is a snapshot for the device panel, the technician and tests.
type Status struct {
	DeviceID   string      `json:"device_id"`
	State      string      `json:"state"`
	Pattern    string      `json:"pattern"`
	Online     bool        `json:"online"`
	Paired     bool        `json:"paired"`
	Pairable   bool        `json:"pairable"` // the pairing window is open
	ParentID   string      `json:"parent_id,omitempty"`
	PeerOnline bool        `json:"peer_online"`
	PairingURL string      `json:"pairing_url,omitempty"`
	CallID     string      `json:"call_id,omitempty"`
	LastCue    string      `json:"last_cue,omitempty"`
	Fault      string      `json:"fault,omitempty"` // what needs repair, e.g. "camera missing"
	Received   media.Stats `json:"received"`        // the parent's media in the current or last call
	Calls      int         `json:"calls"`           // calls this run has ended
	// RestartAnswersRefused counts ICE restart answers refused (not signed
	// by the paired parent over the newest restart offer).
	RestartAnswersRefused int `json:"restart_answers_refused,omitempty"`
	// StateWriteFailures counts writes to the state file that failed (a
	// full or failing disk): calls go on without them. CallLogHeldBack is
	// how many call records wait to be written (statewrites.go).
	StateWriteFailures int `json:"state_write_failures,omitempty"`
	CallLogHeldBack    int `json:"call_log_held_back,omitempty"`
	// Budget is the month's data usage and budget (budget.go).
	Budget BudgetStatus `json:"budget"`
}

// view is what the loop shows the rest of the program: an immutable value,
// made by publish at the end of each turn of the loop and swapped in with
// one atomic store, so a reader outside the loop sees one turn's state
// whole, never half of one. The receiver and the capture are shared by
// pointer: they are safe for concurrent use (package media).
type view struct {
	status Status // Received is filled in by Status, from rx
	lit    lights // for the gate's light check (gate.go)
	rx     *media.Receiver
	screen *media.Receiver // the current call's only
	camera *media.Capture  // the current call's, once open
}

// publish makes the loop's state the view readers outside the loop see. It
// is the only place the view is written.
func (t *Terminal) publish() {
	var st Status
	st.DeviceID = t.deviceID
	st.State = t.m.State.String()
	st.Pattern = string(t.m.Pattern())
	st.Online = t.m.Online
	st.Paired = t.m.Paired
	st.Pairable = t.m.Pairable
	st.PeerOnline = t.peerOnline
	st.CallID = t.m.CallID
	st.LastCue = string(t.lastCue)
	st.Calls = t.calls
	st.RestartAnswersRefused = t.restartRefused
	st.StateWriteFailures = t.stateWriteFailures
	st.CallLogHeldBack = len(t.unlogged.records)
	st.Fault = strings.Join(t.faults, ", ")
	st.ParentID = t.parentID
	st.Budget = t.budgetStatus()
	if !t.m.Paired {
		st.PairingURL = t.PairingURL()
	}
	v := &view{status: st, lit: t.lit}
	switch {
	case t.sess != nil:
		v.rx, v.screen, v.camera = t.sess.receiver, t.sess.receiver, t.sess.capture
	case t.last != nil:
		v.rx = t.last.receiver
	}
	t.view.Store(v)
}

// notify calls OnStatus when the status has changed since it last did.
func (t *Terminal) notify() {
	st := t.view.Load().status
	if st == t.notified {
		return
	}
	t.notified = st
	if t.d.OnStatus != nil {
		t.d.OnStatus(st)
	}
}

// Status returns the latest snapshot; safe from any goroutine.
func (t *Terminal) Status() Status {
	v := t.view.Load()
	s := v.status
	if v.rx != nil {
		s.Received = v.rx.Stats()
	}
	return s
}

// Preview returns the camera picture of the call in progress, or nil: the
// camera is open only during a call. Safe from any goroutine.
func (t *Terminal) Preview() image.Image {
	if c := t.view.Load().camera; c != nil {
		return c.Preview()
	}
	return nil
}

// Screen returns the parent's latest decoded picture during a call, or nil:
// what a terminal with a screen shows. Safe from any goroutine.
func (t *Terminal) Screen() image.Image {
	if r := t.view.Load().screen; r != nil {
		return r.LatestFrame()
	}
	return nil
}
