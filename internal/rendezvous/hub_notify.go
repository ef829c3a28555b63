package rendezvous

import (
	"errors"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// What the hub does so that a parent whose page is closed still hears the
// child (docs/notifications.md): a child's ring wakes the parent's browsers
// by Web Push and, unanswered after notifier.sms_after, texts the parent's
// number; a call that ends missed pushes "missed" and, where the programme
// wants it, calls the number. None of it waits: the pusher and the notifier
// queue (outbox.go), and a ring goes out exactly as it would without them.

// notifyTypes are the parent's notification settings messages.
var notifyTypes = map[string]bool{
	protocol.TypePushSubscribe: true, protocol.TypePushUnsubscribe: true,
	protocol.TypePhoneSet: true, protocol.TypePhoneClear: true, protocol.TypeNotifyStatus: true,
}

// handleNotify applies a parent's notification setting and answers with
// notify_status. h.mu is held.
func (h *hub) handleNotify(s *session, m protocol.Message) {
	var subscribed *bool
	switch m.Type {
	case protocol.TypePushSubscribe:
		p := h.srv.push
		if p == nil {
			s.sendError(protocol.ErrCodeNotAllowed, "this server sends no Web Push", m)
			return
		}
		if !p.hostAllowed(m.Endpoint) {
			s.log.Warn("push subscription for a push service not in push.endpoint_hosts refused", "push_host", endpointHost(m.Endpoint))
			s.sendError(protocol.ErrCodeNotAllowed, "this server does not post to that push service", m)
			return
		}
		sub := PushSubscription{Endpoint: m.Endpoint, P256DH: m.P256DH, Auth: m.Auth}
		if err := h.store.PutPushSubscription(s.parentID, sub, h.now()); err != nil {
			s.log.Error("keep push subscription", "err", err)
			s.sendError(protocol.ErrCodeInternal, "could not keep the subscription", m)
			return
		}
		s.log.Info("push subscription kept", "push_host", endpointHost(m.Endpoint))
		subscribed = boolp(true)
	case protocol.TypePushUnsubscribe:
		if _, err := h.store.DeletePushSubscription(s.parentID, m.Endpoint); err != nil {
			s.log.Error("forget push subscription", "err", err)
			s.sendError(protocol.ErrCodeInternal, "could not forget the subscription", m)
			return
		}
		s.log.Info("push subscription removed by the page", "push_host", endpointHost(m.Endpoint))
		subscribed = boolp(false)
	case protocol.TypePhoneSet:
		if h.srv.notifier == nil {
			s.sendError(protocol.ErrCodeNotAllowed, "this server sends no text messages", m)
			return
		}
		if err := h.store.PutPhone(s.parentID, Phone{Number: m.Phone, ConsentAt: h.now()}); err != nil {
			s.log.Error("keep phone", "err", err)
			s.sendError(protocol.ErrCodeInternal, "could not keep the number", m)
			return
		}
		s.log.Info("phone number kept, with consent", "phone", protocol.MaskPhone(m.Phone))
	case protocol.TypePhoneClear:
		if err := h.store.ClearPhone(s.parentID, h.now()); err != nil {
			s.log.Error("forget phone", "err", err)
			s.sendError(protocol.ErrCodeInternal, "could not forget the number", m)
			return
		}
		s.log.Info("phone number removed by the parent (the programme's number for them, if any, is not used either)")
	}
	s.send(h.notifyStatus(s.parentID, subscribed))
}

// notifyStatus says what will reach the parent: Web Push (the key to
// subscribe with), text messages and calls (offered, and the number kept,
// masked).
func (h *hub) notifyStatus(parentID string, subscribed *bool) protocol.Message {
	m := protocol.Message{Type: protocol.TypeNotifyStatus, Subscribed: subscribed}
	if h.srv.push != nil {
		m.VAPIDKey = h.srv.push.pub
	}
	n := h.srv.notifier
	m.SMS, m.Voice = boolp(n != nil), boolp(n != nil && n.cfg.VoiceOnMissed)
	if phone := h.phone(parentID); phone != "" {
		// Theirs or the programme's (a batch's CSV): either way the
		// parent sees which number will be texted, and may remove it.
		m.PhoneHint = protocol.MaskPhone(phone)
	}
	return m
}

// reachable reports whether a parent with no page open can still be told
// of a ring: a push subscription, or a number and a notifier. Then a
// child's ring rings on (for the parent to open the page and answer)
// instead of ending as "unavailable" at once.
// It also returns the number (phone), for the ring's escalation. It reads
// the registry: not under the hub's lock (ringReads).
func (h *hub) reachable(parentID string) (ok bool, phone string) {
	phone = h.phone(parentID)
	if phone != "" {
		return true, phone
	}
	if h.srv.push != nil {
		subs, err := h.store.PushSubscriptions(parentID)
		if err != nil {
			h.log.Error("read push subscriptions", "parent", parentID, "err", err)
		}
		return len(subs) > 0, ""
	}
	return false, ""
}

// phone is the number the notifier texts and calls for a parent, if it is
// on: the one the parent gave on the page; else the one the programme's
// batch gave for their child's unit (the CSV's parent_phone, imported with
// the manifest: fleet.go's ImportPhones), unless the parent removed it.
func (h *hub) phone(parentID string) string {
	if h.srv.notifier == nil {
		return ""
	}
	p, err := h.store.PhoneRecord(parentID)
	switch {
	case err == nil && p.Number != "":
		return p.Number
	case err == nil: // they removed their number, and with it the programme's
		return ""
	case !errors.Is(err, ErrNotFound):
		h.log.Error("read phone", "parent", parentID, "err", err)
		return ""
	}
	if h.srv.fleet == nil {
		return ""
	}
	parent, err := h.store.Parent(parentID)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			h.log.Error("read parent", "parent", parentID, "err", err)
		}
		return ""
	}
	if d, err := h.store.Device(parent.DeviceID); err != nil || d.Unpaired {
		// The number was for the family the unit was shipped to; a unit
		// paired again may be with another.
		return ""
	}
	return h.srv.fleet.phone(parent.DeviceID)
}

