package webapp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// The browser runs in China's time zone, as the parents' phones do, so that
// call-log times are checked exactly.
var cst = time.FixedZone("CST", 8*3600)

// phone launches Chromium with a phone-sized viewport in Asia/Shanghai time.
// Its language is Chromium's own (en-US): most tests read the page in
// English; TestLanguages reads it in each language.
func phone(t *testing.T) context.Context {
	t.Helper()
	return phoneIn(t, "")
}

// phoneIn is phone with the browser asking for languages accept (see
// browsertest.Languages); "" is Chromium's default.
func phoneIn(t *testing.T, accept string) context.Context {
	t.Helper()
	var opts []chromedp.ExecAllocatorOption
	if accept != "" {
		opts = append(opts, browsertest.Languages(accept))
	}
	ctx, _ := browsertest.Launch(context.Background(), t, opts...)
	do(t, ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Shanghai"})
			return err
		}),
	)
	return ctx
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// evalAsync is eval for an expression that yields a promise.
func evalAsync[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// poll waits until the JavaScript expression is true. It starts over when
// the page reloads under it (which destroys the evaluation context).
func poll(ctx context.Context, expr string) error {
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		_, err := chromedp.Run(tctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond)))
		if err == nil || tctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFor waits until the JavaScript expression is true, and names it if not.
func waitFor(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	if err := poll(ctx, expr); err != nil {
		t.Fatalf("browser: %s never became true: %v", expr, err)
	}
}

// waitText waits until the element's visible text contains want.
func waitText(t *testing.T, ctx context.Context, selector, want string) {
	t.Helper()
	sel, _ := json.Marshal(selector)
	w, _ := json.Marshal(want)
	expr := `(() => { const e = document.querySelector(` + string(sel) + `); return !!e && !e.closest('[hidden]') && e.textContent.includes(` + string(w) + `); })()`
	if err := poll(ctx, expr); err != nil {
		got := eval[string](t, ctx, `(document.querySelector(`+string(sel)+`) || {}).textContent || "<none>"`)
		t.Fatalf("browser: %s does not show %q; it shows %q", selector, want, got)
	}
}

func waitState(t *testing.T, ctx context.Context, state string) {
	t.Helper()
	if err := browsertest.WaitStateFor(ctx, state, 15*time.Second); err != nil {
		t.Fatal(err)
	}
}

func click(t *testing.T, ctx context.Context, selector string) {
	t.Helper()
	do(t, ctx, chromedp.Click(chromedp.CSS(selector)))
}

// screenshot saves the viewport to $TUANJU_SCREENSHOTS/name.png when that is
// set (to look at the screens by eye; never committed).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("TUANJU_SCREENSHOTS")
	if dir == "" {
		return
	}
	do(t, ctx, chromedp.Sleep(400*time.Millisecond)) // let transitions settle
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// storedCredential is what the page keeps in localStorage after pairing.
type storedCredential struct {
	ParentID string `json:"parent_id"`
	Token    string `json:"token"`
	DeviceID string `json:"device_id"`
}

func credential(t *testing.T, ctx context.Context) *storedCredential {
	t.Helper()
	raw := eval[string](t, ctx, `localStorage.getItem("tuanju.credential") || ""`)
	if raw == "" {
		return nil
	}
	var c storedCredential
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatalf("stored credential %q: %v", raw, err)
	}
	return &c
}

// openPairingLink loads the pairing URL, answers the hello as the server and
// checks the page's pair_request, including its proof.
func openPairingLink(t *testing.T, ctx context.Context, f *fakeRendezvous, device string, secret pairing.Secret) (*pageConn, protocol.Message) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(pairing.URL(f.URL, device, secret)))
	c := f.accept(t)
	if h := c.hello; h.Role != protocol.RolePairing || h.ParentID != "" || h.Token != "" || h.DeviceID != "" {
		t.Fatalf("pairing page's hello = %+v, want role pairing only", h)
	}
	c.send(protocol.Message{Type: protocol.TypeWelcome, Role: protocol.RolePairing})
	req := c.expect(protocol.TypePairRequest)
	if req.DeviceID != device {
		t.Errorf("pair_request device_id = %q, want %q", req.DeviceID, device)
	}
	if n, err := base64.RawURLEncoding.DecodeString(req.Nonce); err != nil || len(n) != 32 {
		t.Errorf("pair_request nonce %q is not 32 bytes of base64url (err %v)", req.Nonce, err)
	}
	r := pairing.Request{DeviceID: req.DeviceID, Nonce: req.Nonce, EphemeralKey: req.EphemeralKey, Proof: req.Proof}
	if err := pairing.VerifyRequest(secret, device, r); err != nil {
		t.Errorf("the page's pair_request does not verify in Go: %v", err)
	}
	if req.PairID != "" {
		t.Errorf("pair_request carries pair_id %q; only the server sets it", req.PairID)
	}
	loc := eval[string](t, ctx, `location.href`)
	if strings.Contains(loc, "#") || strings.Contains(loc, secret.String()) {
		t.Errorf("the secret stays in the address bar: %s", loc)
	}
	waitFor(t, ctx, `!document.getElementById('pair-hint').hidden`) // "press the big button"
	return c, req
}

