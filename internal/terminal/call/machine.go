// Package call is the terminal's call state machine. It is pure: Next takes
// the current Machine and one Event and returns the new Machine and the
// Actions the daemon must carry out (send a message, start media, start a
// timer). It does no I/O and reads no clock, so every transition — including
// timeouts and presses at odd moments — is tested from a table.
//
// The rules a child relies on:
//   - a short press calls, answers, or confirms pairing, and never does harm
//     at any other moment;
//   - a long press always cancels, declines or hangs up;
//   - pairing happens only while the pairing window is open (Pairable), and
//     still needs a short press per request;
//   - a ring is answered without a press only when the loop asked for it
//     (the paired parent, inside a reunion window), and only after the ring
//     has sounded for at least MinAutoAnswerDelay;
//   - an unanswered call gives up after RingTimeout and shows "no answer";
//     a call that reaches nobody (the server has no way to ring the
//     parent) shows "unreachable" at once, by light and sound, never
//     "calling";
//   - losing the network shows "offline" and recovers by itself;
//   - a call that drops (interrupted, failed) sounds unlike one hung up;
//   - a call in progress (media flowing) outlives its signalling socket:
//     it goes on while the terminal reconnects and resumes it, and ends
//     after ResumeGrace if it cannot (docs/protocol.md, "Resuming a call").
package call

