package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// notification is what the service worker's registration.getNotifications()
// says about one notification.
type notification struct {
	Title              string   `json:"title"`
	Body               string   `json:"body"`
	Tag                string   `json:"tag"`
	RequireInteraction bool     `json:"requireInteraction"`
	Vibrate            []int    `json:"vibrate"`
	Actions            []string `json:"actions"`
	Data               struct {
		Type   string `json:"type"`
		CallID string `json:"call_id"`
		At     string `json:"at"`
	} `json:"data"`
}

const listNotifications = `navigator.serviceWorker.getRegistration('/').then((r) => r.getNotifications()).then((ns) => ns.map((n) => ({
	title: n.title, body: n.body, tag: n.tag, requireInteraction: n.requireInteraction, vibrate: Array.from(n.vibrate || []),
	actions: (n.actions || []).map((a) => a.action), data: n.data})))`

// TestBrowserPushRingsClosedPage: the parent's page is closed. The child
// presses the button; the server, which can wake the parent by Web Push,
// keeps the call ringing. A push delivered to the page's real service worker
// in Chromium (DevTools' ServiceWorker.deliverPushMessage: Chromium's own
// push service cannot be reached from a test) shows the call notification,
// in Chinese as the browser asks (the service worker has no page to ask):
// it rings (vibration pattern, requireInteraction), offers 接听 (answer) and
// 拒绝 (decline). A tap on Answer opens the page at the call, which answers
// by itself: the terminal goes into the call. A second call the child gives
// up on is pushed as missed and shows the time it came.
func TestBrowserPushRingsClosedPage(t *testing.T) {
	closed := closedPort(t)
	r := newRig(t, func(c *rendezvous.Config) {
		c.Push.Subject = "mailto:ops@tuanju.example"
		c.Push.EndpointHosts = []string{"127.0.0.1"}
	})
	// Leaving the page must close it, as closing the tab does on a phone
	// (not keep it whole in the back/forward cache, socket and all).
	page := pairBrowser(t, r, chromedp.Flag("disable-features", "BackForwardCache"), browsertest.Languages("zh-CN,zh"))
	origin := r.srv.URL

	// The parent allowed notifications; this is the page's worker.
	if err := chromedp.Do(page, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: "notifications"}, Setting: "granted", Origin: origin})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	reg := registrationID(t, page, origin)

	// Chromium cannot subscribe here (no push service). The server keeps a
	// subscription for this parent all the same, at a closed loopback port,
	// so that it rings the parent with no page open.
	parentID, err := chromedp.Run(page, chromedp.Evaluate[string](`JSON.parse(localStorage.getItem('tuanju.credential')).parent_id`))
	if err != nil || !protocol.ValidID(parentID) {
		t.Fatalf("parent ID from the page: %q, %v", parentID, err)
	}
	if err := r.srv.Registry().PutPushSubscription(parentID, rendezvous.PushSubscription{
		Endpoint: "https://" + closed + "/push",
		P256DH:   "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU",
		Auth:     "AAAAAAAAAAAAAAAAAAAAAA",
	}, time.Now()); err != nil {
		t.Fatal(err)
	}

	// The parent closes the page.
	if _, err := chromedp.Run(page, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the terminal sees its parent offline", func() bool { return !r.term.Status().PeerOnline })

	// The child calls: the server rings on for a parent it can wake.
	id := childRingsPushed(t, r, parentID)
	deliverPush(t, page, origin, reg, "ring", id)

	// Look at the notification from a plain page of the origin (not the
	// app, which would log in and ring by itself).
	if _, err := chromedp.Run(page, chromedp.Navigate(origin+"/healthz")); err != nil {
		t.Fatal(err)
	}
	n := waitNotification(t, page, "ring", id)
	if n.Title != "孩子来电" || n.Body != "点按接听" || !n.RequireInteraction || len(n.Vibrate) < 3 ||
		strings.Join(n.Actions, ",") != "answer,decline" || n.Tag != "tuanju-call-"+id {
		t.Fatalf("ring notification %+v: want the call's tag, requireInteraction, a vibration pattern, Answer and Decline", n)
	}

	// The parent taps Answer (the worker's own click handler, from the
	// tests' stand-in for a tap). With no page of the app open it opens
	// the page at the call.
	res, err := chromedp.Run(page, chromedp.Evaluate[map[string]string](fmt.Sprintf(`new Promise((resolve) => {
		const ch = new MessageChannel();
		ch.port1.onmessage = (e) => resolve(e.data);
		navigator.serviceWorker.getRegistration('/').then((r) => r.active.postMessage({type: 'tuanju-test-click', tag: %q, action: 'answer'}, [ch.port2]));
	})`, n.Tag), chromedp.EvalAwaitPromise))
	if err != nil || res["url"] != "/?answer="+id {
		t.Fatalf("the tap on Answer: %v, %v; want it to open /?answer=%s", res, err, id)
	}
	if _, err := chromedp.Run(page, chromedp.Navigate(origin+res["url"])); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "call", step); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.InCall, "terminal in the call the notification answered")
	if href, err := chromedp.Run(page, chromedp.Evaluate[string](`location.pathname + location.search`)); err != nil || href != "/" {
		t.Errorf("the page kept %q in its address (%v); want / (a reload must not answer again)", href, err)
	}
	if err := chromedp.Do(page, chromedp.Click(chromedp.CSS("#hangup"))); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after the call")

	// A missed call: the page closed again, the child gives up.
	if _, err := chromedp.Run(page, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the terminal sees its parent offline", func() bool { return !r.term.Status().PeerOnline })
	id = childRingsPushed(t, r, parentID)
	deliverPush(t, page, origin, reg, "ring", id)
	if err := r.board.LongPress(r.ctx); err != nil { // the child cancels
		t.Fatal(err)
	}
	r.waitPattern(device.Ready, "terminal ready after cancelling")
	at := deliverPush(t, page, origin, reg, "missed", id)
	if _, err := chromedp.Run(page, chromedp.Navigate(origin+"/healthz")); err != nil {
		t.Fatal(err)
	}
	n = waitNotification(t, page, "missed", id)
	hhmm := at.Local().Format("15:04")
	if n.Title != "未接来电" || n.Body != "孩子在 "+hhmm+" 来电" || n.RequireInteraction || n.Tag != "tuanju-call-"+id {
		t.Fatalf("missed-call notification %+v: want one that says %s and replaces the ring", n, hhmm)
	}
	all := notifications(t, page)
	for _, o := range all {
		if o.Data.CallID == id && o.Data.Type == "ring" {
			t.Fatalf("the ring notification is still there beside the missed call: %+v", all)
		}
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// registrationID is the page's service worker registration, as DevTools
// names it.
func registrationID(t *testing.T, page context.Context, origin string) serviceworker.RegistrationID {
	t.Helper()
	ctx, cancel := context.WithTimeout(page, step)
	defer cancel()
	eventually(t, step, "the page's service worker is active", func() bool {
		ok, err := chromedp.Run(page, chromedp.Evaluate[bool](`navigator.serviceWorker.getRegistration('/').then((r) => !!(r && r.active))`, chromedp.EvalAwaitPromise))
		return err == nil && ok
	})
	events := chromedp.Events(ctx, serviceworker.WorkerRegistrationUpdated)
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, serviceworker.Enable, cdp.Empty{})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	for ev, err := range events {
		if err != nil {
			t.Fatalf("waiting for the service worker's registration: %v", err)
		}
		for _, r := range ev.Registrations {
			if !r.IsDeleted && r.ScopeURL == origin+"/" {
				return r.RegistrationID
			}
		}
	}
	t.Fatal("no service worker registration for " + origin)
	return ""
}

// childCalls has the child press the button and returns the call's ID once
// the server has it ringing for the parent.
func childRingsPushed(t *testing.T, r *rig, parentID string) string {
	t.Helper()
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	var id string
	eventually(t, step, "the server rings the parent", func() bool {
		calls, err := r.srv.Registry().CallLog(parentID, false)
		if err != nil || len(calls) == 0 || calls[0].Outcome != protocol.OutcomeRinging {
			return false
		}
		id = calls[0].CallID
		return true
	})
	r.waitPattern(device.Calling, "the terminal calls")
	return id
}

// deliverPush hands the page's service worker a push message, as the push
// service would after decrypting it (docs/notifications.md), and returns
// the call time it carried.
func deliverPush(t *testing.T, page context.Context, origin string, reg serviceworker.RegistrationID, kind, id string) time.Time {
	t.Helper()
	at := time.Now().UTC().Truncate(time.Second)
	data, _ := json.Marshal(map[string]string{"type": kind, "call_id": id, "at": at.Format(time.RFC3339)})
	if err := chromedp.Do(page, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{Origin: origin, RegistrationID: reg, Data: string(data)})
		return err
	})); err != nil {
		t.Fatalf("deliver a %s push: %v", kind, err)
	}
	return at
}

