package terminal

import (
	"github.com/tuanju/tuanju/internal/call"
	"github.com/tuanju/tuanju/internal/protocol"
	"github.com/tuanju/tuanju/pairing"
)

// factoryReset is the ≥ 10 s press: it erases the pairing and the call log
// (terminalstore.FactoryReset keeps the device's identity and the label's
// pairing secret), forgets the parent's key, tells the server with unpair — now, or first thing on the next
// login if the server is out of reach — and opens the pairing window. In a
// call, the long press two seconds in has already hung up.
func (t *Terminal) factoryReset() {
	old := t.parentID
	if err := t.d.Store.FactoryReset(); err != nil {
		t.log.Error("factory reset failed; nothing was erased", "err", err)
		t.do(call.PlayCue{Cue: call.CueRefused})
		return
	}
	t.unpairPending = true
	t.parentID = ""
	t.tr.parentKey, t.tr.pairHS, t.tr.pairParent = nil, nil, nil
	t.tr.pairReq = map[string]pairing.Request{}
	t.log.Warn("factory reset: pairing and call log erased", "old_parent_id", old)
	t.step(call.FactoryReset{})
	t.sendUnpair()
	t.openPairWindow("factory reset")
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
	t.conn.send(protocol.Message{Type: protocol.TypeUnpair})
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
