package call

import (
	"reflect"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/pairing/protocol"
)

const (
	c1 = "aaaaaaaaaaaaaaaaaaaaaaaaaa"
	c2 = "bbbbbbbbbbbbbbbbbbbbbbbbbb"
	p1 = "cccccccccccccccccccccccccc"
)

func TestNext(t *testing.T) {
	idle := Machine{State: Idle, Online: true, Paired: true}
	unpaired := Machine{State: Idle, Online: true}
	calling := Machine{State: Calling, Online: true, Paired: true, CallID: c1, Outgoing: true}
	ringing := Machine{State: Ringing, Online: true, Paired: true, CallID: c1}
	connectingOut := Machine{State: Connecting, Online: true, Paired: true, CallID: c1, Outgoing: true, Answered: true}
	inCall := Machine{State: InCall, Online: true, Paired: true, CallID: c1, Answered: true}
	noAnswer := Machine{State: NoAnswer, Online: true, Paired: true}
	unreachable := Machine{State: Unreachable, Online: true, Paired: true}
	pairable := Machine{State: Idle, Online: true, Pairable: true}
	pairConfirm := Machine{State: PairConfirm, Online: true, PairID: p1, Pairable: true}
	fault := Machine{State: Fault, Online: true, Paired: true}
	with := func(m Machine, f func(*Machine)) Machine { f(&m); return m }
	resuming := Machine{State: InCall, Paired: true, CallID: c1, Answered: true, Resuming: true, Epoch: 1}
	resumeSent := with(resuming, func(m *Machine) { m.Online = true })
	resumedCall := with(resumeSent, func(m *Machine) { m.Resuming = false })

	tests := []struct {
		name  string
		from  Machine
		event Event
		want  Machine
		acts  []Action
	}{
		// Offline.
		{"offline connects paired", Machine{}, Connected{Paired: true}, idle, nil},
		{"offline connects unpaired", Machine{}, Connected{}, unpaired, nil},
		{"press while offline is refused", Machine{}, Press{c1}, Machine{}, []Action{PlayCue{CueRefused}}},
		{"long press while offline does nothing", Machine{}, LongPress{}, Machine{}, nil},
		{"disconnect while offline stays", Machine{}, Disconnected{}, Machine{}, nil},

		// Idle.
		{"press calls the parent", idle, Press{c1}, calling,
			[]Action{SendRing{c1}, StartTimer{TimerRing, c1, RingTimeout}, PlayCue{CueCalling}}},
		{"press unpaired shows no answer", unpaired, Press{c1}, Machine{State: NoAnswer, Online: true},
			[]Action{PlayCue{CueRefused}, StartTimer{TimerNoAnswer, "", NoAnswerDisplay}}},
		{"long press in idle does nothing", idle, LongPress{}, idle, nil},
		{"incoming ring rings", idle, IncomingRing{CallID: c1}, ringing,
			[]Action{StartTimer{TimerIncoming, c1, IncomingTimeout}, PlayCue{CueRing}}},
		{"stale timeout in idle is ignored", idle, Timeout{TimerRing, c1}, idle, nil},
		{"stray hangup in idle is ignored", idle, PeerHangup{c1, "hangup"}, idle, nil},
		{"stray accept in idle is ignored", idle, PeerAccepted{c1}, idle, nil},
		{"media up without a call is ignored", idle, MediaUp{c1}, idle, nil},
		{"disconnect in idle goes offline", idle, Disconnected{}, Machine{Paired: true}, nil},

		// Calling.
		{"parent accepts: media starts", calling, PeerAccepted{c1}, connectingOut,
			[]Action{StartMedia{c1, CueConnected}, StartTimer{TimerConnect, c1, ConnectTimeout}}},
		{"accept of another call is ignored", calling, PeerAccepted{c2}, calling, nil},
		{"press while calling does nothing", calling, Press{c2}, calling, nil},
		{"long press cancels", calling, LongPress{}, idle,
			[]Action{SendHangup{c1, protocol.ReasonCancel}, CallEnded{c1, true, false, protocol.OutcomeCancelled}, PlayCue{CueHangup}}},
		{"ring timeout gives up: no answer", calling, Timeout{TimerRing, c1}, noAnswer,
			[]Action{SendHangup{c1, protocol.ReasonNoAnswer}, CallEnded{c1, true, false, protocol.OutcomeMissed},
				StartTimer{TimerNoAnswer, c1, NoAnswerDisplay}, PlayCue{CueNoAnswer}}},
		{"stale ring timeout of an older call is ignored", calling, Timeout{TimerRing, c2}, calling, nil},
		{"parent declines: no answer", calling, PeerHangup{c1, protocol.ReasonDecline}, noAnswer,
			[]Action{CallEnded{c1, true, false, protocol.OutcomeMissed}, StartTimer{TimerNoAnswer, c1, NoAnswerDisplay}, PlayCue{CueNoAnswer}}},
		{"nobody can be rung: unreachable at once, not calling, not no answer", calling, PeerHangup{c1, protocol.ReasonUnavailable}, unreachable,
			[]Action{CallEnded{c1, true, false, protocol.OutcomeMissed}, StartTimer{TimerNoAnswer, c1, NoAnswerDisplay}, PlayCue{CueUnreachable}}},
		{"the ring could not be signed: no answer at once, nothing sent", calling, SignFailed{c1}, noAnswer,
			[]Action{CallEnded{c1, true, false, protocol.OutcomeFailed}, StartTimer{TimerNoAnswer, c1, NoAnswerDisplay}, PlayCue{CueNoAnswer}}},
		{"media failure while calling is ignored", calling, MediaFailed{c1}, calling, nil},
		{"a ring from another call while calling is busy", calling, IncomingRing{CallID: c2}, calling,
			[]Action{SendHangup{c2, protocol.ReasonBusy}}},
		{"disconnect while calling goes offline with the no-network cue", calling, Disconnected{}, Machine{Paired: true},
			[]Action{CallEnded{c1, true, false, protocol.OutcomeFailed}, PlayCue{CueRefused}}},

		// No answer.
		{"no answer display ends", noAnswer, Timeout{TimerNoAnswer, c1}, idle, nil},
		{"press during no answer calls again", noAnswer, Press{c2},
			Machine{State: Calling, Online: true, Paired: true, CallID: c2, Outgoing: true},
			[]Action{SendRing{c2}, StartTimer{TimerRing, c2, RingTimeout}, PlayCue{CueCalling}}},
		{"long press during no answer returns to ready", noAnswer, LongPress{}, idle, nil},

		// Unreachable.
		{"unreachable display ends", unreachable, Timeout{TimerNoAnswer, c1}, idle, nil},
		{"press during unreachable tries again", unreachable, Press{c2},
			Machine{State: Calling, Online: true, Paired: true, CallID: c2, Outgoing: true},
			[]Action{SendRing{c2}, StartTimer{TimerRing, c2, RingTimeout}, PlayCue{CueCalling}}},
		{"long press during unreachable returns to ready", unreachable, LongPress{}, idle, nil},
		{"the parent's ring during unreachable rings", unreachable, IncomingRing{CallID: c1}, ringing,
			[]Action{StartTimer{TimerIncoming, c1, IncomingTimeout}, PlayCue{CueRing}}},
		{"disconnect during unreachable goes offline", unreachable, Disconnected{}, Machine{Paired: true}, nil},

		// Ringing.
		{"press answers", ringing, Press{c2},
			Machine{State: Connecting, Online: true, Paired: true, CallID: c1, Answered: true},
			[]Action{SendAccept{c1}, StartMedia{c1, CueConnected}, StartTimer{TimerConnect, c1, ConnectTimeout}}},
		{"long press declines", ringing, LongPress{}, idle,
			[]Action{SendHangup{c1, protocol.ReasonDecline}, CallEnded{c1, false, false, protocol.OutcomeDeclined}, PlayCue{CueHangup}}},
		{"parent cancels: missed", ringing, PeerHangup{c1, protocol.ReasonCancel}, idle,
			[]Action{CallEnded{c1, false, false, protocol.OutcomeMissed}, PlayCue{CueHangup}}},
		{"incoming timeout", ringing, Timeout{TimerIncoming, c1}, idle,
			[]Action{SendHangup{c1, protocol.ReasonNoAnswer}, CallEnded{c1, false, false, protocol.OutcomeMissed}, PlayCue{CueHangup}}},
		{"same ring repeated is ignored", ringing, IncomingRing{CallID: c1}, ringing, nil},
		{"disconnect while ringing: the ring drops, and stops", ringing, Disconnected{}, Machine{Paired: true},
			[]Action{CallEnded{c1, false, false, protocol.OutcomeFailed}, PlayCue{CueDropped}}},

		// Connecting and in call.
		{"media up: in call", connectingOut, MediaUp{c1},
			Machine{State: InCall, Online: true, Paired: true, CallID: c1, Outgoing: true, Answered: true}, nil},
		{"connect timeout fails the call: dropped", connectingOut, Timeout{TimerConnect, c1}, idle,
			[]Action{SendHangup{c1, protocol.ReasonFailed}, StopMedia{c1}, CallEnded{c1, true, true, protocol.OutcomeFailed}, PlayCue{CueDropped}}},
		{"connect timeout after media is up is ignored", inCall, Timeout{TimerConnect, c1}, inCall, nil},
		{"press in call does nothing", inCall, Press{c2}, inCall, nil},
		{"long press hangs up", inCall, LongPress{}, idle,
			[]Action{SendHangup{c1, protocol.ReasonHangup}, StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeAnswered}, PlayCue{CueHangup}}},
		{"long press while connecting hangs up", connectingOut, LongPress{}, idle,
			[]Action{SendHangup{c1, protocol.ReasonHangup}, StopMedia{c1}, CallEnded{c1, true, true, protocol.OutcomeAnswered}, PlayCue{CueHangup}}},
		{"parent hangs up", inCall, PeerHangup{c1, protocol.ReasonHangup}, idle,
			[]Action{StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeAnswered}, PlayCue{CueHangup}}},
		{"parent never came back (the server's grace ran out): interrupted, as the server logs it, and dropped", inCall, PeerHangup{c1, protocol.ReasonPeerLeft}, idle,
			[]Action{StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeInterrupted}, PlayCue{CueDropped}}},
		{"the parent's media failed: the call dropped, logged failed as the server logs it", inCall, PeerHangup{c1, protocol.ReasonFailed}, idle,
			[]Action{StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeFailed}, PlayCue{CueDropped}}},
		{"hangup of another call is ignored", inCall, PeerHangup{c2, protocol.ReasonHangup}, inCall, nil},
		{"media failure ends the call: dropped", inCall, MediaFailed{c1}, idle,
			[]Action{SendHangup{c1, protocol.ReasonFailed}, StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeFailed}, PlayCue{CueDropped}}},
		{"the accept could not be signed: the call fails at once and the parent's ring stops", Machine{State: Connecting, Online: true, Paired: true, CallID: c1, Answered: true},
			SignFailed{c1}, idle,
			[]Action{SendHangup{c1, protocol.ReasonFailed}, StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeFailed}, PlayCue{CueDropped}}},
		{"a second ring in call is busy", inCall, IncomingRing{CallID: c2}, inCall, []Action{SendHangup{c2, protocol.ReasonBusy}}},
		// Resuming (issue 11: a server restart ended every call).
		{"disconnect in call keeps the call and waits to resume it", inCall, Disconnected{}, resuming,
			[]Action{StartTimer{TimerResume, c1 + "#1", ResumeGrace}}},
		{"disconnect while connecting still ends the call: dropped", connectingOut, Disconnected{}, Machine{Paired: true},
			[]Action{StopMedia{c1}, CallEnded{c1, true, true, protocol.OutcomeFailed}, PlayCue{CueDropped}}},
		{"a second disconnect while resuming changes nothing", resuming, Disconnected{}, resuming, nil},
		{"reconnected: resume the call", resuming, Connected{Paired: true}, resumeSent, []Action{SendResume{c1}}},
		{"resumed with the parent there: ICE restart, media must be back within the grace", resumeSent, Resumed{c1, true},
			with(resumedCall, func(m *Machine) { m.MediaDown, m.Epoch = true, 2 }),
			[]Action{RestartMedia{c1}, StartTimer{TimerRestart, c1 + "#2", ResumeGrace}}},
		{"resumed, the parent not yet back: the call goes on, waiting for it", resumeSent, Resumed{c1, false}, resumedCall, nil},
		{"the parent resumed (its network changed): ICE restart", inCall, Resumed{c1, true},
			with(inCall, func(m *Machine) { m.MediaDown, m.Epoch = true, 1 }),
			[]Action{RestartMedia{c1}, StartTimer{TimerRestart, c1 + "#1", ResumeGrace}}},
		{"resume refused: the call is over, dropped", resumeSent, ResumeRefused{c1}, idle,
			[]Action{StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeInterrupted}, PlayCue{CueDropped}}},
		{"never resumed while offline: ends interrupted, offline, with the dropped sound", resuming, Timeout{TimerResume, c1 + "#1"}, Machine{Paired: true},
			[]Action{StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeInterrupted}, PlayCue{CueDropped}}},
		{"never resumed though connected: ends interrupted, dropped", resumeSent, Timeout{TimerResume, c1 + "#1"}, idle,
			[]Action{StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeInterrupted}, PlayCue{CueDropped}}},
		{"the resume timer of an earlier loss is ignored", with(resuming, func(m *Machine) { m.Epoch = 2 }), Timeout{TimerResume, c1 + "#1"},
			with(resuming, func(m *Machine) { m.Epoch = 2 }), nil},
		{"the resume timer after the resume is ignored", resumedCall, Timeout{TimerResume, c1 + "#1"}, resumedCall, nil},
		{"long press while resuming hangs up and shows offline", resuming, LongPress{}, Machine{Paired: true},
			[]Action{SendHangup{c1, protocol.ReasonHangup}, StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeAnswered}, PlayCue{CueHangup}}},
		{"media down while connected: ICE restart", inCall, MediaDown{c1}, with(inCall, func(m *Machine) { m.MediaDown, m.Epoch = true, 1 }),
			[]Action{RestartMedia{c1}, StartTimer{TimerRestart, c1 + "#1", ResumeGrace}}},
		{"media down while resuming: restart once resumed", resuming, MediaDown{c1}, with(resuming, func(m *Machine) { m.MediaDown = true }), nil},
		{"media back: the restart timer is moot", with(inCall, func(m *Machine) { m.MediaDown, m.Epoch = true, 1 }), MediaUp{c1}, with(inCall, func(m *Machine) { m.Epoch = 1 }), nil},
		{"media not back within the grace: the call fails, dropped", with(inCall, func(m *Machine) { m.MediaDown, m.Epoch = true, 1 }), Timeout{TimerRestart, c1 + "#1"}, idle,
			[]Action{SendHangup{c1, protocol.ReasonFailed}, StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeFailed}, PlayCue{CueDropped}}},
		{"a resume answer for another call is ignored", resumeSent, Resumed{c2, true}, resumeSent, nil},

		// Pairing.
		{"valid pairing request asks for a press", pairable, PairRequest{p1, true}, pairConfirm,
			[]Action{StartTimer{TimerPair, p1, PairConfirmTimeout}, PlayCue{CueRing}}},
		{"bad proof is rejected at once", pairable, PairRequest{p1, false}, pairable, []Action{PairReject{p1, "bad_secret"}}},
		{"outside the window a valid request is refused silently", unpaired, PairRequest{p1, true}, unpaired,
			[]Action{PairReject{p1, "not_pairable"}}},
		{"outside the window a bad proof is not_pairable too", unpaired, PairRequest{p1, false}, unpaired,
			[]Action{PairReject{p1, "not_pairable"}}},
		{"paired terminal refuses pairing", idle, PairRequest{p1, true}, idle, []Action{PairReject{p1, "not_pairable"}}},
		{"pairing during a call is refused", calling, PairRequest{p1, true}, calling, []Action{PairReject{p1, "not_pairable"}}},
		{"press confirms pairing", pairConfirm, Press{c1}, pairable, []Action{PairAccept{p1}}},
		{"long press declines pairing", pairConfirm, LongPress{}, pairable, []Action{PairReject{p1, "declined"}}},
		{"pairing times out", pairConfirm, Timeout{TimerPair, p1}, pairable, []Action{PairReject{p1, "timeout"}}},
		{"stale pairing timeout ignored", pairConfirm, Timeout{TimerPair, c1}, pairConfirm, nil},
		{"a retried request replaces the waiting one", pairConfirm, PairRequest{c2, true},
			Machine{State: PairConfirm, Online: true, PairID: c2, Pairable: true},
			[]Action{StartTimer{TimerPair, c2, PairConfirmTimeout}, PlayCue{CueRing}}},
		{"the replaced request's timeout is ignored", Machine{State: PairConfirm, Online: true, PairID: c2, Pairable: true}, Timeout{TimerPair, p1},
			Machine{State: PairConfirm, Online: true, PairID: c2, Pairable: true}, nil},
		{"a bad retried proof leaves the waiting request", pairConfirm, PairRequest{c2, false}, pairConfirm, []Action{PairReject{c2, "bad_secret"}}},
		{"disconnect during pairing: the pairing ring drops", pairConfirm, Disconnected{}, Machine{Pairable: true}, []Action{PlayCue{CueDropped}}},
		{"pair done marks paired, closes the window and sounds paired", pairable, PairDone{}, Machine{State: Idle, Online: true, Paired: true},
			[]Action{PlayCue{CuePaired}}},
		{"the window opens", unpaired, PairWindow{Open: true}, pairable, nil},
		{"the window closes", pairable, PairWindow{Open: false}, unpaired, nil},
		{"the window closing leaves a waiting request to its press", pairConfirm, PairWindow{Open: false},
			Machine{State: PairConfirm, Online: true, PairID: p1}, nil},

		// Factory reset.
		{"reset when idle unpairs", idle, FactoryReset{}, unpaired, nil},
		{"reset offline unpairs and stays offline", Machine{Paired: true}, FactoryReset{}, Machine{}, nil},
		{"reset in fault keeps fault", fault, FactoryReset{}, Machine{State: Fault, Online: true}, nil},
		{"reset mid-call ends it without a hangup to the old parent", inCall, FactoryReset{}, unpaired,
			[]Action{StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeFailed}}},
		{"reset while a pairing waits declines it", pairConfirm, FactoryReset{}, pairable,
			[]Action{PairReject{p1, "declined"}}},

		// Auto-answer (reunion window).
		{"auto-answer ring rings and arms the answer timer", idle, IncomingRing{CallID: c1, AutoAnswerAfter: 5 * time.Second}, ringing,
			[]Action{StartTimer{TimerIncoming, c1, IncomingTimeout}, PlayCue{CueRing}, StartTimer{TimerAutoAnswer, c1, 5 * time.Second}}},
		{"auto-answer never sooner than the minimum", idle, IncomingRing{CallID: c1, AutoAnswerAfter: time.Millisecond}, ringing,
			[]Action{StartTimer{TimerIncoming, c1, IncomingTimeout}, PlayCue{CueRing}, StartTimer{TimerAutoAnswer, c1, MinAutoAnswerDelay}}},
		{"auto-answer timer answers like a press", ringing, Timeout{TimerAutoAnswer, c1},
			Machine{State: Connecting, Online: true, Paired: true, CallID: c1, Answered: true},
			[]Action{SendAccept{c1}, StartMedia{c1, CueConnected}, StartTimer{TimerConnect, c1, ConnectTimeout}}},
		{"auto-answer timer of another call is ignored", ringing, Timeout{TimerAutoAnswer, c2}, ringing, nil},
		{"auto-answer timer after the ring ended is ignored", idle, Timeout{TimerAutoAnswer, c1}, idle, nil},
		{"auto-answer timer after a press answered is ignored",
			Machine{State: Connecting, Online: true, Paired: true, CallID: c1, Answered: true}, Timeout{TimerAutoAnswer, c1},
			Machine{State: Connecting, Online: true, Paired: true, CallID: c1, Answered: true}, nil},
		{"auto-answer ring in fault is refused at once", fault, IncomingRing{CallID: c1, AutoAnswerAfter: 5 * time.Second}, fault,
			[]Action{SendHangup{c1, protocol.ReasonFailed}}},

		// Fault.
		{"fault during a call ends it: dropped", inCall, FaultRaised{}, fault,
			[]Action{SendHangup{c1, protocol.ReasonFailed}, StopMedia{c1}, CallEnded{c1, false, true, protocol.OutcomeFailed}, PlayCue{CueDropped}}},
		{"fault while ringing: the ring drops, and stops", ringing, FaultRaised{}, fault,
			[]Action{SendHangup{c1, protocol.ReasonFailed}, CallEnded{c1, false, false, protocol.OutcomeFailed}, PlayCue{CueDropped}}},
		{"fault while idle: no call, no sound", idle, FaultRaised{}, fault, nil},
		{"press in fault is refused", fault, Press{c1}, fault, []Action{PlayCue{CueRefused}}},
		{"the parent's ring in fault is refused at once (it cannot ring): the page hears failed, not silence", fault, IncomingRing{CallID: c1}, fault,
			[]Action{SendHangup{c1, protocol.ReasonFailed}}},
		{"fault cleared while online", fault, FaultCleared{}, idle, nil},
		{"fault cleared while offline", Machine{State: Fault, Paired: true}, FaultCleared{}, Machine{Paired: true}, nil},
		{"disconnect in fault keeps fault", fault, Disconnected{}, Machine{State: Fault, Paired: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, acts := Next(tt.from, tt.event)
			if got != tt.want {
				t.Errorf("state: got %+v, want %+v", got, tt.want)
			}
			if !reflect.DeepEqual(acts, tt.acts) {
				t.Errorf("actions:\n got  %#v\n want %#v", acts, tt.acts)
			}
		})
	}
}

