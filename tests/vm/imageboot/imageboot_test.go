// Package imageboot_test boots the terminal's OS image — the disk `make
// image-sim ARCH=arm64` builds with the layout, overlay and init of the
// Buildroot images — in qemu-system-aarch64 (virt, Cortex-A53, TCG), as a
// technician's card would boot on a board: the image and the unit's signed
// bundle written by the flasher's own code (provisioning/flash onto a card
// file), the image's own kernel, initramfs, init scripts, /data check and
// terminald, gpio-sim as the board's button and LEDs (the simulated
// board's console hooks, tuanju.simconsole=1). Nothing of the test runs in
// the VM: it reads the console (SIMLED lines, terminald's log) and types
// "press".
//
// The rendezvous server and the parent (rendezvoustest's Go client) run
// here on loopback; the VM reaches the server through one guestfwd (qemu's
// user network with restrict=on, as tests/vm). "Ready" is the idle light —
// green steady on the gpio-sim lines — with the parent's client seeing the
// unit online and the server holding the pairing the unit holds.
//
// Each unit's life cuts its power (SIGKILL to qemu) during what writes to
// /data: the first boot's identity import from the provisioning
// partition, pairing, and call-log writes; every next boot must end ready
// and paired to the same parent, at the server and on the unit — or, for
// a pairing cut before the unit stored the parent, cleanly unpaired on
// both sides and paired again at the first try (as tests/vm/powercut).
//
// Run with `make vmtest-image` (part of `make test` through `make vmtest`:
// one unit) or `make soak` (TUANJU_BOOT_LIVES units); without
// TUANJU_IMAGE_SIM it skips.
package imageboot_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
	"github.com/tuanju/tuanju/provisioning/bundle"
	"github.com/tuanju/tuanju/provisioning/signing"
)

// Waits bound a hang; they do not measure (TCG on a shared machine).
const (
	bootWait = 4 * time.Minute // power on → terminald connected
	stepWait = 90 * time.Second
	// readyHold: green held this long with no change is the steady idle
	// light (blinks change every 125–500 ms, a breathing light faster).
	readyHold = 2 * time.Second
)

// Log messages of terminald that the test follows on the console.
const (
	logSupervise = "Starting terminald-supervise"
	logStarting  = `"msg":"starting"`
	logConnected = `"msg":"connected to the rendezvous server"`
	logPairReq   = `"msg":"pairing request"`
	logCallEnded = `"msg":"call ended"`
)

// Default cut windows, from each step's anchor on the console or the
// parent's side (TUANJU_BOOT_WINDOWS=import,pairing,call in ms overrides):
// terminald's import of the bundle runs between the supervisor's start and
// terminald's first log line as the console shows it (~5–8 s here under
// TCG: the static binary is read from the xz squashfs, then the bundle
// read, verified and imported; the console's copy of the log lags by up
// to a second); the server and unit finish a pairing ~20–60 ms after the
// page's confirm; the unit logs a declined call ~0.3–1.2 s after the
// decline as the console shows it. Every uncut boot's import and call
// widen their window when longer.
var defaultWindows = [3]time.Duration{6 * time.Second, 150 * time.Millisecond, 1200 * time.Millisecond}

type harness struct {
	image, port, logDir string
	fwd                 string   // another forward on the VM's network (hostfwd=...), or ""
	cmdline             string   // more of the kernel's command line (tuanju.simap=...), or ""
	qemuArgs            []string // more devices for qemu (the simulated modem's line)
	srv                 *rendezvoustest.Server
	programme           *signing.Key
	windows             [3]time.Duration

	mu      sync.Mutex
	rng     *rand.Rand
	results []result
	ready   []float64 // kernel start → idle light, guest seconds, per boot
	presses [2]int    // presses made, and those the unit did not take (pressed again)
}

type result struct{ step, at, outcome string }

