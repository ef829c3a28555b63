// Package powercut_test cuts a unit's power, for real, in the middle of what
// it writes: the real static terminald runs in the qemu VM on Debian's kernel
// with its state on a real block device (a virtio disk, ext4 journalled,
// data=ordered, as the OS image's /data), and this test SIGKILLs qemu — the
// guest's page cache and every write qemu had not yet issued are lost, as
// in a power cut, where kill -9 of terminald loses nothing the kernel had
// been handed. It cuts during the three steps that write: the identity
// import, pairing, and the call log. The next boot must find the identity
// unchanged, the state file opening (a damaged one is counted: the repair
// path takes over), and the unit ready and paired to the same parent — or,
// for a cut before the terminal stored the parent, cleanly unpaired: the
// server holds no pairing either (two-phase pairing, docs/protocol.md
// "Pairing"), and the family pairs again at the first try.
//
// The rendezvous server and the parent (a Go client) run here on the host's
// loopback, and stay up across the unit's cuts; the VM reaches the server
// through one guestfwd. The VM's half is TestPowerCutDriver in tests/vm.
//
// A unit's life: a fresh disk and identity bundle; boot 1 is cut during
// the import, boot 2 during pairing, boots 3.. during call-log writes (one
// cut each), and a last boot checks the last cut. Cut points are spread over
// each step's measured length (stratified, with jitter), anchored at the
// step's own fault point: the import's begin marker on the console, the
// moment the parent's page sends pair_confirm (or receives the terminal's
// pair_accept, for a cut before the confirm), and the moment the parent
// declines the call the terminal then writes to its log. A first, uncut
// unit measures the three lengths.
//
// Run with `make vmtest-powercut` (TUANJU_PC_LIVES units, 4 cuts each) or
// as part of `make vmtest` (one unit); without TUANJU_PC_BIN it skips.
package powercut_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/pairing"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// Waits bound a hang; they do not measure (TCG on a shared machine).
const (
	bootWait = 150 * time.Second // boot, mount, import, terminald connected
	stepWait = 90 * time.Second
	vmLimit  = 300 // tests/vm/run's outer timeout, seconds
)

// callCuts is how many call-log cuts each unit takes (one boot each).
const callCuts = 2

func TestPowerCuts(t *testing.T) {
	bin := os.Getenv("TUANJU_PC_BIN")
	if bin == "" {
		t.Skip("boots the qemu VM: run with `make vmtest-powercut` (sets TUANJU_PC_BIN)")
	}
	lives := 1
	if v := os.Getenv("TUANJU_PC_LIVES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TUANJU_PC_LIVES=%q: want a count ≥ 1", v)
		}
		lives = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TUANJU_PC_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("host: %d units, %d cuts each, seed %d (TUANJU_PC_SEED repeats the cut points)", lives, 2+callCuts, seed)
	_, file, _, _ := runtime.Caller(0)
	h := &harness{
		bin:  bin,
		run:  filepath.Join(filepath.Dir(file), "..", "run"),
		arch: cmpOr(os.Getenv("TUANJU_VM_ARCH"), "amd64"),
		rng:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		srv: rendezvoustest.NewServer(t, func(c *rendezvous.Config) {
			c.TURN.Listen = ""
			// qemu's guestfwd opens its connection when the VM starts;
			// terminald's request comes seconds later.
			c.Limits.ReadHeaderTimeout = 4 * time.Minute
		}),
		total: lives,
	}
	u, err := url.Parse(h.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	h.port = u.Port()

	// The uncut unit: the whole way once, measuring each step's length.
	t.Run("measure", func(t *testing.T) { h.measure(t) })
	if t.Failed() {
		return
	}
	t.Logf("host: step lengths: import %v, pairing (confirm → paired) %v, call-log (decline → ack) %v",
		h.wImport, h.wPair, h.wCall)
	t.Run("units", func(t *testing.T) {
		for i := range lives {
			t.Run(fmt.Sprintf("unit%02d", i), func(t *testing.T) {
				t.Parallel()
				h.life(t, i)
			})
		}
	})
	h.report(t)
}

