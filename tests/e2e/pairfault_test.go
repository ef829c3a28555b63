package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Pairing across three parties that can each die at any step (issue 11):
// the tests stop the terminal, the server or the page at every step of the
// handshake — a hook at each message, not a sleep — restart what was
// stopped from the same state files, and check that the family ends paired
// on all three sides or on none, and, when on none, can pair again without
// a factory reset.

// pageFault is a step at which the parent's page dies.
type pageFault string

const (
	pageBeforeConfirm pageFault = "page: credential kept, pair_confirm not sent"
	pageAfterConfirm  pageFault = "page: pair_confirm sent"
)

// pairFault is one place to stop one party.
type pairFault struct {
	term terminal.PairFaultPoint
	srv  rendezvous.FaultPoint
	page pageFault
}

func (f pairFault) String() string { return string(f.term) + string(f.srv) + string(f.page) }

// pairOutcome is how each side ended up.
type pairOutcome struct {
	terminal, server, phone string // the parent ID each holds, "" for none
	serverPending           bool
}

func (o pairOutcome) split() bool {
	return o.serverPending || o.terminal != o.server || o.server != o.phone
}

// TestPairingFaultPoints: every step of pairing, each party stopped there
// in turn. The figure for docs/security.md is the log line at the end.
func TestPairingFaultPoints(t *testing.T) {
	var faults []pairFault
	for _, p := range terminal.PairFaultPoints {
		faults = append(faults, pairFault{term: p})
	}
	for _, p := range rendezvous.FaultPoints {
		faults = append(faults, pairFault{srv: p})
	}
	faults = append(faults, pairFault{page: pageBeforeConfirm}, pairFault{page: pageAfterConfirm})
	splits, paired := 0, 0
	for _, f := range faults {
		var o pairOutcome
		t.Run(f.String(), func(t *testing.T) { o = pairWithFault(t, f) })
		if o.split() {
			splits++
		}
		if o.terminal != "" {
			paired++
		}
	}
	t.Logf("%d fault points × {terminal %d, server %d, page %d} stopped: %d splits (%d ended paired, %d unpaired and paired again)",
		len(faults), len(terminal.PairFaultPoints), len(rendezvous.FaultPoints), 2, splits, paired, len(faults)-paired)
	if splits != 0 {
		t.Errorf("%d of %d fault points split the pairing", splits, len(faults))
	}
}

// pairWithFault pairs a fresh terminal, stops the party f names at its
// step, restarts it from its state files, and returns how the three sides
// ended. It fails the test on a split.
func pairWithFault(t *testing.T, f pairFault) pairOutcome {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := rendezvoustest.NewServer(t, nil)
	dataDir := srv.Config.DataDir
	px := newProxy(t, srv.URL)
	state := filepath.Join(t.TempDir(), "terminal.db")

	fault := newOneFault()
	o := terminalOpts{wsURL: px.wsURL(), statePath: state}
	if f.term != "" {
		o.pairFault = func(s terminal.PairFaultPoint) bool { return s == f.term && fault.hit() }
	}
	if f.srv != "" {
		srv.SetPairFault(func(s rendezvous.FaultPoint) bool { return s == f.srv && fault.hit() })
	}
	r := startTerminal(t, ctx, srv, o)

	sctx, scancel := context.WithTimeout(ctx, step)
	defer scancel()
	deviceID, pagec := pairUntilFault(t, sctx, r, px.wsURL(), fault, func(s pageFault) bool { return s == f.page && fault.hit() }, f.String())

	switch {
	case f.term != "":
		r.stop()
		r = startTerminal(t, ctx, srv, terminalOpts{wsURL: px.wsURL(), statePath: state})
	case f.srv != "":
		srv.Close()
		srv = rendezvoustest.NewServer(t, func(c *rendezvous.Config) { c.DataDir = dataDir })
		px.retarget(srv.URL)
		r.srv = srv
	}
	return settlePairing(t, ctx, sctx, r, srv.Registry(), px.wsURL(), deviceID, pagec, f.String())
}