// terminalAccepts plays the terminal's side after the button press: it
// answers the page's request with a real pair_accept (package pairing) and
// returns the handshake and the message, which a test may spoil first.
func terminalAccepts(t *testing.T, term *fakeTerminal, secret pairing.Secret, req protocol.Message) (*pairing.TerminalHandshake, protocol.Message) {
	t.Helper()
	pairID := protocol.NewID()
	r := pairing.Request{DeviceID: req.DeviceID, Nonce: req.Nonce, EphemeralKey: req.EphemeralKey, Proof: req.Proof}
	hs, acc, err := pairing.AcceptRequest(secret, term.key, term.fp, pairID, r)
	if err != nil {
		t.Fatalf("the Go terminal refuses the page's request: %v", err)
	}
	return hs, protocol.Message{Type: protocol.TypePairAccept, PairID: pairID, EphemeralKey: acc.EphemeralKey,
		PublicKey: acc.PublicKey, Fingerprint: acc.Fingerprint, Signature: acc.Signature, Proof: acc.Proof}
}

// pairPage pairs the page with term through the whole handshake, as the
// server would relay it, and returns the page's parent socket after its
// welcome. From then on the fake signs as term and checks the page's
// signatures with the key term learned.
func pairPage(t *testing.T, ctx context.Context, f *fakeRendezvous, term *fakeTerminal) (*pageConn, storedCredential) {
	t.Helper()
	secret := pairing.NewSecret()
	c, req := openPairingLink(t, ctx, f, term.id, secret)
	hs, acc := terminalAccepts(t, term, secret, req)
	c.send(acc)
	conf := c.expect(protocol.TypePairConfirm)
	if conf.PairID != acc.PairID {
		t.Fatalf("pair_confirm for %q, want %q", conf.PairID, acc.PairID)
	}
	parent, err := hs.VerifyConfirm(pairing.Confirm{PublicKey: conf.PublicKey, Signature: conf.Signature, Proof: conf.Proof})
	if err != nil {
		t.Fatalf("the page's pair_confirm does not verify in Go: %v", err)
	}
	// The page made its token and kept its credential (parent ID = pair
	// ID) before the confirm left (docs/protocol.md, "Pairing", step 5).
	if tok, err := base64.RawURLEncoding.DecodeString(conf.Token); err != nil || len(tok) != protocol.TokenBytes {
		t.Fatalf("pair_confirm token %q is not 32 bytes of base64url (err %v)", conf.Token, err)
	}
	cred := storedCredential{ParentID: acc.PairID, Token: conf.Token, DeviceID: term.id}
	if got := credential(t, ctx); got == nil || *got != cred {
		t.Fatalf("credential kept before the paired = %+v, want %+v", got, cred)
	}
	f.mu.Lock()
	term.parent = parent
	f.term = term
	f.mu.Unlock()
	c.send(protocol.Message{Type: protocol.TypePaired, DeviceID: term.id, ParentID: cred.ParentID, PairID: acc.PairID})
	pc := f.accept(t)
	if h := pc.hello; h.Role != protocol.RoleParent || h.ParentID != cred.ParentID || h.Token != cred.Token {
		t.Fatalf("after pairing the page said hello %+v, want role parent with the new credential", h)
	}
	pc.send(protocol.Message{Type: protocol.TypeWelcome, Role: protocol.RoleParent, ParentID: cred.ParentID, DeviceID: term.id, Paired: ptr(true), PeerOnline: ptr(true)})
	waitState(t, ctx, "home")
	return pc, cred
}