import (
	"strconv"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// State is where the terminal is.
type State int

const (
	Offline     State = iota // no signalling connection
	Idle                     // connected, waiting for a press or a ring
	Calling                  // the child pressed; the parent's phone rings
	Ringing                  // the parent calls; the terminal rings
	Connecting               // answered; media is being set up
	InCall                   // media flows both ways
	NoAnswer                 // the last call went unanswered; shown for NoAnswerDisplay
	PairConfirm              // a valid pairing request waits for a press
	Fault                    // hardware the call needs is broken
	// Unreachable: the child's call reached nobody (the server could ring
	// no phone of the parent's: no page open, no push subscription, no
	// number); shown for NoAnswerDisplay.
	Unreachable
)

var stateNames = [...]string{"offline", "idle", "calling", "ringing", "connecting", "in_call", "no_answer", "pair_confirm", "fault", "unreachable"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Pattern is the light pattern the machine shows: its state's, except that
// an idle, unpaired terminal whose pairing window is open shows "pairable",
// and a call the data budget keeps to voice shows "in call, voice only".
func (m Machine) Pattern() device.Pattern {
	if m.State == Idle && m.Pairable && !m.Paired {
		return device.Pairable
	}
	if (m.State == Connecting || m.State == InCall) && m.CallVoiceOnly {
		return device.InCallVoice
	}
	return m.State.Pattern()
}

// Pattern is the light pattern a state shows. Connecting already shows "in
// call": the camera and microphone open in that state, and the child must see
// that before they do.
func (s State) Pattern() device.Pattern {
	switch s {
	case Offline:
		return device.Offline
	case Idle:
		return device.Ready
	case Calling:
		return device.Calling
	case Ringing:
		return device.Ringing
	case Connecting, InCall:
		return device.InCall
	case NoAnswer:
		return device.NoAnswer
	case PairConfirm:
		return device.Pairing
	case Fault:
		return device.Fault
	case Unreachable:
		return device.Unreachable
	}
	return device.Fault
}

// Timing of the machine's timers.
const (
	RingTimeout        = 45 * time.Second // the child's call rings this long
	IncomingTimeout    = 60 * time.Second // the parent's call rings the terminal this long
	ConnectTimeout     = 20 * time.Second // answered → media must flow within this
	NoAnswerDisplay    = 5 * time.Second  // "no answer" is shown this long
	PairConfirmTimeout = 60 * time.Second // a pairing request waits this long for a press
	// ResumeGrace is how long a call in progress goes on without its
	// signalling (resumed), and how long its media may stay down once it
	// is restarted: the server waits as long (rendezvous.DefaultResumeGrace).
	ResumeGrace = 75 * time.Second
	// MinAutoAnswerDelay is the least time a ring sounds before it is
	// answered without a press: the child must have seen and heard it.
	MinAutoAnswerDelay = 3 * time.Second
)

// Timer names a timer; its Token ties it to one call or pairing so that a
// stale timeout is ignored.
type Timer int

const (
	TimerRing Timer = iota + 1
	TimerIncoming
	TimerConnect
	TimerNoAnswer
	TimerPair
	TimerAutoAnswer
	TimerResume  // the call must be resumed within ResumeGrace
	TimerRestart // media restarted (ICE restart) must be up within ResumeGrace
)

// Machine is the whole state. It is a value: Next returns a new one.
type Machine struct {
	State    State
	Online   bool   // signalling is connected
	Paired   bool   // the terminal has a parent
	CallID   string // the current call, if any
	Outgoing bool   // the current call was started by the child
	Answered bool   // the current call reached Connecting
	// Resuming: the call is in progress but its signalling connection was
	// lost; the terminal resumes it on the next connection.
	Resuming bool
	// MediaDown: the call's peer connection lost its path; an ICE restart
	// (RestartMedia) brings it back once the parent can be reached.
	MediaDown bool
	// Epoch numbers the call's resume and restart timers, so that the
	// timer of an earlier loss does not end the call after a later one.
	Epoch  int
	PairID string // the pairing request waiting for a press
	// Pairable: the pairing window is open (the loop opens and closes it,
	// see internal/terminal/pairwindow.go); pairing requests are refused
	// outside it.
	Pairable bool
	// VoiceOnly: the month's data budget is spent (package databudget),
	// so calls start voice only; the loop sets it (BudgetChanged).
	// CallVoiceOnly: the current call started so, and says so to the
	// child by its light and connect sound for as long as it lasts.
	VoiceOnly     bool
	CallVoiceOnly bool
}

// Cue is a short sound the terminal's speaker plays. CueConnected is not a
// PlayCue action: StartMedia carries it, because media may open only once it
// has played.
type Cue string

const (
	CueCalling   Cue = "calling"
	CueRing      Cue = "ring"
	CueConnected Cue = "connected"
	CueNoAnswer  Cue = "no_answer"
	CueHangup    Cue = "hangup"
	CueRefused   Cue = "refused" // a press that can do nothing now
	CueReset     Cue = "reset"   // the button is held long enough: let go to reset
	// CuePaired: the pairing is stored; the child's parent can call now.
	CuePaired Cue = "paired"
	// CueUnreachable: the child's call reached nobody (Unreachable).
	CueUnreachable Cue = "unreachable"
	// CueDropped: a call (or its ring, or a pairing waiting for its press)
	// ended without anyone hanging up: the network, the media or the
	// hardware failed.
	CueDropped Cue = "dropped"
	// CueConnectedVoice: the connect sound of a call the data budget keeps
	// to voice (the child will not see the parent this time).
	CueConnectedVoice Cue = "connected_voice"
)

// Outcome values of ended calls are protocol's Outcome* constants.

// Actions. The daemon's loop carries them out in order.
type (
	SendRing   struct{ CallID string }
	SendAccept struct{ CallID string }
	SendHangup struct{ CallID, Reason string }
	// StartMedia announces the call — the in-call light is on, then Cue
	// plays to its end — and only then opens camera and microphone and makes
	// the SDP offer (the "never silent" rule: see internal/terminal/gate.go).
	StartMedia struct {
		CallID string
		Cue    Cue
	}
	StopMedia struct{ CallID string }
	// SendResume asks the server to bind the new connection to the call.
	SendResume struct{ CallID string }
	// RestartMedia makes a signed ICE restart offer for the call.
	RestartMedia struct{ CallID string }
	StartTimer   struct {
		Timer Timer
		Token string
		After time.Duration
	}
	PairAccept struct{ PairID string }
	PairReject struct{ PairID, Reason string }
	PlayCue    struct{ Cue Cue }
	// CallEnded is for the terminal's own call log.
	CallEnded struct {
		CallID   string
		Outgoing bool
		Answered bool
		Outcome  string
	}
)

// Action is one of the action types above: a closed set (the unexported
// method), so a switch over actions is checked against it.
type Action interface{ action() }

func (SendRing) action()     {}
func (SendAccept) action()   {}
func (SendHangup) action()   {}
func (StartMedia) action()   {}
func (StopMedia) action()    {}
func (SendResume) action()   {}
func (RestartMedia) action() {}
func (StartTimer) action()   {}
func (PairAccept) action()   {}
func (PairReject) action()   {}
func (PlayCue) action()      {}
func (CallEnded) action()    {}

// Events.
type (
	Connected    struct{ Paired bool }
	Disconnected struct{}
	// Press is a short press. NewCallID is a fresh ID the loop made in case
	// the press starts a call (the machine does not read randomness).
	Press     struct{ NewCallID string }
	LongPress struct{}
	// IncomingRing is the paired parent's ring. AutoAnswerAfter, when
	// positive, answers it without a press after that long (at least
	// MinAutoAnswerDelay): the loop sets it only inside a reunion window.
	IncomingRing struct {
		CallID          string
		AutoAnswerAfter time.Duration
	}
	PeerAccepted struct{ CallID string }
	PeerHangup   struct{ CallID, Reason string }
	MediaUp      struct{ CallID string }
	MediaFailed  struct{ CallID string }
	// MediaDown: the peer connection lost its path (ICE disconnected).
	MediaDown struct{ CallID string }
	// Resumed: the server bound the new connection to the call;
	// PeerOnline says the parent's side is bound too.
	Resumed struct {
		CallID     string
		PeerOnline bool
	}
	// ResumeRefused: the server has no such call waiting (it ended, or the
	// grace ran out there first).
	ResumeRefused struct{ CallID string }
	// SignFailed: the terminal could not sign its own ring or accept, so
	// nothing went out; the call is over at once.
	SignFailed struct{ CallID string }
	Timeout    struct {
		Timer Timer
		Token string
	}
	// PairRequest arrives with the proof already checked by the loop.
	PairRequest struct {
		PairID  string
		ProofOK bool
	}
	PairDone struct{}
	// PairWindow opens or closes the pairing window.
	PairWindow struct{ Open bool }
	// FactoryReset: the very long press erased the pairing; the terminal is
	// unpaired from now on (the loop opens the pairing window after it).
	FactoryReset struct{}
	FaultRaised  struct{}
	FaultCleared struct{}
	// BudgetChanged: the data budget is spent (VoiceOnly), or no longer
	// (a new month, a larger budget). A call in progress keeps how it
	// started.
	BudgetChanged struct{ VoiceOnly bool }
)

// Event is one of the event types above, a closed set like Action.
type Event interface{ event() }

func (Connected) event()     {}
func (Disconnected) event()  {}
func (Press) event()         {}
func (LongPress) event()     {}
func (IncomingRing) event()  {}
func (PeerAccepted) event()  {}
func (PeerHangup) event()    {}
func (MediaUp) event()       {}
func (MediaFailed) event()   {}
func (MediaDown) event()     {}
func (Resumed) event()       {}
func (ResumeRefused) event() {}
func (SignFailed) event()    {}
func (Timeout) event()       {}
func (PairRequest) event()   {}
func (PairDone) event()      {}
func (PairWindow) event()    {}
func (FactoryReset) event()  {}
func (FaultRaised) event()   {}
func (FaultCleared) event()  {}
func (BudgetChanged) event() {}

// Next is the transition function.
func Next(m Machine, e Event) (Machine, []Action) {
	// Events that mean the same in every state.
	switch e := e.(type) {
	case BudgetChanged:
		m.VoiceOnly = e.VoiceOnly
		return m, nil
	case Disconnected:
		if !m.Online && (m.State == Offline || m.Resuming) {
			return m, nil
		}
		if m.State == InCall {
			// Media flows between the two ends, not through the server:
			// the call goes on, and the next connection resumes it.
			m.Online, m.Resuming = false, true
			return m, []Action{m.timer(TimerResume)}
		}
		m.Online = false
		// A child whose press is still "calling" when the link turns out
		// dead (the terminal probes it with each ring) hears the no-network
		// cue: the press did not get through, and no "no answer" follows.
		// A ring, a call being set up or a pairing waiting for its press
		// drops, and says so (and the ring stops).
		was := m.State
		m, acts := m.dropCall(protocol.OutcomeFailed, "")
		switch was {
		case Calling:
			acts = append(acts, PlayCue{CueRefused})
		case Ringing, Connecting, PairConfirm:
			acts = append(acts, PlayCue{CueDropped})
		}
		if m.State == PairConfirm {
			m.PairID = ""
		}
		if m.State != Fault {
			m.State = Offline
		}
		return m, acts
	case PairDone:
		m.Paired, m.Pairable = true, false
		return m, []Action{PlayCue{CuePaired}}
	case PairWindow:
		m.Pairable = e.Open
		return m, nil
	case FactoryReset:
		// A call was hung up by the long press that preceded this one;
		// end whatever is left without a word to a parent who is gone.
		m, acts := m.dropCall(protocol.OutcomeFailed, "")
		if m.State == PairConfirm {
			acts = append(acts, PairReject{m.PairID, "declined"})
			m.PairID = ""
		}
		m.Paired = false
		switch {
		case m.State == Fault:
		case m.Online:
			m.State = Idle
		default:
			m.State = Offline
		}
		return m, acts
	case FaultRaised:
		if m.State == Fault {
			return m, nil
		}
		inCall := m.CallID != ""
		m, acts := m.dropCall(protocol.OutcomeFailed, protocol.ReasonFailed)
		if inCall {
			acts = append(acts, PlayCue{CueDropped})
		}
		m.State = Fault
		return m, acts
	case FaultCleared:
		if m.State != Fault {
			return m, nil
		}
		m.State = Offline
		if m.Online {
			m.State = Idle
		}
		return m, nil
	case IncomingRing:
		// A second call while one is in progress: refuse it, keep ours.
		if m.CallID != "" && e.CallID != m.CallID {
			return m, []Action{SendHangup{e.CallID, protocol.ReasonBusy}}
		}
	case PairRequest:
		// Outside the window nothing shows: no light, no sound, and no
		// word on whether the proof was right.
		if !m.Pairable {
			return m, []Action{PairReject{e.PairID, "not_pairable"}}
		}
		if !e.ProofOK {
			return m, []Action{PairReject{e.PairID, "bad_secret"}}
		}
		// A new request while one waits for its press replaces it: the
		// server keeps one request per terminal, so the page has retried
		// (its connection dropped) and the old one is gone.
		if m.Paired || (m.State != Idle && m.State != NoAnswer && m.State != Unreachable && m.State != PairConfirm) {
			return m, []Action{PairReject{e.PairID, "not_pairable"}}
		}
		m.State, m.PairID = PairConfirm, e.PairID
		return m, []Action{StartTimer{TimerPair, e.PairID, PairConfirmTimeout}, PlayCue{CueRing}}
	}

	switch m.State {
	case Offline:
		if e, ok := e.(Connected); ok {
			m.Online, m.Paired, m.State = true, e.Paired, Idle
			return m, nil
		}
		if _, ok := e.(Press); ok {
			return m, []Action{PlayCue{CueRefused}}
		}
	case Idle, NoAnswer, Unreachable:
		switch e := e.(type) {
		case Press:
			if !m.Paired {
				m.State = NoAnswer
				return m, []Action{PlayCue{CueRefused}, StartTimer{TimerNoAnswer, "", NoAnswerDisplay}}
			}
			m.State, m.CallID, m.Outgoing, m.Answered = Calling, e.NewCallID, true, false
			return m, []Action{SendRing{e.NewCallID}, StartTimer{TimerRing, e.NewCallID, RingTimeout}, PlayCue{CueCalling}}
		case LongPress:
			m.State = Idle
			return m, nil
		case IncomingRing:
			m.State, m.CallID, m.Outgoing, m.Answered = Ringing, e.CallID, false, false
			acts := []Action{StartTimer{TimerIncoming, e.CallID, IncomingTimeout}, PlayCue{CueRing}}
			if e.AutoAnswerAfter > 0 {
				acts = append(acts, StartTimer{TimerAutoAnswer, e.CallID, max(e.AutoAnswerAfter, MinAutoAnswerDelay)})
			}
			return m, acts
		case Timeout:
			if (m.State == NoAnswer || m.State == Unreachable) && e.Timer == TimerNoAnswer {
				m.State = Idle
			}
			return m, nil
		}
	case Calling:
		switch e := e.(type) {
		case LongPress:
			return m.endCall(protocol.OutcomeCancelled, protocol.ReasonCancel, Idle)
		case PeerAccepted:
			if e.CallID == m.CallID {
				m, cue := m.connecting()
				return m, []Action{StartMedia{m.CallID, cue}, StartTimer{TimerConnect, m.CallID, ConnectTimeout}}
			}
		case PeerHangup:
			if e.CallID == m.CallID && e.Reason == protocol.ReasonUnavailable {
				// Nobody could be rung: not "no answer" (nobody was asked).
				id := m.CallID
				m, acts := m.endCall(protocol.OutcomeMissed, "", Unreachable)
				return m, append(acts, StartTimer{TimerNoAnswer, id, NoAnswerDisplay}, PlayCue{CueUnreachable})
			}
			if e.CallID == m.CallID {
				id := m.CallID
				m, acts := m.endCall(protocol.OutcomeMissed, "", NoAnswer)
				return m, append(acts, StartTimer{TimerNoAnswer, id, NoAnswerDisplay}, PlayCue{CueNoAnswer})
			}
		case SignFailed:
			// The ring never left: show the failure now, not after the
			// ring timeout (there is nobody to tell).
			if e.CallID == m.CallID {
				id := m.CallID
				m, acts := m.endCall(protocol.OutcomeFailed, "", NoAnswer)
				return m, append(acts, StartTimer{TimerNoAnswer, id, NoAnswerDisplay}, PlayCue{CueNoAnswer})
			}
		case Timeout:
			if e.Timer == TimerRing && e.Token == m.CallID {
				id := m.CallID
				m, acts := m.endCall(protocol.OutcomeMissed, protocol.ReasonNoAnswer, NoAnswer)
				return m, append(acts, StartTimer{TimerNoAnswer, id, NoAnswerDisplay}, PlayCue{CueNoAnswer})
			}
		}
	case Ringing:
		switch e := e.(type) {
		case Press:
			return m.answer()
		case LongPress:
			return m.endCall(protocol.OutcomeDeclined, protocol.ReasonDecline, Idle)
		case PeerHangup:
			if e.CallID == m.CallID {
				return m.endCall(protocol.OutcomeMissed, "", Idle)
			}
		case Timeout:
			if e.Timer == TimerIncoming && e.Token == m.CallID {
				return m.endCall(protocol.OutcomeMissed, protocol.ReasonNoAnswer, Idle)
			}
			if e.Timer == TimerAutoAnswer && e.Token == m.CallID {
				return m.answer()
			}
		}
	case Connecting, InCall:
		switch e := e.(type) {
		case MediaUp:
			if e.CallID == m.CallID && m.State == Connecting {
				// The connect sound played before media opened.
				m.State = InCall
				return m, nil
			}
			if e.CallID == m.CallID {
				m.MediaDown = false
				return m, nil
			}
		case Connected:
			if m.Resuming {
				m.Online, m.Paired = true, e.Paired
				return m, []Action{SendResume{m.CallID}}
			}
		case Resumed:
			if e.CallID == m.CallID && m.State == InCall {
				// Both sides are bound again after one of them lost its
				// socket: a new network, or a server (and its TURN relay)
				// that restarted. An ICE restart finds the media path
				// afresh, with the fresh TURN credentials, rather than wait
				// for the old path to be declared dead.
				m.Resuming = false
				if e.PeerOnline {
					m.MediaDown = true
					return m.restart()
				}
				return m, nil
			}
		case ResumeRefused:
			if e.CallID == m.CallID && m.Resuming {
				return m.dropped(protocol.OutcomeInterrupted, "")
			}
		case MediaDown:
			if e.CallID == m.CallID && m.State == InCall && !m.MediaDown {
				m.MediaDown = true
				if m.Online && !m.Resuming {
					return m.restart()
				}
				return m, nil
			}
		case LongPress:
			return m.endCall(protocol.OutcomeAnswered, protocol.ReasonHangup, Idle)
		case PeerHangup:
			if e.CallID == m.CallID {
				// peer_left in a call: the other side lost its socket and
				// did not come back within the server's grace. failed: the
				// parent's media could not go on. Either way the call
				// dropped; the parent did not hang up.
				switch e.Reason {
				case protocol.ReasonPeerLeft:
					return m.dropped(protocol.OutcomeInterrupted, "")
				case protocol.ReasonFailed:
					return m.dropped(protocol.OutcomeFailed, "")
				}
				return m.endCall(protocol.OutcomeAnswered, "", Idle)
			}
		case MediaFailed:
			if e.CallID == m.CallID {
				return m.dropped(protocol.OutcomeFailed, protocol.ReasonFailed)
			}
		case SignFailed:
			if e.CallID == m.CallID {
				return m.dropped(protocol.OutcomeFailed, protocol.ReasonFailed)
			}
		case Timeout:
			if e.Timer == TimerConnect && e.Token == m.CallID && m.State == Connecting {
				return m.dropped(protocol.OutcomeFailed, protocol.ReasonFailed)
			}
			if e.Timer == TimerResume && e.Token == m.token() && m.Resuming {
				// The other side or the server never took the call back.
				return m.dropped(protocol.OutcomeInterrupted, "")
			}
			if e.Timer == TimerRestart && e.Token == m.token() && m.MediaDown {
				return m.dropped(protocol.OutcomeFailed, protocol.ReasonFailed)
			}
		}
	case PairConfirm:
		switch e := e.(type) {
		case Press:
			id := m.PairID
			m.State, m.PairID = Idle, ""
			return m, []Action{PairAccept{id}}
		case LongPress:
			id := m.PairID
			m.State, m.PairID = Idle, ""
			return m, []Action{PairReject{id, "declined"}}
		case Timeout:
			if e.Timer == TimerPair && e.Token == m.PairID {
				id := m.PairID
				m.State, m.PairID = Idle, ""
				return m, []Action{PairReject{id, "timeout"}}
			}
		}
	case Fault:
		switch e := e.(type) {
		case Connected:
			m.Online, m.Paired = true, e.Paired
		case Press:
			return m, []Action{PlayCue{CueRefused}}
		case IncomingRing:
			// It cannot ring: say so at once (the parent's page shows
			// needs repair), rather than let the parent ring into silence.
			return m, []Action{SendHangup{e.CallID, protocol.ReasonFailed}}
		}
	}
	return m, nil
}

// answer accepts the ringing call: the same path for a press and for an
// auto-answer, so the connect sound and the media gate always come first.
func (m Machine) answer() (Machine, []Action) {
	m, cue := m.connecting()
	return m, []Action{SendAccept{m.CallID}, StartMedia{m.CallID, cue}, StartTimer{TimerConnect, m.CallID, ConnectTimeout}}
}

// connecting enters Connecting, taking the budget's word for the call:
// voice only (its own light and connect sound) or not.
func (m Machine) connecting() (Machine, Cue) {
	m.State, m.Answered, m.CallVoiceOnly = Connecting, true, m.VoiceOnly
	if m.CallVoiceOnly {
		return m, CueConnectedVoice
	}
	return m, CueConnected
}

// timer starts a resume or restart timer of a new epoch: only the newest
// loss's timer can end the call.
func (m *Machine) timer(t Timer) Action {
	m.Epoch++
	return StartTimer{t, m.token(), ResumeGrace}
}

func (m Machine) token() string { return m.CallID + "#" + strconv.Itoa(m.Epoch) }

// restart makes an ICE restart offer: the media path is down while the
// parent can be reached; it must be up again within ResumeGrace.
func (m Machine) restart() (Machine, []Action) {
	t := m.timer(TimerRestart)
	return m, []Action{RestartMedia{m.CallID}, t}
}

// endCall finishes the current call: tells the peer (when reason is set),
// stops media if it was started, and logs the outcome.
func (m Machine) endCall(outcome, reason string, next State) (Machine, []Action) {
	m, acts := m.dropCall(outcome, reason)
	m.State = next
	if next == Idle {
		acts = append(acts, PlayCue{CueHangup})
		if !m.Online {
			// A call that went on without signalling (Resuming) ends
			// where the terminal is: offline.
			m.State = Offline
		}
	}
	return m, acts
}

// dropped ends a call that dropped rather than was hung up: the same as
// endCall to Idle, with the dropped sound in place of the hang-up sound.
func (m Machine) dropped(outcome, reason string) (Machine, []Action) {
	m, acts := m.endCall(outcome, reason, Idle)
	for i, a := range acts {
		if a == (PlayCue{CueHangup}) {
			acts[i] = PlayCue{CueDropped}
		}
	}
	return m, acts
}

// dropCall clears the call fields and returns the actions that end it; it
// leaves State to the caller.
func (m Machine) dropCall(outcome, reason string) (Machine, []Action) {
	if m.CallID == "" {
		return m, nil
	}
	var acts []Action
	if reason != "" {
		acts = append(acts, SendHangup{m.CallID, reason})
	}
	if m.State == Connecting || m.State == InCall {
		acts = append(acts, StopMedia{m.CallID})
	}
	acts = append(acts, CallEnded{CallID: m.CallID, Outgoing: m.Outgoing, Answered: m.Answered, Outcome: outcome})
	m.CallID, m.Outgoing, m.Answered, m.CallVoiceOnly = "", false, false, false
	m.Resuming, m.MediaDown, m.Epoch = false, false, 0
	return m, acts
}