// newHarness starts the server; it skips without an image.
func newHarness(tb testing.TB) *harness {
	tb.Helper()
	dir := os.Getenv("TUANJU_IMAGE_SIM")
	if dir == "" {
		tb.Skip("boots the image-sim image in qemu: run with `make vmtest-image` (sets TUANJU_IMAGE_SIM)")
	}
	for _, f := range []string{"disk.img", "Image", "initrd.gz", "programme.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			tb.Fatalf("TUANJU_IMAGE_SIM=%s: %v (make vmtest-image builds it)", dir, err)
		}
	}
	key, err := loadProgramme(filepath.Join(dir, "programme.key"))
	if err != nil {
		tb.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TUANJU_BOOT_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	tb.Logf("host: seed %d (TUANJU_BOOT_SEED repeats the cut points)", seed)
	h := &harness{
		image: dir, programme: key, windows: defaultWindows,
		logDir: tb.TempDir(),
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		srv: rendezvoustest.NewServer(tb, func(c *rendezvous.Config) {
			c.TURN.Listen = ""
			// qemu's guestfwd connects when the VM starts; terminald's
			// request comes tens of seconds later.
			c.Limits.ReadHeaderTimeout = 6 * time.Minute
		}),
	}
	if d := os.Getenv("TUANJU_BOOT_LOGS"); d != "" {
		h.logDir = d
		os.MkdirAll(d, 0o755)
	}
	if v := os.Getenv("TUANJU_BOOT_WINDOWS"); v != "" {
		for i, f := range strings.SplitN(v, ",", 3) {
			ms, err := strconv.Atoi(f)
			if err != nil || ms <= 0 {
				tb.Fatalf("TUANJU_BOOT_WINDOWS=%q: want import,pairing,call in ms", v)
			}
			h.windows[i] = time.Duration(ms) * time.Millisecond
		}
	}
	u, err := url.Parse(h.srv.URL)
	if err != nil {
		tb.Fatal(err)
	}
	h.port = u.Port()
	return h
}

func envInt(t testing.TB, name string, def, lo int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo {
		t.Fatalf("%s=%q: want a count ≥ %d", name, v, lo)
	}
	return n
}

// TestImageBoot: units flashed, booted to ready, paired, their power cut
// during the import, pairing and call-log writes. TUANJU_BOOT_LIVES units
// (default 1), TUANJU_BOOT_CALL_CUTS call-log cuts each (default 1): a unit
// is 2 + that many cuts and 3 + that many boots.
func TestImageBoot(t *testing.T) {
	h := newHarness(t)
	lives := envInt(t, "TUANJU_BOOT_LIVES", 1, 1)
	callCuts := envInt(t, "TUANJU_BOOT_CALL_CUTS", 1, 0)
	t.Logf("host: %d units, %d cuts each; windows import %v, pairing %v, call-log %v",
		lives, 2+callCuts, h.windows[0], h.windows[1], h.windows[2])
	t.Run("units", func(t *testing.T) {
		for i := range lives {
			t.Run(fmt.Sprintf("unit%02d", i), func(t *testing.T) {
				t.Parallel()
				h.life(t, i, lives, callCuts)
			})
		}
	})
	h.report(t)
}

// unit is one flashed unit and its parent.
type unit struct {
	*unitCard
	name        string
	boots       int
	cred        *rendezvoustest.Credentials // the parent, once paired
	pending     *rendezvoustest.Credentials // the page's credential from a cut pairing
	parent      *rendezvoustest.Client
	serverAtCut string
}

func (h *harness) newUnit(t testing.TB, name string, edit ...func(*bundle.Settings)) *unit {
	u := &unit{unitCard: h.flashUnit(t, name, edit...), name: name}
	t.Cleanup(func() {
		if u.parent != nil {
			u.parent.Close()
		}
	})
	return u
}

func (h *harness) boot(t testing.TB, u *unit) *vm {
	u.boots++
	return h.start(t, u.disk, fmt.Sprintf("%s-boot%d", u.name, u.boots))
}

// widen makes window i at least w.
func (h *harness) widen(i int, w time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.windows[i] = max(h.windows[i], w)
}

func (h *harness) window(i int) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.windows[i]
}

// offset picks cut i of n of one kind in [0, 1.2·w): stratified over the
// window, jittered within its stratum.
func (h *harness) offset(i, n int, w time.Duration) time.Duration {
	h.mu.Lock()
	u := h.rng.Float64()
	h.mu.Unlock()
	return time.Duration((float64(i%n) + u) / float64(n) * 1.2 * float64(w))
}

func (h *harness) record(r result) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.results = append(h.results, r)
}