type harness struct {
	bin, run, arch, port string
	srv                  *rendezvoustest.Server
	total                int

	mu                    sync.Mutex
	rng                   *rand.Rand
	wImport, wPair, wCall time.Duration
	results               []result
	unsyncedLost, unsyncN int
}

// result is one cut and what the next boot found.
type result struct {
	step    string // import, pairing, call-log
	at      string // where it landed
	outcome string
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// offset picks where cut number i of n (of one kind) lands in [0, 1.2·w):
// stratified over the window, jittered within its stratum.
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

// unit is one simulated unit: its disk, its identity, its parent.
type unit struct {
	disk, bundle, deviceID string
	cred                   *rendezvoustest.Credentials // the parent, once paired
	pending                *rendezvoustest.Credentials // a page's credential from a cut pairing
	parent                 *rendezvoustest.Client
	lastAck                string
	serverAtCut            string // after a pairing cut: what the server held
}

func (h *harness) newUnit(t *testing.T) *unit {
	t.Helper()
	bundle, dev := rendezvoustest.BundleFile(t)
	disk := filepath.Join(t.TempDir(), "data.img")
	// 64 MiB, ext4 with its journal: what the OS image gives /data.
	// Inode tables and journal zeroed now, not by the kernel's lazy init
	// in the background of the first boots.
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "data",
		"-E", "lazy_itable_init=0,lazy_journal_init=0", disk, "64M").CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	u := &unit{disk: disk, bundle: bundle, deviceID: dev}
	t.Cleanup(func() {
		if u.parent != nil {
			u.parent.Close()
		}
	})
	return u
}

// measure runs one unit the whole way without a cut: import, pairing, two
// calls, a clean shutdown; and then boots it again to check it.
func (h *harness) measure(t *testing.T) {
	u := h.newUnit(t)
	v := h.boot(t, u, 2)
	b := v.await(t, bootWait, "VMPC step import begin")
	e := v.await(t, stepWait, "VMPC step import end")
	h.wImport = e.at.Sub(b.at)
	v.await(t, bootWait, "VMPC connected")
	h.wPair = h.pair(t, v, u, -1, false)
	h.login(t, u)
	v.await(t, stepWait, "VMPC ready")
	var ws []time.Duration
	for n := 1; n <= 2; n++ {
		ws = append(ws, h.call(t, v, u, -1))
	}
	h.wCall = slices.Max(ws)
	v.await(t, stepWait, "VMPC done")
	if rc := v.wait(t); rc != 0 {
		t.Fatalf("VM: tests/vm/run exited %d", rc)
	}
	// And the unit comes back ready, paired, with its call log.
	v = h.boot(t, u, 0)
	h.checkBoot(t, v, u, "none", true)
	v.await(t, stepWait, "VMPC done")
	if rc := v.wait(t); rc != 0 {
		t.Fatalf("VM: tests/vm/run exited %d", rc)
	}

	// The control for the check: a state file damaged on the disk (its
	// two meta pages zeroed, debugfs on the powered-off image) must be
	// seen as damaged, repaired by terminald's repair path, and the unit
	// paired again and ready.
	out, err := exec.Command("debugfs", "-w", "-R", "punch /terminal.db 0 1", u.disk).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs punch: %v\n%s", err, out)
	}
	v = h.boot(t, u, 0)
	if got := h.checkBoot(t, v, u, "a damaged state file (control)", true); !strings.Contains(got, "damaged") {
		t.Fatalf("a state file with its meta pages zeroed was not found damaged: %s", got)
	}
	v.await(t, stepWait, "VMPC done")
	if rc := v.wait(t); rc != 0 {
		t.Fatalf("VM: tests/vm/run exited %d", rc)
	}
}