// TestPressesNeverHarm drives every state with presses at odd moments and
// checks the invariant the child relies on: a short press never ends a call
// that is in progress, and a long press always leaves no call behind.
func TestPressesNeverHarm(t *testing.T) {
	states := []Machine{
		{}, {State: Idle, Online: true, Paired: true},
		{State: Calling, Online: true, Paired: true, CallID: c1, Outgoing: true},
		{State: Ringing, Online: true, Paired: true, CallID: c1},
		{State: Connecting, Online: true, Paired: true, CallID: c1, Answered: true},
		{State: InCall, Online: true, Paired: true, CallID: c1, Answered: true},
		{State: NoAnswer, Online: true, Paired: true},
		{State: Unreachable, Online: true, Paired: true},
		{State: PairConfirm, Online: true, PairID: p1},
		{State: Fault, Online: true, Paired: true},
	}
	for _, m := range states {
		t.Run(m.State.String(), func(t *testing.T) {
			after, acts := Next(m, Press{c2})
			for _, a := range acts {
				if h, ok := a.(SendHangup); ok {
					t.Errorf("short press sent %+v", h)
				}
				if _, ok := a.(StopMedia); ok {
					t.Errorf("short press stopped media")
				}
			}
			if m.CallID != "" && after.CallID != m.CallID {
				t.Errorf("short press changed call %q to %q", m.CallID, after.CallID)
			}
			after, _ = Next(m, LongPress{})
			if after.CallID != "" {
				t.Errorf("long press left call %q in state %v", after.CallID, after.State)
			}
			if after.State == Calling || after.State == Ringing || after.State == InCall || after.State == Connecting {
				t.Errorf("long press left the terminal in %v", after.State)
			}
		})
	}
}