// life: boot 1 cut during the import; boot 2 registers, pairing cut;
// boot 3 ready and paired, one uncut call, then a cut during a call-log
// write; each further boot ready, same parent, and a call-log cut; a last
// boot ready, same parent.
func (h *harness) life(t testing.TB, i, n, callCuts int) {
	u := h.newUnit(t, fmt.Sprintf("unit%02d", i))

	// Boot 1: the first boot imports the bundle from the provisioning
	// partition when terminald starts; cut somewhere in it.
	v := h.boot(t, u)
	v.await(t, bootWait, logSupervise)
	time.Sleep(h.offset(i, n, h.window(0)))
	v.cut(t)
	r := result{step: "import", at: "before terminald's first log line (loading, or importing)"}
	if v.saw(logStarting) {
		r.at = "after terminald's first log line (import done)"
	}

	// Boot 2: registered with its identity, unpaired; pairing cut.
	v = h.boot(t, u)
	r.outcome = h.checkBoot(t, v, u, r.step, false)
	h.record(r)
	r = result{step: "pairing"}
	if i%5 == 4 {
		// A fifth of the cuts before the page's confirm: the button
		// pressed, the page holding the unit's accept.
		h.pair(t, v, u, 0, true)
		r.at = "before the confirm"
	} else {
		h.pair(t, v, u, h.offset(i, n, h.window(1)), false)
		r.at = "after the confirm"
	}

	// Boots 3..: ready, same parent; a call-log cut each.
	for c := range callCuts {
		v = h.boot(t, u)
		r.outcome = h.checkBoot(t, v, u, r.step, true)
		h.record(r)
		if c == 0 {
			// One uncut call: the unit rings, the parent declines, the
			// unit logs it; its length widens the window if longer.
			h.call(t, v, u, -1)
		}
		r = result{step: "call-log", at: "before the unit logged the call"}
		if h.call(t, v, u, h.offset(i*callCuts+c, n*callCuts, h.window(2))) {
			r.at = "after the unit logged the call"
		}
	}
	v = h.boot(t, u)
	r.outcome = h.checkBoot(t, v, u, r.step, true)
	h.record(r)
	v.cut(t)
}

// checkBoot follows a boot after a cut during step to ready: terminald
// connected with the unit's identity; a cut pairing resolved as the
// parent's page does; the unit's parent (its own record, logged at
// connect) the one the server holds and the page finished with; paired
// again when the unit ended unpaired (if thenPair); the parent's client
// sees it online; the idle light. It returns the outcome.
func (h *harness) checkBoot(t testing.TB, v *vm, u *unit, step string, thenPair bool) string {
	t.Helper()
	sup := v.find(t, bootWait, logSupervise)
	st := v.find(t, bootWait, logStarting)
	h.widen(0, st.at.Sub(sup.at))
	conn := v.await(t, bootWait, logConnected)
	if got := jsonField(conn.text, "device_id"); got != u.deviceID {
		t.Fatalf("after a cut during %s the unit logged in as %q, want %s (its bundle's)", step, got, u.deviceID)
	}
	if _, err := h.srv.Registry().Device(u.deviceID); err != nil {
		t.Fatalf("the server has no record of %s, which logged in: %v", u.deviceID, err)
	}
	unitParent := jsonField(conn.text, "parent_id")
	var notes []string
	switch {
	case u.pending != nil:
		ok := h.resolvePending(t, u)
		switch {
		case ok && unitParent != u.pending.ParentID:
			t.Fatalf("SPLIT: the server and the phone are paired (parent %s), the unit holds %q", u.pending.ParentID, unitParent)
		case !ok && unitParent != "":
			t.Fatalf("SPLIT: the unit holds parent %s, the server refused the phone's credential", unitParent)
		case ok:
			u.cred, u.pending = u.pending, nil
			notes = append(notes, "unit had stored the parent, server "+u.serverAtCut+" → paired")
		default:
			u.pending = nil
			notes = append(notes, "unit had not stored the parent, server "+u.serverAtCut+" → unpaired cleanly, paired again")
		}
	case u.cred != nil && unitParent != u.cred.ParentID:
		t.Fatalf("after a cut during %s the unit holds parent %q, want %s", step, unitParent, u.cred.ParentID)
	case u.cred == nil && unitParent != "":
		t.Fatalf("the unit holds a parent (%s) no page finished pairing with", unitParent)
	case u.cred == nil && step == "pairing":
		notes = append(notes, "unpaired cleanly (cut before the page confirmed), paired again")
	}
	if u.cred == nil {
		if !thenPair {
			return strings.Join(append(notes, "identity whole, registered at the server"), "; ")
		}
		h.pair(t, v, u, -1, false)
	}
	h.awaitReady(t, v, u)
	if len(notes) == 0 {
		notes = append(notes, "ready, same parent")
	}
	return strings.Join(notes, "; ")
}