// notifyRing starts what a child's ring sets off beyond the sockets: the
// push now, the SMS if nobody answers in time. h.mu is held.
func (h *hub) notifyRing(c *call) {
	if !c.fromTerminal {
		return
	}
	if h.srv.push != nil {
		h.srv.push.ring(c.parentID, c.id, c.rec.StartedAt)
	}
	if c.phone != "" {
		c.escalation = time.AfterFunc(h.srv.notifier.cfg.SMSAfter, func() { h.escalate(c) })
	}
}

// escalate texts the parent of a ring still unanswered.
func (h *hub) escalate(c *call) {
	// The number is read again (the parent may have removed it while it
	// rang), before the lock: the timer's goroutine may wait on the
	// registry, the hub may not.
	phone := h.phone(c.parentID)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.calls[c.id] != c || c.answered {
		return
	}
	if phone != "" {
		h.srv.notifier.notify(c.parentID, phone, EventRingUnanswered, ChannelSMS, c.id, c.rec.StartedAt)
	}
}

// stopEscalation stops a ring's SMS timer. h.mu is held.
func (h *hub) stopEscalation(c *call) {
	if c.escalation != nil {
		c.escalation.Stop()
	}
}

// notifyAnswered stops a ring's escalation and silences the ring on the
// parent's browsers that were woken for it. h.mu is held.
func (h *hub) notifyAnswered(c *call) {
	h.stopEscalation(c)
	if c.fromTerminal && h.srv.push != nil {
		h.srv.push.answered(c.parentID, c.id, c.rec.StartedAt)
	}
}

// notifyEnd tells the parent of a child's call that ended missed: a push,
// and a voice call where the programme enables it. h.mu is held, and c's
// outcome is decided.
func (h *hub) notifyEnd(c *call) {
	h.stopEscalation(c)
	if !c.fromTerminal || c.rec.Outcome != protocol.OutcomeMissed {
		return
	}
	if h.srv.push != nil {
		h.srv.push.missed(c.parentID, c.id, c.rec.StartedAt)
	}
	if n := h.srv.notifier; n != nil && n.cfg.VoiceOnMissed && c.phone != "" {
		// The number is read again off the lock: one the parent removed
		// while it rang is not called.
		parentID, id, at := c.parentID, c.id, c.rec.StartedAt
		go func() {
			if phone := h.phone(parentID); phone != "" {
				n.notify(parentID, phone, EventMissedCall, ChannelVoice, id, at)
			}
		}()
	}
}