func TestPatternIsAFunctionOfState(t *testing.T) {
	want := map[State]device.Pattern{
		Offline: device.Offline, Idle: device.Ready, Calling: device.Calling, Ringing: device.Ringing,
		Connecting: device.InCall, InCall: device.InCall, NoAnswer: device.NoAnswer,
		PairConfirm: device.Pairing, Fault: device.Fault, Unreachable: device.Unreachable,
	}
	seen := map[device.Pattern]bool{}
	for s, p := range want {
		if got := s.Pattern(); got != p {
			t.Errorf("%v.Pattern() = %q, want %q", s, got, p)
		}
		seen[p] = true
	}
	// Eight distinct things a child must tell apart, plus pairing.
	if len(seen) != 9 {
		t.Errorf("states map to %d distinct patterns, want 9", len(seen))
	}
}

// TestMachinePattern: only an idle, unpaired terminal with its window open
// shows "pairable"; every other machine shows its state's pattern.
func TestMachinePattern(t *testing.T) {
	tests := []struct {
		m    Machine
		want device.Pattern
	}{
		{Machine{State: Idle, Online: true, Pairable: true}, device.Pairable},
		{Machine{State: Idle, Online: true}, device.Ready},
		{Machine{State: Idle, Online: true, Paired: true, Pairable: true}, device.Ready},
		{Machine{State: Offline, Pairable: true}, device.Offline},
		{Machine{State: PairConfirm, Online: true, Pairable: true, PairID: p1}, device.Pairing},
		{Machine{State: NoAnswer, Online: true, Pairable: true}, device.NoAnswer},
		{Machine{State: Fault, Online: true, Pairable: true}, device.Fault},
	}
	for _, tt := range tests {
		if got := tt.m.Pattern(); got != tt.want {
			t.Errorf("%+v.Pattern() = %q, want %q", tt.m, got, tt.want)
		}
	}
}