// awaitReady: the parent logs in (again) and sees the unit online, the
// server pairs the unit with that parent, and the unit's LEDs settle on
// the idle light. It returns the guest's uptime when the light came on.
func (h *harness) awaitReady(t testing.TB, v *vm, u *unit) ledState {
	t.Helper()
	if u.parent != nil {
		u.parent.Close()
		u.parent = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepWait)
	defer cancel()
	c, err := rendezvoustest.DialPaired(ctx, h.srv.WSURL, *u.cred)
	if err != nil {
		t.Fatalf("the parent's login: %v", err)
	}
	u.parent = c
	if on := c.Welcome.PeerOnline; on == nil || !*on {
		for {
			m, err := c.WaitFor(ctx, protocol.TypePresence)
			if err != nil {
				t.Fatalf("the parent never saw the unit online: %v", err)
			}
			if m.PeerOnline != nil && *m.PeerOnline {
				break
			}
		}
	}
	if p, err := h.srv.Registry().ParentOf(u.deviceID); err != nil || p != u.cred.ParentID {
		t.Fatalf("the server pairs %s with %q (%v), want %s", u.deviceID, p, err, u.cred.ParentID)
	}
	s := v.steady(t, stepWait, "100", readyHold)
	h.mu.Lock()
	h.ready = append(h.ready, s.uptime)
	h.mu.Unlock()
	t.Logf("host: %s ready: idle light at %.2f s of guest uptime, parent %s", u.name, s.uptime, u.cred.ParentID)
	return s
}

// resolvePending logs the page's pending credential in until the server
// says paired (true) or auth_failed (false).
func (h *harness) resolvePending(t testing.TB, u *unit) bool {
	t.Helper()
	deadline := time.Now().Add(stepWait)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := rendezvoustest.DialPaired(ctx, h.srv.WSURL, *u.pending)
		cancel()
		if err == nil {
			c.Close()
			return true
		}
		var re *rendezvoustest.RefusedError
		if errors.As(err, &re) && re.Code == protocol.ErrCodeAuthFailed {
			return false
		}
		if !errors.As(err, &re) || re.Code != protocol.ErrCodePairingPending {
			t.Fatalf("the page's login with its pending credential: %v", err)
		}
		// (the server limits logins per identity)
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("the pairing was still pending %v after the unit logged in", stepWait)
	return false
}

// pair plays the parent's page on the label's link, and the child at the
// unit: the press when the unit shows the pairing light. cut < 0: no cut.
// Otherwise the power is cut that long after the confirm leaves, or when
// the unit's accept arrives if beforeConfirm.
func (h *harness) pair(t testing.TB, v *vm, u *unit, cut time.Duration, beforeConfirm bool) {
	t.Helper()
	dev, secret, err := pairing.ParseURL(u.link)
	if err != nil || dev != u.deviceID {
		t.Fatalf("pairing link %q: device %s (want %s), %v", u.link, dev, u.deviceID, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepWait)
	defer cancel()
	p, err := rendezvoustest.StartPair(ctx, h.srv.WSURL, dev, secret)
	if err != nil {
		t.Fatalf("pair request: %v", err)
	}
	defer p.Close()
	if l := v.await(t, stepWait, logPairReq); !strings.Contains(l.text, `"proof_ok":true`) {
		t.Fatalf("the unit refused the label's secret: %s", l.text)
	}
	v.blinking(t, stepWait, "001") // pairing: blue, slow blink
	var acc protocol.Message
	h.pressUntil(ctx, t, v, "the unit's pair_accept", func(ctx context.Context) (err error) {
		acc, err = p.Expect(ctx, protocol.TypePairAccept)
		return err
	})
	if beforeConfirm {
		v.cut(t)
		return
	}
	devInfo, err := p.H.Accept(acc.PairID, pairing.Accept{EphemeralKey: acc.EphemeralKey, PublicKey: acc.PublicKey,
		Fingerprint: acc.Fingerprint, Signature: acc.Signature, Proof: acc.Proof})
	if err != nil {
		t.Fatalf("the unit's accept does not verify: %v", err)
	}
	key, err := pairing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := p.H.Confirm(key)
	if err != nil {
		t.Fatal(err)
	}
	cred := rendezvoustest.Credentials{DeviceID: devInfo.DeviceID, ParentID: acc.PairID, Token: rendezvoustest.NewToken(), Key: key, Device: devInfo}
	err = p.Send(ctx, protocol.Message{Type: protocol.TypePairConfirm, PairID: acc.PairID, PublicKey: conf.PublicKey,
		Signature: conf.Signature, Proof: conf.Proof, Token: cred.Token})
	if err != nil {
		t.Fatalf("pair_confirm: %v", err)
	}
	if cut >= 0 {
		time.Sleep(cut)
		v.cut(t)
		u.pending = &cred
		u.serverAtCut = "had nothing"
		if p, err := h.srv.Registry().ParentOf(u.deviceID); err == nil && p == cred.ParentID {
			u.serverAtCut = "had committed"
		} else if _, err := h.srv.Registry().PendingOf(u.deviceID); err == nil {
			u.serverAtCut = "held it pending"
		}
		return
	}
	paired, err := p.Expect(ctx, protocol.TypePaired)
	if err != nil {
		t.Fatalf("the page's paired: %v", err)
	}
	if paired.ParentID != acc.PairID {
		t.Fatalf("paired %+v, want parent %s", paired, acc.PairID)
	}
	u.cred = &cred
}

// call: the child presses, the parent declines the ring, the unit writes
// the call to its log. cut < 0: no cut; the time from the decline to the
// unit's log line (the write is done by then) widens the call-log window
// when longer. Otherwise the power is cut cut after the decline leaves; it
// returns whether the unit had logged the call by then.
func (h *harness) call(t testing.TB, v *vm, u *unit, cut time.Duration) (logged bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepWait)
	defer cancel()
	var ring protocol.Message
	h.pressUntil(ctx, t, v, "the parent's ring after the press", func(ctx context.Context) (err error) {
		ring, err = u.parent.WaitFor(ctx, protocol.TypeRing)
		return err
	})
	sent := time.Now()
	if err := u.parent.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: ring.CallID, Reason: protocol.ReasonDecline}); err != nil {
		t.Fatalf("decline: %v", err)
	}
	if cut >= 0 {
		time.Sleep(cut)
		v.cut(t)
		return v.saw(`"call_id":"` + ring.CallID + `"`)
	}
	l := v.await(t, stepWait, logCallEnded)
	if id := jsonField(l.text, "call_id"); id != ring.CallID {
		t.Fatalf("the unit logged call %s, the parent declined %s", id, ring.CallID)
	}
	h.widen(2, l.at.Sub(sent))
	t.Logf("host: %s: call %s declined, logged by the unit %v later", u.name, ring.CallID, l.at.Sub(sent).Round(time.Millisecond))
	v.steady(t, stepWait, "100", readyHold)
	return true
}