func TestPairing(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx := phone(t)
	term := newFakeTerminal(t)
	secret := pairing.NewSecret()

	refused := func(t *testing.T, spoil func(*protocol.Message), code string) {
		c, req := openPairingLink(t, ctx, f, term.id, secret)
		_, acc := terminalAccepts(t, term, secret, req)
		spoil(&acc)
		c.send(acc)
		waitFor(t, ctx, `window.tuanju.lastError === `+jsString(code))
		waitText(t, ctx, "#pair-error", "NOT paired")
		c.quiet(500 * time.Millisecond) // no pair_confirm: the page's key goes nowhere
		if cred := credential(t, ctx); cred != nil {
			t.Errorf("the page stored %+v after a bad accept", cred)
		}
		if s := eval[string](t, ctx, `document.body.dataset.state`); s != "pairing" {
			t.Errorf("state = %q after a bad accept, want pairing", s)
		}
	}
	t.Run("accept with a wrong proof is refused", func(t *testing.T) {
		refused(t, func(m *protocol.Message) { m.Proof = flipB64(m.Proof) }, "bad_accept_proof")
		screenshot(t, ctx, "1-pairing")
	})
	t.Run("accept with a wrong signature is refused", func(t *testing.T) {
		refused(t, func(m *protocol.Message) { m.Signature = flipB64(m.Signature) }, "bad_accept_proof")
	})
	t.Run("accept with another fingerprint is refused", func(t *testing.T) {
		refused(t, func(m *protocol.Message) { m.Fingerprint = newFakeTerminal(t).fp }, "bad_accept_proof")
	})
	t.Run("accept from another device's key is refused", func(t *testing.T) {
		other := newFakeTerminal(t)
		refused(t, func(m *protocol.Message) { m.PublicKey, _ = pairing.EncodePublicKey(&other.key.PublicKey) }, "wrong_device")
	})
	t.Run("paired without a verified accept is refused", func(t *testing.T) {
		c, _ := openPairingLink(t, ctx, f, term.id, secret)
		c.send(protocol.Message{Type: protocol.TypePaired, DeviceID: term.id, ParentID: protocol.NewID(), PairID: protocol.NewID()})
		waitFor(t, ctx, `window.tuanju.lastError === "bad_accept_proof"`)
		if cred := credential(t, ctx); cred != nil {
			t.Errorf("the page stored %+v from a server's paired alone", cred)
		}
	})

	t.Run("the whole handshake stores a non-extractable key", func(t *testing.T) {
		_, cred := pairPage(t, ctx, f, term)
		got := credential(t, ctx)
		if got == nil || *got != cred {
			t.Errorf("stored credential = %+v, want %+v", got, cred)
		}
		if loc := eval[string](t, ctx, `location.href`); loc != f.URL+"/" {
			t.Errorf("after pairing the address is %s, want %s/", loc, f.URL)
		}
		keys := evalAsync[map[string]any](t, ctx, `new Promise((res, rej) => {
			const r = indexedDB.open("tuanju");
			r.onsuccess = () => {
				const g = r.result.transaction("keys").objectStore("keys").get("pairing");
				g.onsuccess = () => res({
					privateExtractable: g.result.parentKey.privateKey.extractable,
					privateUsages: g.result.parentKey.privateKey.usages.join(","),
					deviceId: g.result.deviceId, fingerprint: g.result.fingerprint,
				});
				g.onerror = () => rej(g.error);
			};
			r.onerror = () => rej(r.error);
		})`)
		if keys["privateExtractable"] != false || keys["privateUsages"] != "sign" || keys["deviceId"] != term.id || keys["fingerprint"] != term.fp {
			t.Errorf("stored keys = %v, want a non-extractable signing key, device %s, fingerprint %s", keys, term.id, term.fp)
		}
	})
}

// flipB64 changes one character of a base64url value.
func flipB64(s string) string {
	b := []byte(s)
	if b[len(b)/2] == 'A' {
		b[len(b)/2] = 'B'
	} else {
		b[len(b)/2] = 'A'
	}
	return string(b)
}

func TestPairingErrors(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx := phone(t)
	tests := []struct {
		code, message, want string
	}{
		{protocol.ErrCodeAlreadyPaired, "", "This terminal is already paired with another phone. Ask the technician to reset it."},
		{protocol.ErrCodeDeviceOffline, "", "terminal is not online"},
		{protocol.ErrCodeUnknownDevice, "", "does not know this terminal"},
		{protocol.ErrCodeRateLimited, "", "wait one minute"},
		{protocol.ErrCodePairRejected, "timeout", "not pressed within one minute"},
		{protocol.ErrCodePairRejected, "declined", "cancelled on the terminal"},
		{protocol.ErrCodePairRejected, "bad_secret", "did not accept this link"},
	}
	for _, tt := range tests {
		t.Run(tt.code+"/"+tt.message, func(t *testing.T) {
			c, _ := openPairingLink(t, ctx, f, protocol.NewID(), pairing.NewSecret())
			c.send(protocol.Message{Type: protocol.TypeError, Code: tt.code, Text: tt.message, RefType: protocol.TypePairRequest})
			waitText(t, ctx, "#pair-error", tt.want)
			if got := eval[string](t, ctx, `window.tuanju.lastError`); got != tt.code {
				t.Errorf("lastError = %q, want %q", got, tt.code)
			}
			if tt.code == protocol.ErrCodeAlreadyPaired {
				screenshot(t, ctx, "2-pairing-error")
			}
		})
	}

	t.Run("damaged link", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(f.URL+"/pair#d=nothex&s=abc"))
		waitText(t, ctx, "#pair-error", "pairing link is damaged")
	})
}

// parentPage pairs a fresh page with a fresh fake terminal and plays the
// server's side of the parent's login; it returns the page's socket.
//
// Each script in before runs in the page before the app does.
func parentPage(t *testing.T, f *fakeRendezvous, before ...string) (context.Context, *pageConn, storedCredential) {
	t.Helper()
	return parentPageIn(t, f, phone(t), before...)
}