// TestAutoAnswerTiming plays a reunion-window ring through time: nothing is
// answered before the ring has sounded for the configured delay, and the
// answer then is exactly a press's. The timers fire in the order a clock
// would fire them.
func TestAutoAnswerTiming(t *testing.T) {
	idle := Machine{State: Idle, Online: true, Paired: true}
	for _, delay := range []time.Duration{0, time.Second, MinAutoAnswerDelay, 5 * time.Second, 30 * time.Second} {
		m, acts := Next(idle, IncomingRing{CallID: c1, AutoAnswerAfter: delay})
		timers := map[Timer]time.Duration{}
		cued := false
		for _, a := range acts {
			switch a := a.(type) {
			case StartTimer:
				timers[a.Timer] = a.After
			case PlayCue:
				cued = cued || a.Cue == CueRing
			}
		}
		if !cued {
			t.Fatalf("delay %v: ring without the ring sound: %#v", delay, acts)
		}
		after, armed := timers[TimerAutoAnswer]
		if delay == 0 {
			if armed {
				t.Errorf("no reunion window: an auto-answer timer of %v was armed", after)
			}
			continue
		}
		if !armed || after < MinAutoAnswerDelay || (delay >= MinAutoAnswerDelay && after != delay) {
			t.Fatalf("delay %v: auto-answer timer %v (armed %v), want max(delay, %v)", delay, after, armed, MinAutoAnswerDelay)
		}
		// The clock advances: whichever of the two timers is due first fires.
		if timers[TimerIncoming] < after {
			m, _ = Next(m, Timeout{TimerIncoming, c1})
			if m.State != Idle {
				t.Errorf("delay %v: ring ran out, state %v", delay, m.State)
			}
			continue
		}
		m, acts = Next(m, Timeout{TimerAutoAnswer, c1})
		if m.State != Connecting || !reflect.DeepEqual(acts[:2], []Action{SendAccept{c1}, StartMedia{c1, CueConnected}}) {
			t.Errorf("delay %v: after the delay state %v, actions %#v; want accept then media through the connect sound", delay, m.State, acts)
		}
	}
}

