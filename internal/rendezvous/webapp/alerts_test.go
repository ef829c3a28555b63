package webapp_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// TestCallAlertsPhone: the Call alerts card. A page nobody touches sends
// nothing about alerts; opened by the parent it asks what reaches them; a
// number is sent only with the consent box ticked, in E.164 whatever way the
// parent typed it (every message through the real server's validator), is
// shown back masked, and is removed with one tap.
func TestCallAlertsPhone(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx, c, _ := parentPage(t, f)
	c.send(protocol.Message{Type: protocol.TypeCallLog, Calls: []protocol.CallRecord{}})
	waitText(t, ctx, "#alerts-status", "Turn on call alerts")
	c.quiet(500 * time.Millisecond)

	click(t, ctx, "#alerts summary") // fold it
	click(t, ctx, "#alerts summary") // and open it again: the parent looks
	c.expect(protocol.TypeNotifyStatus)
	c.send(protocol.Message{Type: protocol.TypeNotifyStatus, SMS: ptr(true), Voice: ptr(true)})
	waitFor(t, ctx, `!document.getElementById('sms-box').hidden`)

	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#phone-input"), "138 1234-5678"))
	click(t, ctx, "#phone-form button[type=submit]")
	waitText(t, ctx, "#phone-error", "tick the box")
	c.quiet(300 * time.Millisecond)

	click(t, ctx, "#phone-consent")
	click(t, ctx, "#phone-form button[type=submit]")
	m := c.expect(protocol.TypePhoneSet)
	if m.Phone != "+8613812345678" || m.Consent == nil || !*m.Consent {
		t.Fatalf("phone_set = %+v, want +8613812345678 with consent", m)
	}
	c.send(protocol.Message{Type: protocol.TypeNotifyStatus, SMS: ptr(true), Voice: ptr(true), PhoneHint: protocol.MaskPhone(m.Phone)})
	waitText(t, ctx, "#phone-saved-text", "+*********5678")
	waitText(t, ctx, "#phone-saved-text", "a text message")
	if eval[bool](t, ctx, `document.getElementById('phone-saved-text').textContent.includes('13812345678')`) {
		t.Fatal("the page shows the whole number back")
	}

	click(t, ctx, "#phone-remove")
	c.expect(protocol.TypePhoneClear)
	c.send(protocol.Message{Type: protocol.TypeNotifyStatus, SMS: ptr(true), Voice: ptr(true)})
	waitFor(t, ctx, `!document.getElementById('phone-form').hidden && document.getElementById('phone-saved').hidden`)
}

// TestNormalizePhone: what parents type becomes E.164, or nothing.
func TestNormalizePhone(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx := phone(t)
	do(t, ctx, chromedp.Navigate(f.URL+"/"))
	waitState(t, ctx, "pairing")
	for in, want := range map[string]string{
		"13812345678":       "+8613812345678",
		"138 1234 5678":     "+8613812345678",
		"+86 138-1234-5678": "+8613812345678",
		"008613812345678":   "+8613812345678",
		"+4915112345678":    "+4915112345678",
		"12345":             "",
		"23812345678":       "", // not a mainland mobile number, and no country code
		"+0123456789":       "",
		"call me":           "",
	} {
		got := evalAsync[string](t, ctx, `import('/push.js').then((m) => m.normalizePhone(`+jsString(in)+`) || '')`)
		if got != want {
			t.Errorf("normalizePhone(%q) = %q, want %q", in, got, want)
		}
	}
}