func notifications(t *testing.T, page context.Context) []notification {
	t.Helper()
	ns, err := chromedp.Run(page, chromedp.Evaluate[[]notification](listNotifications, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("read the notifications: %v", err)
	}
	return ns
}

// waitNotification waits until the worker shows a notification of kind for
// call id.
func waitNotification(t *testing.T, page context.Context, kind, id string) notification {
	t.Helper()
	var found notification
	eventually(t, step, "the service worker shows the "+kind+" notification", func() bool {
		for _, n := range notifications(t, page) {
			if n.Data.Type == kind && n.Data.CallID == id {
				found = n
				return true
			}
		}
		return false
	})
	return found
}

// TestBrowserRingWithoutSound: the page is open but nobody has touched it,
// and the browser lets it play no sound before a tap (autoplay policy, as
// on a phone). The child calls: the page cannot ring aloud, so it rings
// with a notification through its service worker (its own sound and
// vibration), in the page's language (English here: the browser's). A tap
// on the notification's Answer reaches the open page, which answers: the
// terminal goes into the call.
func TestBrowserRingWithoutSound(t *testing.T) {
	r := newRig(t, nil)
	page := pairBrowser(t, r, chromedp.Flag("autoplay-policy", "document-user-activation-required"))
	if err := chromedp.Do(page, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: "notifications"}, Setting: "granted", Origin: r.srv.URL})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	if err := r.board.Press(r.ctx); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "incoming", step); err != nil {
		t.Fatal(err)
	}
	if blocked, err := chromedp.Run(page, chromedp.Evaluate[bool](`!document.getElementById('incoming-hint').hidden`)); err != nil || !blocked {
		t.Fatalf("the page can play its ring (%v): this test needs a browser that blocks sound before a tap", err)
	}
	var n notification
	eventually(t, step, "the page rings with a notification", func() bool {
		for _, o := range notifications(t, page) {
			if o.Data.Type == "ring" {
				n = o
				return true
			}
		}
		return false
	})
	if n.Title != "Your child is calling" || n.Body != "Tap to answer" || !n.RequireInteraction || len(n.Vibrate) < 3 {
		t.Fatalf("ring notification %+v", n)
	}
	res, err := chromedp.Run(page, chromedp.Evaluate[map[string]string](fmt.Sprintf(`new Promise((resolve) => {
		const ch = new MessageChannel();
		ch.port1.onmessage = (e) => resolve(e.data);
		navigator.serviceWorker.getRegistration('/').then((r) => r.active.postMessage({type: 'tuanju-test-click', tag: %q, action: 'answer'}, [ch.port2]));
	})`, n.Tag), chromedp.EvalAwaitPromise))
	if err != nil || res["posted"] != "answer" {
		t.Fatalf("the tap on Answer: %v, %v; want it posted to the open page", res, err)
	}
	if err := browsertest.WaitStateFor(page, "call", step); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.InCall, "terminal in the call the notification answered")
	eventually(t, step, "the ring notification is gone once answered", func() bool {
		for _, o := range notifications(t, page) {
			if o.Data.Type == "ring" {
				return false
			}
		}
		return true
	})
}