// TestChildTellsApart: what a child must tell apart without reading differs
// in both light and sound: a call that reaches nobody is not "calling" and
// not "no answer"; a call that drops is not one hung up.
func TestChildTellsApart(t *testing.T) {
	calling := Machine{State: Calling, Online: true, Paired: true, CallID: c1, Outgoing: true}
	inCall := Machine{State: InCall, Online: true, Paired: true, CallID: c1, Answered: true}
	look := func(from Machine, e Event) (device.Pattern, Cue) {
		m, acts := Next(from, e)
		var cue Cue
		for _, a := range acts {
			if p, ok := a.(PlayCue); ok {
				cue = p.Cue
			}
		}
		return m.Pattern(), cue
	}
	_, callingCue := look(Machine{State: Idle, Online: true, Paired: true}, Press{c1})
	pairs := []struct {
		name string
		from Machine
		a, b Event // b nil: the state from, with bCue its sound
		bCue Cue
		// afterwards: both end where the terminal is ready again, so
		// only the sound tells them apart.
		afterwards bool
	}{
		{"unreachable / calling", calling, PeerHangup{c1, protocol.ReasonUnavailable}, nil, callingCue, false},
		{"unreachable / no answer", calling, PeerHangup{c1, protocol.ReasonUnavailable}, Timeout{TimerRing, c1}, "", false},
		{"dropped / hung up", inCall, PeerHangup{c1, protocol.ReasonPeerLeft}, PeerHangup{c1, protocol.ReasonHangup}, "", true},
		{"dropped / hung up here", inCall, MediaFailed{c1}, LongPress{}, "", true},
	}
	for _, p := range pairs {
		pa, ca := look(p.from, p.a)
		pb, cb := p.from.Pattern(), p.bCue
		if p.b != nil {
			pb, cb = look(p.from, p.b)
		}
		if !p.afterwards && pa == pb {
			t.Errorf("%s: both show %q", p.name, pa)
		}
		if ca == "" || ca == cb {
			t.Errorf("%s: sounds %q and %q, want two different sounds", p.name, ca, cb)
		}
	}
}