// parentPageIn is parentPage in the browser ctx.
func parentPageIn(t *testing.T, f *fakeRendezvous, ctx context.Context, before ...string) (context.Context, *pageConn, storedCredential) {
	t.Helper()
	for _, src := range before {
		do(t, ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src})
			return err
		}))
	}
	do(t, ctx, chromedp.Navigate(f.URL+"/"))
	waitState(t, ctx, "pairing") // nothing stored yet: "scan the label"
	waitFor(t, ctx, `!document.getElementById('pair-scan').hidden`)
	c, cred := pairPage(t, ctx, f, newFakeTerminal(t))
	return ctx, c, cred
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestHomeShowsMissedCalls(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx, c, _ := parentPage(t, f)

	now := time.Now().In(cst)
	today := func(h, m int) time.Time { return time.Date(now.Year(), now.Month(), now.Day(), h, m, 0, 0, cst) }
	c.send(protocol.Message{Type: protocol.TypeCallLog, Calls: []protocol.CallRecord{
		{CallID: protocol.NewID(), Direction: protocol.DirFromTerminal, StartedAt: today(19, 2), EndedAt: today(19, 3), Outcome: protocol.OutcomeMissed},
		{CallID: protocol.NewID(), Direction: protocol.DirFromParent, StartedAt: today(8, 15), AnsweredAt: today(8, 15), EndedAt: today(8, 21), Outcome: protocol.OutcomeAnswered, Seen: true},
		{CallID: protocol.NewID(), Direction: protocol.DirFromTerminal, StartedAt: today(7, 30).AddDate(0, 0, -3), Outcome: protocol.OutcomeMissed, Seen: true},
		{CallID: protocol.NewID(), Direction: protocol.DirFromTerminal, StartedAt: today(7, 0).AddDate(0, 0, -4), AnsweredAt: today(7, 0).AddDate(0, 0, -4), EndedAt: today(7, 0).AddDate(0, 0, -4).Add(25 * time.Second), Outcome: protocol.OutcomeAnswered, Seen: true},
		// Open when the server crashed; closed at its next start.
		{CallID: protocol.NewID(), Direction: protocol.DirFromParent, StartedAt: today(6, 0).AddDate(0, 0, -5), AnsweredAt: today(6, 0).AddDate(0, 0, -5), EndedAt: today(6, 0).AddDate(0, 0, -5), Outcome: protocol.OutcomeInterrupted, Seen: true},
	}})
	waitText(t, ctx, "#missed-badge", "1")
	waitText(t, ctx, "#missed-summary", "Your child called at 19:02 — missed")
	waitText(t, ctx, "#call-log li:nth-child(1)", "Your child called at 19:02 — missed")
	waitText(t, ctx, "#call-log li:nth-child(2)", "You called at 08:15 — answered, 6 min")
	waitText(t, ctx, "#call-log li:nth-child(4)", "answered, under 1 min")
	waitText(t, ctx, "#call-log li:nth-child(5)", "— interrupted")
	if n := eval[int](t, ctx, `document.querySelectorAll("#call-log li.missed").length`); n != 2 {
		t.Errorf("%d calls are highlighted as missed, want 2", n)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#call-log li.unseen").length`); n != 1 {
		t.Errorf("%d calls are marked unseen, want 1", n)
	}
	if !eval[bool](t, ctx, `window.tuanju.online`) {
		t.Error("tuanju.online is false after welcome with peer_online")
	}
	waitText(t, ctx, "#presence-text", "online")
	screenshot(t, ctx, "3-home")

	c.send(protocol.Message{Type: protocol.TypePresence, PeerOnline: ptr(false)})
	waitFor(t, ctx, `window.tuanju.online === false`)
	waitText(t, ctx, "#presence-text", "offline")
	waitText(t, ctx, "#home-note", "may be switched off or have no internet")
	screenshot(t, ctx, "3-home-offline")

	// Revoked by the programme: the page says so, and whom to ask, rather
	// than sending the family to check the power and the network.
	c.send(protocol.Message{Type: protocol.TypePresence, PeerOnline: ptr(false), Reason: protocol.ReasonRevoked})
	waitFor(t, ctx, `window.tuanju.revoked === true`)
	waitText(t, ctx, "#presence-text", "switched off by the programme")
	waitText(t, ctx, "#home-note", "contact the programme")
	// Reinstated: back online, and the notice goes.
	c.send(protocol.Message{Type: protocol.TypePresence, PeerOnline: ptr(true)})
	waitFor(t, ctx, `window.tuanju.online === true && window.tuanju.revoked === false`)
	waitText(t, ctx, "#presence-text", "online")
}