// pressAnswer bounds the wait for what a press makes happen before the
// child presses again; pressTries bounds the presses.
const (
	pressAnswer = 20 * time.Second
	pressTries  = 4
)

// pressUntil presses the button and waits for what the press makes happen
// (answered returns nil), pressing again when nothing happened within
// pressAnswer (parent bounds it all, and is the context answered gets a
// child of: a chromedp page's, for a browser test). Why a press can be missed here: terminald debounces by
// sampling the line's level after an edge (device.Button); with two VMs
// emulated on a loaded 2-core host its thread can be off the CPU for the
// whole of the simulated 500 ms press, and then sees the button already
// up. A child would press again; the report counts how often.
func (h *harness) pressUntil(parent context.Context, t testing.TB, v *vm, what string, answered func(context.Context) error) {
	t.Helper()
	for i := 1; ; i++ {
		v.press(t)
		h.mu.Lock()
		h.presses[0]++
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(parent, pressAnswer)
		err := answered(ctx)
		cancel()
		if err == nil {
			return
		}
		if !errors.Is(err, context.DeadlineExceeded) || i == pressTries {
			t.Fatalf("%s: %v (%d presses)", what, err, i)
		}
		t.Logf("host: no answer to the press within %v: pressing again", pressAnswer)
		h.mu.Lock()
		h.presses[1]++
		h.mu.Unlock()
	}
}

// report logs what each cut found, for the README.
func (h *harness) report(t testing.TB) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := map[string]int{}
	by := map[result]int{}
	for _, r := range h.results {
		n[r.step]++
		by[r]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "power cuts: %d\n", len(h.results))
	for _, s := range []string{"import", "pairing", "call-log"} {
		fmt.Fprintf(&b, "  %s: %d\n", s, n[s])
		var ks []result
		for k := range by {
			if k.step == s {
				ks = append(ks, k)
			}
		}
		slices.SortFunc(ks, func(a, b result) int { return strings.Compare(a.at+a.outcome, b.at+b.outcome) })
		for _, k := range ks {
			fmt.Fprintf(&b, "    cut %s: %d → %s\n", k.at, by[k], k.outcome)
		}
	}
	fmt.Fprintf(&b, "  presses: %d, of which %d not taken by the unit (pressed again)\n", h.presses[0], h.presses[1])
	if len(h.ready) > 0 {
		s := slices.Clone(h.ready)
		slices.Sort(s)
		fmt.Fprintf(&b, "  idle light at %.1f–%.1f s of guest uptime (median %.1f, %d boots)\n", s[0], s[len(s)-1], s[len(s)/2], len(s))
	}
	t.Log("host: " + b.String())
}