// oneFault is a fault that fires once: hit is true the first time only,
// and fired is closed then.
type oneFault struct {
	once  sync.Once
	fired chan struct{}
}

func newOneFault() *oneFault { return &oneFault{fired: make(chan struct{})} }

func (f *oneFault) hit() bool {
	first := false
	f.once.Do(func() { first = true; close(f.fired) })
	return first
}

// pageResult is how a page's pairing ended: the credential it kept, and
// pageSide's error.
type pageResult struct {
	cred rendezvoustest.Credentials
	err  error
}

// pairUntilFault starts pairing r's terminal as the web app does (the
// page at wsURL keeps its credential before its confirm leaves; at is its
// hook, pageSide), presses the terminal's button when its lights ask, and
// returns once fault has fired: the terminal's device ID and where the
// page's result will come. what names the fault.
func pairUntilFault(t *testing.T, sctx context.Context, r *rig, wsURL string, fault *oneFault, at func(pageFault) bool, what string) (string, <-chan pageResult) {
	t.Helper()
	deviceID, secret, err := pairing.ParseURL(r.term.PairingURL())
	if err != nil {
		t.Fatal(err)
	}
	page, err := rendezvoustest.StartPair(sctx, wsURL, deviceID, secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { page.Close() })
	if err := r.confirmPairing(sctx); err != nil {
		t.Fatal(err)
	}
	pagec := make(chan pageResult, 1)
	go func() {
		cred, err := pageSide(sctx, page, at)
		pagec <- pageResult{cred, err} // logged by settlePairing: this goroutine may outlive the test
	}()
	select {
	case <-fault.fired:
	case <-sctx.Done():
		t.Fatalf("the pairing never reached %s", what)
	}
	return deviceID, pagec
}

// pairingReader is what settlePairing reads of a registry: a server's
// (rendezvous.Registry) or the cluster's, through a connection of the
// test's own (*natsreg.Registry).
type pairingReader interface {
	ParentOf(deviceID string) (string, error)
	PendingOf(deviceID string) (rendezvous.PendingPairing, error)
}

// settlePairing waits for the page's credential and the terminal back
// online after the fault what names, reads what the terminal, the
// server's registry (reg) and the phone (logging in at phoneURL) hold, and
// fails the test on a split. A page that kept no credential (it never had
// the terminal's accept) leaves the phone nothing to log in with: it holds
// no parent. Unpaired everywhere, the family pairs again; paired, the
// phone's ring rings the child.
func settlePairing(t *testing.T, ctx, sctx context.Context, r *rig, reg pairingReader, phoneURL, deviceID string,
	pagec <-chan pageResult, what string) pairOutcome {
	t.Helper()
	var cred rendezvoustest.Credentials
	select {
	case res := <-pagec:
		t.Logf("page: %v", res.err)
		cred = res.cred
	case <-sctx.Done():
		t.Fatal("the page never finished")
	}
	r.waitIdle("the terminal is back online after the fault")

	var out pairOutcome
	if cred.ParentID != "" {
		out.phone = phoneSide(t, sctx, phoneURL, cred)
	}
	if p, err := r.store.Parent(); err == nil {
		out.terminal = p.ParentID
	} else if !errors.Is(err, terminalstore.ErrNotPaired) {
		t.Fatal(err)
	}
	if id, err := reg.ParentOf(deviceID); err == nil {
		out.server = id
	} else if !errors.Is(err, rendezvous.ErrNotFound) {
		t.Fatal(err)
	}
	_, err := reg.PendingOf(deviceID)
	out.serverPending = err == nil
	t.Logf("after %s: terminal %q, server %q (pending %v), phone %q", what, out.terminal, out.server, out.serverPending, out.phone)
	if out.split() {
		t.Errorf("split pairing after %s: terminal %q, server %q (pending %v), phone %q", what, out.terminal, out.server, out.serverPending, out.phone)
		return out
	}

	if out.terminal == "" {
		// Unpaired everywhere: the family pairs again, no reset needed.
		again := r.pair()
		if again.ParentID == cred.ParentID {
			t.Errorf("the new pairing reused the dead parent ID %s", cred.ParentID)
		}
		return out
	}
	// Paired everywhere: the phone's ring reaches the child, whose
	// terminal checks it with the key it stored.
	ph := r.phone(cred, r.opts.profile)
	if _, err := ph.Ring(ctx); err != nil {
		t.Fatal(err)
	}
	r.waitPattern(device.Ringing, "the paired phone's ring rings the child")
	return out
}