// life is one unit: an import cut, a pairing cut, callCuts call-log cuts,
// and a last boot to check the last.
func (h *harness) life(t *testing.T, i int) {
	u := h.newUnit(t)

	// Boot 1: cut during the import.
	v := h.boot(t, u, 0)
	v.await(t, bootWait, "VMPC step import begin")
	d := h.offset(i, h.total, h.wImport)
	time.Sleep(d)
	v.cut(t)
	at := "during"
	if v.saw("VMPC step import end") {
		at = "after its end"
	}
	r := result{step: "import", at: at}

	// Boot 2: check; then cut during pairing.
	v = h.boot(t, u, 0)
	r.outcome = h.checkBoot(t, v, u, "import", false)
	h.record(r)
	// A fifth of the pairing cuts land before the confirm: the press made,
	// the page holding the terminal's accept.
	r = result{step: "pairing"}
	if i%5 == 4 {
		h.pair(t, v, u, 0, true)
		r.at = "before the confirm"
	} else {
		d = h.offset(i, h.total, h.wPair)
		h.pair(t, v, u, d, false)
		r.at = "after the confirm"
		if v.saw("VMPC ready") {
			r.at = "after ready"
		}
	}

	// Boots 3..: check the last cut; cut during a call-log write.
	for c := range callCuts {
		v = h.boot(t, u, 2)
		r.outcome = h.checkBoot(t, v, u, r.step, true)
		h.record(r)
		// The cut lands around the first call's write.
		d = h.offset(i*callCuts+c, h.total*callCuts, h.wCall)
		h.call(t, v, u, d)
		r = result{step: "call-log", at: "before the ack"}
		if v.ackedAfterCut {
			r.at = "after the ack"
		}
	}
	v = h.boot(t, u, 0)
	r.outcome = h.checkBoot(t, v, u, r.step, true)
	h.record(r)
	v.await(t, stepWait, "VMPC done")
	if rc := v.wait(t); rc != 0 {
		t.Fatalf("VM: tests/vm/run exited %d", rc)
	}
}

// checkBoot reads the VM's check of what the last cut (during step) left,
// brings the unit back to ready — resolving a cut pairing as the parent's
// page does, pairing again if it ended unpaired — and returns the outcome.
func (h *harness) checkBoot(t *testing.T, v *vm, u *unit, step string, thenPair bool) string {
	t.Helper()
	line := v.await(t, bootWait, "VMPC check ")
	f := fields(strings.TrimPrefix(line.text, "VMPC check "))
	var notes []string
	switch f["identity"] {
	case u.deviceID:
	case "none":
		if step != "import" {
			t.Fatalf("the unit lost its identity after a cut during %s: %s", step, line.text)
		}
		notes = append(notes, "identity not yet imported, imported again")
	default:
		t.Fatalf("identity changed or unreadable after a cut during %s: want %s: %s", step, u.deviceID, line.text)
	}
	switch f["state"] {
	case "none":
		if step != "import" {
			t.Fatalf("the state file is gone after a cut during %s: %s", step, line.text)
		}
	case "ok":
	case "damaged":
		// terminald's repair: the file moved aside, a fresh one; the
		// pairing is gone from the unit, which says "needs repair" until
		// the family pairs again (the server drops its record at login).
		notes = append(notes, "state file damaged, repaired, paired again")
		if u.parent != nil {
			u.parent.Close()
			u.parent = nil
		}
		u.cred, u.pending, u.lastAck = nil, nil, ""
	default:
		t.Fatalf("state file does not open after a cut during %s: %s", step, line.text)
	}
	if u.lastAck != "" && f["state"] != "damaged" && f["lastack"] != "found" {
		t.Fatalf("an acknowledged call-log write (call %s) is gone after a cut during %s: %s", u.lastAck, step, line.text)
	}
	if n := v.lastCall; n > 0 {
		if s, _ := strconv.Atoi(f["synced"]); s < n && f["state"] != "none" {
			t.Fatalf("the synced marker of call %d is gone (synced=%s)", n, f["synced"])
		}
	}
	// (the markers of the boot before; counted for the control)
	h.countMarkers(f, v.lastCall)
	v.await(t, bootWait, "VMPC connected")
	if f["state"] == "damaged" {
		h.awaitDropped(t, u)
	}

	vmParent := f["parent"]
	if u.pending != nil {
		// The page lost its socket mid-pairing: it logs in with the
		// credential it made before the confirm, and the server says how
		// the pairing ended once the terminal has logged in.
		ok := h.resolvePending(t, u)
		switch {
		case ok && vmParent != u.pending.ParentID:
			t.Fatalf("SPLIT: the server and the phone are paired (parent %s), the terminal's file has %s", u.pending.ParentID, vmParent)
		case !ok && vmParent != "none":
			t.Fatalf("SPLIT: the terminal stored parent %s, the server refused the phone's credential", vmParent)
		case ok:
			u.cred, u.pending = u.pending, nil
			notes = append(notes, "terminal had stored the parent, server "+u.serverAtCut+" → paired")
		default:
			u.pending = nil
			notes = append(notes, "terminal had not stored the parent, server "+u.serverAtCut+" → unpaired cleanly, paired again")
		}
	} else if u.cred != nil && vmParent != u.cred.ParentID {
		t.Fatalf("the unit's parent changed after a cut during %s: want %s: %s", step, u.cred.ParentID, line.text)
	} else if u.cred == nil && vmParent != "none" {
		t.Fatalf("the unit has a parent (%s) no page finished pairing with", vmParent)
	} else if u.cred == nil && step == "pairing" {
		notes = append(notes, "unpaired cleanly (cut before the page confirmed), paired again")
	}
	if u.cred == nil {
		if !thenPair {
			return strings.Join(append(notes, "identity and state file whole"), "; ")
		}
		h.pair(t, v, u, -1, false)
	}
	h.login(t, u)
	ready := v.await(t, stepWait, "VMPC ready parent=")
	if got := strings.TrimPrefix(ready.text, "VMPC ready parent="); got != u.cred.ParentID {
		t.Fatalf("ready, but paired to %s, want %s", got, u.cred.ParentID)
	}
	if p, err := h.srv.Registry().ParentOf(u.deviceID); err != nil || p != u.cred.ParentID {
		t.Fatalf("the server pairs %s with %q (%v), want %s", u.deviceID, p, err, u.cred.ParentID)
	}
	if len(notes) == 0 {
		notes = append(notes, "ready, same parent")
	}
	return strings.Join(notes, "; ")
}