func TestIncomingCall(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx, c, _ := parentPage(t, f)

	ring := func() string {
		id := protocol.NewID()
		c.send(protocol.Message{Type: protocol.TypeRing, CallID: id, ICETransportPolicy: "all"})
		waitState(t, ctx, "incoming")
		return id
	}

	t.Run("answer", func(t *testing.T) {
		was := c.prepares.Load()
		id := ring()
		screenshot(t, ctx, "4-incoming")
		// The page asks for the terminal's offer while it rings (signed
		// with its paired key over the ring and its own nonce: checked by
		// the fake), and its accept then brings that nonce.
		for deadline := time.Now().Add(5 * time.Second); c.prepares.Load() == was; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the page sent no prepare for the ringing call")
			}
		}
		prepared := c.calls.Get(id).AcceptNonce
		click(t, ctx, "#answer")
		if m := c.expect(protocol.TypeAccept); m.CallID != id || m.Nonce != prepared {
			t.Errorf("accept call_id %q nonce %q, want %q with the prepare's nonce %q", m.CallID, m.Nonce, id, prepared)
		}
		waitState(t, ctx, "call")
		screenshot(t, ctx, "6-call-connecting")
		c.send(protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonHangup})
		waitState(t, ctx, "ended")
		waitText(t, ctx, "#ended-title", "Call ended")
		c.quiet(300 * time.Millisecond) // a remote hangup needs no answer
		waitState(t, ctx, "home")
	})

	t.Run("decline", func(t *testing.T) {
		id := ring()
		click(t, ctx, "#decline")
		if m := c.expect(protocol.TypeHangup); m.CallID != id || m.Reason != protocol.ReasonDecline {
			t.Errorf("decline sent %+v, want hangup %s with reason decline", m, id)
		}
		waitState(t, ctx, "home")
	})

	t.Run("caller cancels", func(t *testing.T) {
		id := ring()
		c.send(protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonCancel})
		waitState(t, ctx, "ended")
		waitText(t, ctx, "#ended-title", "Missed call")
		waitText(t, ctx, "#ended-detail", "Your child hung up before you answered.")
		screenshot(t, ctx, "7-missed")
		waitState(t, ctx, "home")
	})

	t.Run("the terminal's ring runs out", func(t *testing.T) {
		id := ring()
		c.send(protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonNoAnswer})
		waitText(t, ctx, "#ended-title", "Missed call")
		waitText(t, ctx, "#ended-detail", "Your child called, but nobody answered in time.")
		waitState(t, ctx, "home")
	})

	t.Run("answered on another phone", func(t *testing.T) {
		id := ring()
		c.send(protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonAnsweredElsewhere})
		waitText(t, ctx, "#ended-title", "Answered on another device")
		waitState(t, ctx, "home")
	})
}

func TestOutgoingCall(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx, c, _ := parentPage(t, f)

	ringCall := func() protocol.Message {
		click(t, ctx, "#call")
		m := c.expect(protocol.TypeRing)
		if m.ICEServers != nil || m.ICETransportPolicy != "" {
			t.Errorf("the page's ring carries server fields: %+v", m)
		}
		waitState(t, ctx, "outgoing")
		return m
	}
	call := func() string { return ringCall().CallID }

	t.Run("cancel", func(t *testing.T) {
		ring := ringCall()
		id := ring.CallID
		was := c.prepares.Load()
		c.send(protocol.Message{Type: protocol.TypeRinging, CallID: id, ICEServers: []protocol.ICEServer{
			{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "1900000000:" + id, Credential: "c2VjcmV0"},
		}})
		waitText(t, ctx, "#outgoing-status", "Ringing")
		// Rung, the page prepares its call (docs/protocol.md, "Preparing a
		// call"): a prepare with no nonce, signed with its paired key over
		// its ring's nonce alone, which passes for no callee's prepare.
		p := c.nextPrepare(t, was)
		if p.CallID != id || p.Nonce != "" {
			t.Errorf("prepare call_id %q nonce %q, want %q with no nonce", p.CallID, p.Nonce, id)
		}
		sig := pairing.CallSig{SignedAt: p.SignedAt, Signature: p.Signature}
		own := pairing.Binding{CallID: id, RingNonce: ring.Nonce}
		if err := pairing.VerifyCall(c.term.parent, protocol.TypePrepare, own, "", sig, time.Now()); err != nil {
			t.Errorf("the page's prepare does not verify over its ring's nonce: %v", err)
		}
		callee := own
		callee.AcceptNonce = pairing.NewNonce()
		if err := pairing.VerifyCall(c.term.parent, protocol.TypePrepare, callee, "", sig, time.Now()); !errors.Is(err, pairing.ErrBadProof) {
			t.Errorf("the page's prepare verifies as a callee's prepare: %v, want ErrBadProof", err)
		}
		screenshot(t, ctx, "5-outgoing")
		click(t, ctx, "#cancel")
		if m := c.expect(protocol.TypeHangup); m.CallID != id || m.Reason != protocol.ReasonCancel {
			t.Errorf("cancel sent %+v, want hangup %s with reason cancel", m, id)
		}
		waitState(t, ctx, "home")
	})

	t.Run("terminal offline", func(t *testing.T) {
		id := call()
		c.send(protocol.Message{Type: protocol.TypeHangup, CallID: id, Reason: protocol.ReasonUnavailable})
		waitText(t, ctx, "#ended-title", "offline")
		waitState(t, ctx, "home")
	})

	t.Run("busy", func(t *testing.T) {
		id := call()
		c.send(protocol.Message{Type: protocol.TypeError, Code: protocol.ErrCodeBusy, RefType: protocol.TypeRing, CallID: id})
		waitText(t, ctx, "#ended-title", "Busy")
		waitState(t, ctx, "home")
	})

	t.Run("answered then hung up", func(t *testing.T) {
		was := c.prepares.Load()
		id := call()
		c.send(protocol.Message{Type: protocol.TypeAccept, CallID: id})
		waitState(t, ctx, "call")
		click(t, ctx, "#hangup")
		if m := c.expect(protocol.TypeHangup); m.CallID != id || m.Reason != protocol.ReasonHangup {
			t.Errorf("hang up sent %+v, want hangup %s with reason hangup", m, id)
		}
		// No ringing came: the server may not have the call, so no prepare.
		if n := c.prepares.Load() - was; n != 0 {
			t.Errorf("the page sent %d prepares for a call it got no ringing for", n)
		}
		waitState(t, ctx, "ended")
		waitState(t, ctx, "home")
	})

	t.Run("call ids are fresh", func(t *testing.T) {
		a := call()
		click(t, ctx, "#cancel")
		c.expect(protocol.TypeHangup)
		waitState(t, ctx, "home")
		b := call()
		click(t, ctx, "#cancel")
		c.expect(protocol.TypeHangup)
		if a == b {
			t.Errorf("two calls used the same call_id %s", a)
		}
	})
}