// pageSide plays the page from the terminal's accept on: it keeps its
// credential, then confirms, as the web app does. At each of its steps it
// calls at (the test's hook; nil: none), which may hold the page there
// and, returning true, kills it there. It returns the credential it kept.
func pageSide(ctx context.Context, page *rendezvoustest.PairPage, at func(pageFault) bool) (rendezvoustest.Credentials, error) {
	if at == nil {
		at = func(pageFault) bool { return false }
	}
	acc, err := page.Expect(ctx, protocol.TypePairAccept)
	if err != nil {
		return rendezvoustest.Credentials{}, err
	}
	dev, err := page.H.Accept(acc.PairID, pairing.Accept{EphemeralKey: acc.EphemeralKey, PublicKey: acc.PublicKey,
		Fingerprint: acc.Fingerprint, Signature: acc.Signature, Proof: acc.Proof})
	if err != nil {
		return rendezvoustest.Credentials{}, err
	}
	key, err := pairing.NewKey()
	if err != nil {
		return rendezvoustest.Credentials{}, err
	}
	cred := rendezvoustest.Credentials{DeviceID: dev.DeviceID, ParentID: acc.PairID, Token: rendezvoustest.NewToken(), Key: key, Device: dev}
	if at(pageBeforeConfirm) {
		page.Close()
		return cred, errors.New("page died before its confirm")
	}
	conf, err := page.H.Confirm(key)
	if err != nil {
		return cred, err
	}
	err = page.Send(ctx, protocol.Message{Type: protocol.TypePairConfirm, PairID: acc.PairID, PublicKey: conf.PublicKey,
		Signature: conf.Signature, Proof: conf.Proof, Token: cred.Token})
	if err != nil {
		return cred, err
	}
	if at(pageAfterConfirm) {
		page.Close()
		return cred, errors.New("page died after its confirm")
	}
	m, err := page.Expect(ctx, protocol.TypePaired)
	if err != nil {
		return cred, err
	}
	if m.ParentID != cred.ParentID {
		return cred, fmt.Errorf("paired names parent %s, the page kept %s", m.ParentID, cred.ParentID)
	}
	return cred, nil
}

// phoneSide is what the phone learns by logging in with the credential it
// kept, as the web app does at every start: its parent ID if the login
// succeeds, "" if it is refused (auth_failed: the page deletes it). A
// pairing_pending answer is waited out: the terminal is back online, so
// its login decides the pending pairing.
func phoneSide(t *testing.T, ctx context.Context, wsURL string, cred rendezvoustest.Credentials) string {
	t.Helper()
	for {
		c, err := rendezvoustest.DialPaired(ctx, wsURL, cred)
		if err == nil {
			c.Close()
			return cred.ParentID
		}
		var ref *rendezvoustest.RefusedError
		if !errors.As(err, &ref) {
			t.Fatalf("phone login: %v", err)
		}
		switch ref.Code {
		case protocol.ErrCodeAuthFailed:
			return ""
		case protocol.ErrCodePairingPending:
			t.Logf("phone login: pairing pending; trying again")
		default:
			t.Fatalf("phone login refused: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the pairing stayed pending: %v", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// retarget points the proxy's new connections at another server (one
// restarted on the same data directory listens on a new port).
func (p *proxy) retarget(serverURL string) {
	u, err := url.Parse(serverURL)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.target = u.Host
	p.mu.Unlock()
}