// awaitDropped waits for the server to drop the pairing of a unit that
// lost its own: terminald says so (unpair) right after its login's welcome,
// a message behind "VMPC connected" that a loaded TCG guest can take a
// while to send. A page that opened the label before then would be told
// already_paired, as it should be; a parent takes longer to scan.
func (h *harness) awaitDropped(t *testing.T, u *unit) {
	t.Helper()
	deadline := time.Now().Add(stepWait)
	for {
		p, err := h.srv.Registry().ParentOf(u.deviceID)
		if errors.Is(err, rendezvous.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server still pairs %s with %q (%v) %v after the unit, its state file lost, logged in", u.deviceID, p, err, stepWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countMarkers counts, for the control, whether the unsynced marker of the
// last call before a cut survived it.
func (h *harness) countMarkers(f map[string]string, n int) {
	if n == 0 {
		return
	}
	us, _ := strconv.Atoi(f["unsynced"])
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unsyncN++
	if us < n {
		h.unsyncedLost++
	}
}

// resolvePending logs the page's pending credential in until the server
// says paired (true) or auth_failed (false).
func (h *harness) resolvePending(t *testing.T, u *unit) bool {
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
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("the pairing was still pending %v after the unit logged in", stepWait)
	return false
}

// login (re)connects the parent, so the unit sees it online.
func (h *harness) login(t *testing.T, u *unit) {
	t.Helper()
	if u.parent != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := rendezvoustest.DialPaired(ctx, h.srv.WSURL, *u.cred)
	if err != nil {
		t.Fatalf("the parent's login: %v", err)
	}
	u.parent = c
}

// pair plays the parent's page on the VM's pairing link. cut < 0: no cut;
// it returns the time from the confirm to the page's paired. Otherwise
// the power is cut cut after the confirm leaves, or when the terminal's
// accept arrives if beforeConfirm.
func (h *harness) pair(t *testing.T, v *vm, u *unit, cut time.Duration, beforeConfirm bool) time.Duration {
	t.Helper()
	link := strings.TrimPrefix(v.await(t, stepWait, "VMPC pairing_url=").text, "VMPC pairing_url=")
	dev, secret, err := pairing.ParseURL(link)
	if err != nil || dev != u.deviceID {
		t.Fatalf("pairing link %q: device %s (want %s), %v", link, dev, u.deviceID, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepWait)
	defer cancel()
	p, err := rendezvoustest.StartPair(ctx, h.srv.WSURL, dev, secret)
	if err != nil {
		t.Fatalf("pair request: %v", err)
	}
	defer p.Close()
	// Finish's steps (rendezvoustest.PairPage), with the cut between them.
	acc, err := p.Expect(ctx, protocol.TypePairAccept)
	if err != nil {
		t.Fatalf("the terminal's pair_accept: %v", err)
	}
	if beforeConfirm {
		v.cut(t)
		return 0
	}
	devInfo, err := p.H.Accept(acc.PairID, pairing.Accept{EphemeralKey: acc.EphemeralKey, PublicKey: acc.PublicKey,
		Fingerprint: acc.Fingerprint, Signature: acc.Signature, Proof: acc.Proof})
	if err != nil {
		t.Fatalf("the terminal's accept does not verify: %v", err)
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
	sent := time.Now()
	err = p.Send(ctx, protocol.Message{Type: protocol.TypePairConfirm, PairID: acc.PairID, PublicKey: conf.PublicKey,
		Signature: conf.Signature, Proof: conf.Proof, Token: cred.Token})
	if err != nil {
		t.Fatalf("pair_confirm: %v", err)
	}
	if cut >= 0 {
		time.Sleep(cut)
		v.cut(t)
		u.pending = &cred
		// Where the server was when the power went: committed, holding the
		// pairing pending (the terminal's pair_complete not yet in), or
		// nothing.
		u.serverAtCut = "had nothing"
		if p, err := h.srv.Registry().ParentOf(u.deviceID); err == nil && p == cred.ParentID {
			u.serverAtCut = "had committed"
		} else if _, err := h.srv.Registry().PendingOf(u.deviceID); err == nil {
			u.serverAtCut = "held it pending"
		}
		return 0
	}
	paired, err := p.Expect(ctx, protocol.TypePaired)
	if err != nil {
		t.Fatalf("the page's paired: %v", err)
	}
	w := time.Since(sent)
	if paired.ParentID != acc.PairID {
		t.Fatalf("paired %+v, want parent %s", paired, acc.PairID)
	}
	u.cred = &cred
	return w
}

// call answers the VM's next call by declining it; the terminal then
// writes the call to its log. cut < 0: no cut; it returns the time from
// the decline to the VM's ack. Otherwise the power is cut cut after the
// decline leaves.
func (h *harness) call(t *testing.T, v *vm, u *unit, cut time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepWait)
	defer cancel()
	ring, err := u.parent.WaitFor(ctx, protocol.TypeRing)
	if err != nil {
		t.Fatalf("the parent's ring: %v", err)
	}
	sent := time.Now()
	if err := u.parent.Send(ctx, protocol.Message{Type: protocol.TypeHangup, CallID: ring.CallID, Reason: protocol.ReasonDecline}); err != nil {
		t.Fatalf("decline: %v", err)
	}
	if cut >= 0 {
		time.Sleep(cut)
		v.cut(t)
		for _, l := range v.all() {
			if id, ok := ackedCall(l.text); ok {
				u.lastAck = id
				if u.lastAck == ring.CallID {
					v.ackedAfterCut = true
				}
			}
		}
		return 0
	}
	ack := v.await(t, stepWait, "VMPC ack call=")
	if id, _ := ackedCall(ack.text); id != ring.CallID {
		t.Fatalf("the VM acknowledged %q, the parent declined %s", ack.text, ring.CallID)
	}
	u.lastAck = ring.CallID
	return ack.at.Sub(sent)
}

// ackedCall is the call a whole "VMPC ack call=ID outcome=..." line
// acknowledges. The cut may stop the console in the middle of the line
// ("VMPC ack call=y" was seen under load): a line without its outcome
// is not an acknowledgement, as its call ID may be cut short.
func ackedCall(text string) (string, bool) {
	rest, ok := strings.CutPrefix(text, "VMPC ack call=")
	if !ok {
		return "", false
	}
	id, outcome, ok := strings.Cut(rest, " outcome=")
	if !ok || outcome == "" || !protocol.ValidID(id) {
		return "", false
	}
	return id, true
}

// report logs the figure for the README's faults table.
func (h *harness) report(t *testing.T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	type key = result
	n := map[string]int{}
	by := map[key]int{}
	for _, r := range h.results {
		n[r.step]++
		by[r]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "power cuts: %d\n", len(h.results))
	for _, s := range []string{"import", "pairing", "call-log"} {
		fmt.Fprintf(&b, "  %s: %d tries\n", s, n[s])
		var ks []key
		for k := range by {
			if k.step == s {
				ks = append(ks, k)
			}
		}
		slices.SortFunc(ks, func(a, b key) int { return strings.Compare(a.at+a.outcome, b.at+b.outcome) })
		for _, k := range ks {
			fmt.Fprintf(&b, "    cut %s: %d → %s\n", k.at, by[k], k.outcome)
		}
	}
	fmt.Fprintf(&b, "  control: the unsynced marker written just before a call was lost in %d of %d call-log cuts (the synced one never)\n",
		h.unsyncedLost, h.unsyncN)
	t.Log("host: " + b.String())
	if h.unsyncN >= 3 && h.unsyncedLost == 0 {
		t.Errorf("no cut lost an unsynced write: the cut is not a power cut (does qemu's disk cache mode keep the guest's page cache?)")
	}
}

// fields parses "k=v k=v" (values without spaces).
func fields(s string) map[string]string {
	m := map[string]string{}
	for _, w := range strings.Fields(s) {
		if k, v, ok := strings.Cut(w, "="); ok {
			m[k] = v
		}
	}
	return m
}

// vm is one boot: tests/vm/run, whose console is read line by line.
type vm struct {
	t       *testing.T
	u       *unit
	pidfile string
	mu      sync.Mutex
	lines   []line
	next    int
	done    chan struct{}
	rc      int
	// lastCall is the last "VMPC call N" the boot before printed before
	// its cut (0: none, or no cut).
	lastCall      int
	ackedAfterCut bool
}

type line struct {
	text string
	at   time.Time
}

// lastCalls carries each unit's last "VMPC call N" into its next boot.
var lastCalls sync.Map

// boot starts the VM for unit u, making calls calls once ready.
func (h *harness) boot(t *testing.T, u *unit, calls int) *vm {
	t.Helper()
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "qemu.pid")
	args := []string{
		"-g", "-q", "-l", filepath.Join(dir, "console.log"),
		"-n", fmt.Sprintf("guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:%s", h.port),
		"-a", filepath.Join(h.bin, "terminald"),
		"-d", u.bundle,
		"-D", u.disk,
		"-P", pidfile,
		"-r", "^TestPowerCutDriver$",
		"-t", strconv.Itoa(vmLimit),
		"-e", "TUANJU_PC=1",
		"-e", "TUANJU_PC_SERVER=ws://10.0.2.100/ws",
		"-e", "TUANJU_PC_PUBLIC=" + h.srv.URL,
		"-e", "TUANJU_PC_IDENTITY=/usr/local/share/vm/" + filepath.Base(u.bundle),
		"-e", fmt.Sprintf("TUANJU_PC_CALLS=%d", calls),
		"-e", "TUANJU_PC_LASTACK=" + cmpOr(u.lastAck, "-"),
		filepath.Join(h.bin, "vmcheck.test"),
	}
	cmd := exec.Command(h.run, args...)
	cmd.Env = append(os.Environ(), "TUANJU_VM_ARCH="+h.arch)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	v := &vm{t: t, u: u, pidfile: pidfile, done: make(chan struct{}), rc: -1}
	if n, ok := lastCalls.Load(u); ok {
		v.lastCall = n.(int)
	}
	lastCalls.Delete(u)
	// -q: run copies the console only to its log; follow the log.
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", h.run, err)
	}
	start := time.Now()
	stopTail := make(chan struct{})
	var tailDone sync.WaitGroup
	tailDone.Add(1)
	go func() {
		defer tailDone.Done()
		v.tail(filepath.Join(dir, "console.log"), stopTail, start)
	}()
	go func() {
		cmd.Wait()
		v.rc = cmd.ProcessState.ExitCode()
		close(stopTail)
		tailDone.Wait()
		close(v.done)
	}()
	t.Cleanup(func() {
		select {
		case <-v.done:
			return
		default:
		}
		// qemu first, so that run ends by itself and removes its
		// initramfs; the whole group only if it does not.
		if b, err := os.ReadFile(pidfile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		select {
		case <-v.done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-v.done
		}
	})
	return v
}

// tail follows the console log until stop, then reads what is left.
func (v *vm) tail(path string, stop <-chan struct{}, start time.Time) {
	var f *os.File
	for f == nil {
		var err error
		if f, err = os.Open(path); err != nil {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var partial string
	for {
		s, err := r.ReadString('\n')
		partial += s
		if err == nil {
			l := strings.TrimRight(partial, "\r\n")
			partial = ""
			v.t.Logf("vm %5.1fs| %s", time.Since(start).Seconds(), l)
			v.mu.Lock()
			v.lines = append(v.lines, line{text: l, at: time.Now()})
			v.mu.Unlock()
			continue
		}
		if err != io.EOF {
			return
		}
		select {
		case <-stop:
			// run has exited: the log is complete; one more pass.
			rest, _ := io.ReadAll(r)
			for l := range strings.Lines(partial + string(rest)) {
				l = strings.TrimRight(l, "\r\n")
				v.t.Logf("vm end| %s", l)
				v.mu.Lock()
				v.lines = append(v.lines, line{text: l, at: time.Now()})
				v.mu.Unlock()
			}
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// cut is the power switch: SIGKILL to qemu; then it waits for run to end.
func (v *vm) cut(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(v.pidfile)
	if err != nil {
		t.Fatalf("qemu's pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("qemu's pid file: %q", b)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill qemu %d: %v", pid, err)
	}
	select {
	case <-v.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("tests/vm/run still running 60 s after qemu was killed")
	}
	// The next boot checks the marker files of the last call before the cut.
	last := 0
	for _, l := range v.all() {
		if n, ok := strings.CutPrefix(l.text, "VMPC call "); ok {
			last, _ = strconv.Atoi(n)
		}
	}
	if last > 0 {
		lastCalls.Store(v.u, last)
	}
}

// saw reports whether the console had a line starting with prefix.
func (v *vm) saw(prefix string) bool {
	for _, l := range v.all() {
		if strings.HasPrefix(l.text, prefix) {
			return true
		}
	}
	return false
}

func (v *vm) all() []line {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.lines)
}

// await returns the first unread console line that starts with prefix.
func (v *vm) await(t *testing.T, d time.Duration, prefix string) line {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v.mu.Lock()
		for ; v.next < len(v.lines); v.next++ {
			if l := v.lines[v.next]; strings.HasPrefix(l.text, prefix) {
				v.next++
				v.mu.Unlock()
				return l
			}
		}
		v.mu.Unlock()
		select {
		case <-v.done:
			// Lines read at the end may hold it.
			v.mu.Lock()
			for ; v.next < len(v.lines); v.next++ {
				if l := v.lines[v.next]; strings.HasPrefix(l.text, prefix) {
					v.next++
					v.mu.Unlock()
					return l
				}
			}
			v.mu.Unlock()
			t.Fatalf("VM ended (tests/vm/run exit %d) before printing %q", v.rc, prefix)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM printed no %q within %v", prefix, d)
		}
	}
}

// wait returns tests/vm/run's exit status.
func (v *vm) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-v.done:
		return v.rc
	case <-time.After(stepWait):
		t.Fatalf("VM still running %v after its last step", stepWait)
		return -1
	}
}