func TestReconnectAndRevokedCredential(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx, c, cred := parentPage(t, f)

	c.ws.CloseNow() // the network dropped
	waitText(t, ctx, "#banner", "reconnecting")
	c = f.accept(t)
	if c.hello.Role != protocol.RoleParent || c.hello.ParentID != cred.ParentID {
		t.Fatalf("reconnect hello = %+v", c.hello)
	}
	c.send(protocol.Message{Type: protocol.TypeWelcome, Role: protocol.RoleParent, ParentID: cred.ParentID, DeviceID: cred.DeviceID, Paired: ptr(true), PeerOnline: ptr(false)})
	waitFor(t, ctx, `window.tuanju.connected && document.getElementById("banner").hidden`)

	// The technician reset the terminal: the server no longer knows this parent.
	c.send(protocol.Message{Type: protocol.TypeError, Code: protocol.ErrCodeAuthFailed})
	c.ws.Close(4001, "auth failed")
	waitState(t, ctx, "pairing")
	waitText(t, ctx, "#pair-error", "no longer paired")
	if got := credential(t, ctx); got != nil {
		t.Errorf("credential %+v kept after auth_failed", got)
	}
}

// TestOutgoingNoAnswer: the page gives up after its 45 s ring timer with
// hangup no_answer. The test shortens exactly that timer (and no other) so it
// does not wait 45 s.
func TestOutgoingNoAnswer(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx, c, _ := parentPage(t, f, `{
		const st = window.setTimeout;
		window.setTimeout = (fn, ms, ...args) => st(fn, ms === 45000 ? 200 : ms, ...args);
	}`)
	click(t, ctx, "#call")
	id := c.expect(protocol.TypeRing).CallID
	c.send(protocol.Message{Type: protocol.TypeRinging, CallID: id})
	if m := c.expect(protocol.TypeHangup); m.CallID != id || m.Reason != protocol.ReasonNoAnswer {
		t.Errorf("ring timer sent %+v, want hangup %s with reason no_answer", m, id)
	}
	waitText(t, ctx, "#ended-title", "No answer")
	if got := eval[string](t, ctx, `window.tuanju.lastError`); got != "no_answer" {
		t.Errorf("lastError = %q, want no_answer", got)
	}
	waitState(t, ctx, "home")
}

