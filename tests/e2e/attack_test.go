package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/tests/browsertest"
)

// TestPairWithoutButton: someone with the label's link (the right secret)
// asks to pair, and nobody touches the terminal. The terminal shows it is
// asked, but nothing pairs; a long press refuses it outright.
func TestPairWithoutButton(t *testing.T) {
	r := newRig(t, nil)
	r.waitPattern(device.Pairable, "fresh terminal is pairable")
	ctx, cancel := context.WithTimeout(r.ctx, 2*step)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := rendezvoustest.PairLink(ctx, r.srv.WSURL, r.term.PairingURL(), nil) // no press
		errc <- err
	}()
	r.waitPattern(device.Pairing, "the terminal shows a pairing request waiting for its button")
	time.Sleep(3 * time.Second) // the child does nothing for a while
	if _, err := r.srv.Registry().ParentOf(r.term.DeviceID()); err == nil {
		t.Fatal("paired without a press on the button")
	}
	if s := r.term.Status(); s.Paired {
		t.Fatal("the terminal believes it is paired without a press")
	}
	if err := r.board.LongPress(r.ctx); err != nil {
		t.Fatal(err)
	}
	var refused *rendezvoustest.RefusedError
	if err := <-errc; err == nil || !asRefused(err, &refused) || refused.Text != "declined" {
		t.Fatalf("pairing without the button ended with %v, want pair_rejected declined", err)
	}
	if _, err := r.srv.Registry().ParentOf(r.term.DeviceID()); err == nil {
		t.Fatal("a declined request was stored")
	}
	t.Log("pairing attempts without a press: 1, paired: 0")
}

// TestStrangersBrowserWithStolenToken: a stranger's browser — a real page,
// paired with the stranger's own terminal — gets hold of another family's
// server login (say, copied off their phone) and rings that family's child.
// The server lets the login in; the child's terminal refuses the ring,
// because the stranger's page cannot sign as that family's parent: its key
// never left the parent's phone. The child sees and hears nothing.
func TestStrangersBrowserWithStolenToken(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	child := startTerminal(t, ctx, srv, terminalOpts{})
	family := child.pair() // the child's real parent (a Go phone)
	strangers := startTerminal(t, ctx, srv, terminalOpts{})
	page := pairBrowser(t, strangers) // the stranger's browser, paired with their own terminal

	// The stranger's page swaps in the family's login, keeping its own keys
	// (relabelled for the child's terminal so that the page uses them).
	stolen, _ := json.Marshal(map[string]string{"parent_id": family.ParentID, "token": family.Token, "device_id": family.DeviceID})
	swap := `new Promise((res, rej) => {
		localStorage.setItem("tuanju.credential", ` + string(mustJSON(t, string(stolen))) + `);
		const r = indexedDB.open("tuanju");
		r.onsuccess = () => {
			const st = r.result.transaction("keys", "readwrite").objectStore("keys");
			const g = st.get("pairing");
			g.onsuccess = () => { const p = g.result; p.deviceId = ` + string(mustJSON(t, family.DeviceID)) + `; st.put(p, "pairing").onsuccess = () => res(true); };
			g.onerror = () => rej(g.error);
		};
		r.onerror = () => rej(r.error);
	})`
	if _, err := chromedp.Run(page, chromedp.Evaluate[bool](swap, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(page, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.WaitStateFor(page, "home", step); err != nil {
		t.Fatal(err)
	}
	eventually(t, step, "the stolen login is in, and sees the child's terminal online", func() bool {
		on, err := chromedp.Run(page, chromedp.Evaluate[bool](`window.tuanju.connected && window.tuanju.online`))
		return err == nil && on
	})

	const attempts = 3
	rang := 0
	cues := child.board.State().CueSeq
	for i := range attempts {
		if _, err := chromedp.Run(page, chromedp.Click(chromedp.CSS("#call"))); err != nil {
			t.Fatal(err)
		}
		// The terminal answers the forged ring with decline at once.
		if err := browsertest.WaitStateFor(page, "ended", step); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if p := child.board.State().Pattern; p != device.Ready {
			rang++
			t.Errorf("attempt %d: the child's terminal shows %q", i, p)
		}
		if err := browsertest.WaitStateFor(page, "home", step); err != nil {
			t.Fatal(err)
		}
	}
	if st := child.board.State(); st.CueSeq != cues {
		rang++
		t.Errorf("the child's terminal played %d sounds (last %q)", st.CueSeq-cues, st.Cue)
	}
	if calls, _ := child.store.Calls(10); len(calls) != 0 {
		t.Errorf("the child's terminal logged %d calls from the stranger", len(calls))
	}
	t.Logf("stranger's rings with a stolen login: %d, reached the child: %d", attempts, rang)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