// TestRefusesWhatTheTerminalDidNotSign: a server in the middle (or anyone
// who got past it) cannot ring the parent, answer for the terminal or slip
// its own DTLS certificate into a call: the page checks every ring, accept
// and offer against the key and fingerprint it learned at pairing.
func TestRefusesWhatTheTerminalDidNotSign(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx, c, _ := parentPage(t, f)
	stranger := newFakeTerminal(t)
	refused := 0
	wantRefused := func(what string) {
		t.Helper()
		refused++
		waitFor(t, ctx, fmt.Sprintf(`window.tuanju.refused === %d`, refused))
		if got := eval[string](t, ctx, `window.tuanju.lastError`); got != "not_from_terminal" {
			t.Errorf("%s: lastError = %q, want not_from_terminal", what, got)
		}
	}
	sign := func(key *fakeTerminal, m protocol.Message) protocol.Message {
		m, err := c.signAs(key, m)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	t.Run("ring signed by a stranger", func(t *testing.T) {
		id := protocol.NewID()
		c.send(sign(stranger, protocol.Message{Type: protocol.TypeRing, CallID: id}))
		wantRefused("stranger's ring")
		if m := c.expect(protocol.TypeHangup); m.CallID != id || m.Reason != protocol.ReasonDecline {
			t.Errorf("refused ring answered with %+v, want hangup decline", m)
		}
		if s := eval[string](t, ctx, `window.tuanju.state`); s != "home" {
			t.Errorf("state %q after a stranger's ring, want home (no ringing)", s)
		}
	})

	t.Run("ring replayed", func(t *testing.T) {
		ring := sign(c.term, protocol.Message{Type: protocol.TypeRing, CallID: protocol.NewID()})
		c.send(ring)
		waitState(t, ctx, "incoming")
		c.send(protocol.Message{Type: protocol.TypeHangup, CallID: ring.CallID, Reason: protocol.ReasonCancel})
		waitState(t, ctx, "home")
		c.send(ring) // the very same signed message again
		wantRefused("replayed ring")
		c.expect(protocol.TypeHangup)
	})

	// refusedOffer: an outgoing call that the "terminal" accepts, then the
	// offer made by offer for its ID, which the page must refuse.
	refusedOffer := func(t *testing.T, offer func(id string) protocol.Message) {
		click(t, ctx, "#call")
		id := c.expect(protocol.TypeRing).CallID
		c.send(protocol.Message{Type: protocol.TypeAccept, CallID: id})
		waitState(t, ctx, "call")
		c.send(offer(id))
		wantRefused("offer")
		if m := c.expect(protocol.TypeHangup); m.CallID != id || m.Reason != protocol.ReasonFailed {
			t.Errorf("refused offer answered with %+v, want hangup failed", m)
		}
		waitState(t, ctx, "ended")
		waitState(t, ctx, "home")
	}
	sdpWith := func(lines string) string {
		return "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + lines
	}
	offerWith := func(signer *fakeTerminal, fp string) func(string) protocol.Message {
		return func(id string) protocol.Message {
			return sign(signer, protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdpWith("a=fingerprint:" + fp + "\r\n")})
		}
	}
	t.Run("offer carrying another DTLS fingerprint, signed by the terminal", func(t *testing.T) {
		refusedOffer(t, offerWith(c.term, stranger.fp)) // the terminal never signs another certificate; a relay that swaps it gets here
	})
	t.Run("offer with the pinned fingerprint, signed by a stranger", func(t *testing.T) {
		refusedOffer(t, offerWith(stranger, c.term.fp))
	})
	// The terminal's offer must be signed over this page's accept nonce:
	// an offer recorded from an earlier call (right key, right
	// certificate) is refused in a new one, even moved to its call ID.
	t.Run("offer bound to another accept", func(t *testing.T) {
		refusedOffer(t, func(id string) protocol.Message {
			sdp := sdpWith("a=fingerprint:" + c.term.fp + "\r\n")
			b := c.calls.Get(id)
			b.AcceptNonce = pairing.NewNonce() // not the one the terminal's accept carried
			sig, err := pairing.SignCall(c.term.key, protocol.TypeOffer, b, sdp, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp, SignedAt: sig.SignedAt, Signature: sig.Signature}
		})
	})
	// The rule every SDP must pass (pairing.CheckSDP), applied by the page:
	// a carriage-return line pion's parser reads but a line scan skips.
	// Signed by the real terminal key over the exact bytes: only the SDP
	// rule can refuse it (pairing.SignCall refuses to sign it).
	t.Run("offer with a hidden fingerprint line, signed by the terminal", func(t *testing.T) {
		refusedOffer(t, func(id string) protocol.Message {
			sdp := sdpWith("\ra=fingerprint:" + stranger.fp + "\r\na=fingerprint:" + c.term.fp + "\r\n")
			at, sig := signOfferUnchecked(t, c.term, c.calls.Get(id), sdp)
			return protocol.Message{Type: protocol.TypeOffer, CallID: id, SDP: sdp, SignedAt: at, Signature: sig}
		})
	})

	// A forged accept ends nothing: the ring goes on for the real terminal.
	t.Run("accept signed by a stranger", func(t *testing.T) {
		click(t, ctx, "#call")
		id := c.expect(protocol.TypeRing).CallID
		c.send(sign(stranger, protocol.Message{Type: protocol.TypeAccept, CallID: id}))
		wantRefused("stranger's accept")
		c.quiet(300 * time.Millisecond)
		if s := eval[string](t, ctx, `window.tuanju.state`); s != "outgoing" {
			t.Errorf("state %q after a forged accept, want outgoing (still ringing)", s)
		}
		// Control: the terminal's own accept still connects the call.
		c.send(protocol.Message{Type: protocol.TypeAccept, CallID: id})
		waitState(t, ctx, "call")
		click(t, ctx, "#hangup")
		if m := c.expect(protocol.TypeHangup); m.CallID != id {
			t.Errorf("hang-up for %s, want %s", m.CallID, id)
		}
		waitState(t, ctx, "ended")
		waitState(t, ctx, "home")
	})
}

// signOfferUnchecked signs an offer the way docs/protocol.md ("Calls")
// writes the signed text, without pairing.CheckSDP: for an SDP only the
// page's own rule can refuse. TestSignOfferUnchecked holds it to
// pairing.VerifyCall on a valid SDP.
func signOfferUnchecked(t *testing.T, term *fakeTerminal, b pairing.Binding, sdp string) (signedAt, signature string) {
	t.Helper()
	signedAt = time.Now().UTC().Format(time.RFC3339)
	h := sha256.Sum256([]byte(sdp))
	text := strings.Join([]string{"tuanju/v3 call", "offer", b.CallID, signedAt, b.RingNonce, b.AcceptNonce,
		base64.RawURLEncoding.EncodeToString(h[:]), ""}, "\n")
	d := sha256.Sum256([]byte(text))
	r, s, err := ecdsa.Sign(rand.Reader, term.key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64)
	r.FillBytes(raw[:32])
	s.FillBytes(raw[32:])
	return signedAt, base64.RawURLEncoding.EncodeToString(raw)
}

func TestSignOfferUnchecked(t *testing.T) {
	term := newFakeTerminal(t)
	b := pairing.Binding{CallID: protocol.NewID(), RingNonce: pairing.NewNonce(), AcceptNonce: pairing.NewNonce()}
	sdp := "v=0\r\ns=-\r\na=fingerprint:" + term.fp + "\r\n"
	at, sig := signOfferUnchecked(t, term, b, sdp)
	if err := pairing.VerifyCall(&term.key.PublicKey, protocol.TypeOffer, b, sdp, pairing.CallSig{SignedAt: at, Signature: sig}, time.Now()); err != nil {
		t.Fatalf("the test's signer does not sign what pairing verifies: %v", err)
	}
}

// TestUnfinishedPairing: the terminal went offline after the page's
// confirm. The page keeps the credential it made, logs in with it, waits
// while the server says pairing_pending (the terminal has not decided),
// and when the login is refused — the terminal had not stored the pairing
// — deletes it and says the pairing did not finish, rather than keep a dead
// credential.
func TestUnfinishedPairing(t *testing.T) {
	f := newFakeRendezvous(t)
	ctx := phone(t)
	term := newFakeTerminal(t)
	secret := pairing.NewSecret()
	c, req := openPairingLink(t, ctx, f, term.id, secret)
	_, acc := terminalAccepts(t, term, secret, req)
	c.send(acc)
	conf := c.expect(protocol.TypePairConfirm)
	kept := storedCredential{ParentID: acc.PairID, Token: conf.Token, DeviceID: term.id}
	if got := credential(t, ctx); got == nil || *got != kept {
		t.Fatalf("credential before the outcome = %+v, want %+v", got, kept)
	}
	c.send(protocol.Message{Type: protocol.TypeError, Code: protocol.ErrCodeDeviceOffline, RefType: protocol.TypePairRequest, PairID: acc.PairID})

	pc := f.accept(t)
	if h := pc.hello; h.Role != protocol.RoleParent || h.ParentID != kept.ParentID || h.Token != kept.Token {
		t.Fatalf("after the terminal left the page said hello %+v, want a parent login with its kept credential", h)
	}
	pc.send(protocol.Message{Type: protocol.TypeError, Code: protocol.ErrCodePairingPending, RefType: protocol.TypeHello})
	pc.ws.Close(1013, "pairing pending") // try again later
	waitText(t, ctx, "#presence-text", "Finishing the pairing")
	if got := credential(t, ctx); got == nil || *got != kept {
		t.Fatalf("credential while pending = %+v, want it kept", got)
	}

	pc = f.accept(t) // the page tries again
	if pc.hello.ParentID != kept.ParentID {
		t.Fatalf("retry hello = %+v", pc.hello)
	}
	pc.send(protocol.Message{Type: protocol.TypeError, Code: protocol.ErrCodeAuthFailed, RefType: protocol.TypeHello})
	pc.ws.Close(4001, "auth failed")
	waitState(t, ctx, "pairing")
	waitFor(t, ctx, `window.tuanju.lastError === "pair_unfinished"`)
	waitText(t, ctx, "#pair-error", "did not finish")
	if got := credential(t, ctx); got != nil {
		t.Errorf("credential %+v kept after the pairing was rolled back", got)
	}
}
