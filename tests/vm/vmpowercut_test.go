//go:build vmtest

package vm_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/pins"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/provisioning/devcert"
)

// TestPowerCutDriver is the VM's half of the power-cut test (tests/vm/powercut
// holds the host's half: the rendezvous server, the parent, and the hand on
// the power switch, which SIGKILLs qemu). Each boot it mounts the unit's
// state disk (/dev/vda, ext4 journalled, data=ordered: what the OS image
// gives /data), reports what the last cut left, then brings the unit up the
// way it comes up in the field — import the identity if it has none, start
// terminald, pair if unpaired (pressing the button when asked), wait until
// it is ready and its parent online — and then makes TUANJU_PC_CALLS calls
// the host's parent declines, each ending in a call-log write. The host cuts
// the power somewhere in one of those steps. Console markers:
//
//	VMPC check identity=ID|none|bad state=ok|none|damaged parent=ID|none lastack=found|missing|- unsynced=N synced=N
//	VMPC step import begin / VMPC step import end
//	VMPC connected
//	VMPC pairing_url=URL       the host's parent opens it
//	VMPC press                 the confirming press, now
//	VMPC ready parent=ID       ready light, parent online
//	VMPC call N                about to press for call N (its marker files written)
//	VMPC ack call=ID           terminald logged the end of call ID (after the call-log write)
//	VMPC done                  no cut came: a clean shutdown
//
// It runs only when the host asked for it (TUANJU_PC=1 on the kernel command
// line).
func TestPowerCutDriver(t *testing.T) {
	if os.Getenv("TUANJU_PC") != "1" {
		t.Skip("the VM half of tests/vm/powercut: runs only when that test boots the VM")
	}
	env := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			t.Fatalf("%s not set on the kernel command line", k)
		}
		return v
	}
	calls, err := strconv.Atoi(env("TUANJU_PC_CALLS"))
	if err != nil {
		t.Fatalf("TUANJU_PC_CALLS: %v", err)
	}
	button := filepath.Join(simLine(t, "CALL_BUTTON"), "pull")
	leds := map[device.Color]string{}
	for c, name := range pins.DefaultMap().LEDs {
		leds[c] = filepath.Join(simLine(t, name), "value")
	}
	writeAttr(t, button, "pull-up")

	// The state disk, mounted as the OS image mounts /data. The journal is
	// replayed here after a cut.
	const data = "/data"
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "data=ordered", "/dev/vda", data).CombinedOutput(); err != nil {
		fmt.Println("VMPC mount_failed")
		t.Fatalf("mount /dev/vda: %v\n%s", err, out)
	}
	statePath := filepath.Join(data, "terminal.db")
	idPath := terminalstore.IdentityPath(statePath)
	lastAck := os.Getenv("TUANJU_PC_LASTACK") // "-": none acknowledged yet
	if lastAck == "-" {
		lastAck = ""
	}
	fmt.Printf("VMPC check %s\n", checkState(statePath, idPath, lastAck, data))

	conf := filepath.Join(data, "terminald.toml")
	body := fmt.Sprintf(`server_url = %q
public_url = %q
state_file = %q
board = "gpio"
log_format = "json"
log_level = "info"
screen = ""
[media]
camera = "synthetic"
microphone = "synthetic"
`, env("TUANJU_PC_SERVER"), env("TUANJU_PC_PUBLIC"), statePath)
	// Written in place, not synced: it is the same every boot, and a cut
	// that tears it is mended here.
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}

	// Provisioning, when the unit has no identity (a new unit, or a cut
	// during the last import).
	if _, err := os.Stat(idPath); errors.Is(err, os.ErrNotExist) {
		fmt.Println("VMPC step import begin")
		out, err := exec.Command("terminald", "identity", "import", "-config", conf, env("TUANJU_PC_IDENTITY")).CombinedOutput()
		fmt.Println("VMPC step import end")
		if err != nil {
			t.Fatalf("terminald identity import: %v\n%s", err, out)
		}
	}

	// The label's link, read the technician's way, before terminald holds
	// the state file (bbolt's lock). A unit that kept its parent never
	// pairs again: terminald settles any difference with the server at
	// login, never changing its own record.
	parentID := pcParent
	url := ""
	if parentID == "" {
		var err error
		if url, err = labelURL(conf); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, "terminald", "-config", conf)
	d.waitLog(t, 90*time.Second, func(r logRecord) bool { return r.Msg == "connected to the rendezvous server" })
	fmt.Println("VMPC connected")
	if parentID == "" {
		fmt.Printf("VMPC pairing_url=%s\n", url)
		d.waitLog(t, 120*time.Second, func(r logRecord) bool { return r.Msg == "pairing request" })
		waitPattern(t, leds, device.Pairing, 30*time.Second)
		fmt.Println("VMPC press")
		press(t, button)
		parentID = d.waitLog(t, 60*time.Second, func(r logRecord) bool { return r.Msg == "paired" }).ParentID
	}
	// The parent is online: said in the login's welcome, or in a presence
	// message afterwards (the host's parent logs in once the unit has).
	d.waitLog(t, 90*time.Second, func(r logRecord) bool {
		return (r.Msg == "parent presence" && r.Online != nil && *r.Online) ||
			(r.Msg == "connected to the rendezvous server" && r.ParentOnline != nil && *r.ParentOnline)
	})
	waitPattern(t, leds, device.Ready, 30*time.Second)
	fmt.Printf("VMPC ready parent=%s\n", parentID)

	seen := map[string]bool{}
	for n := 1; n <= calls; n++ {
		// The control for the cut itself: one marker file written without
		// a sync, one with (file and directory). After a real power cut
		// the unsynced one of the last call is usually gone; the synced
		// one never is.
		writeMarker(t, data, "unsynced", n, false)
		writeMarker(t, data, "synced", n, true)
		fmt.Printf("VMPC call %d\n", n)
		press(t, button)
		end := d.waitLog(t, 60*time.Second, func(r logRecord) bool {
			return r.Msg == "call ended" && r.CallID != "" && !seen[r.CallID]
		})
		seen[end.CallID] = true
		fmt.Printf("VMPC ack call=%s outcome=%s\n", end.CallID, end.Outcome)
		waitPattern(t, leds, device.Ready, 60*time.Second)
	}
	d.stop(t)
	if err := syscall.Unmount(data, 0); err != nil {
		t.Errorf("umount %s: %v", data, err)
	}
	fmt.Println("VMPC done")
}

// pcParent is the parent checkState found in the state file this boot.
var pcParent string

// labelURL is the pairing link `terminald label` prints.
func labelURL(conf string) (string, error) {
	label, err := exec.Command("terminald", "label", "-config", conf).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("terminald label: %v\n%s", err, label)
	}
	for line := range strings.Lines(string(label)) {
		if strings.HasPrefix(line, "http") {
			return strings.TrimSpace(line), nil
		}
	}
	return "", fmt.Errorf("terminald label printed no link:\n%s", label)
}

// checkState reports what the last cut left on the disk: the identity
// file's device ID, whether the state file opens, its parent, whether the
// call the host last saw acknowledged is in the call log, and the newest
// marker files. It opens the state file the way terminald does (bbolt,
// read and write), before terminald runs.
func checkState(statePath, idPath, lastAck, dir string) string {
	var b strings.Builder
	switch raw, err := os.ReadFile(idPath); {
	case errors.Is(err, os.ErrNotExist):
		b.WriteString("identity=none")
	case err != nil:
		fmt.Fprintf(&b, "identity=bad(%v)", err)
	default:
		key, _, err := devcert.ParseBundle(raw)
		if err != nil {
			b.WriteString("identity=bad")
			break
		}
		id, _ := devcert.DeviceID(&key.PublicKey)
		fmt.Fprintf(&b, "identity=%s", id)
	}
	ack := "-"
	if _, err := os.Stat(statePath); errors.Is(err, os.ErrNotExist) {
		b.WriteString(" state=none parent=none")
	} else if s, err := terminalstore.OpenFiles(statePath, idPath); err != nil {
		if !errors.Is(err, terminalstore.ErrDamaged) {
			fmt.Fprintf(&b, " state=error parent=none err=%q", strings.ReplaceAll(err.Error(), " ", "_"))
		} else if s, _, rerr := terminalstore.OpenOrRepair(statePath, idPath, time.Now()); rerr != nil {
			fmt.Fprintf(&b, " state=unrepaired parent=none err=%q repair_err=%q", err.Error(), rerr.Error())
		} else {
			// terminald's own repair (what it runs at start), run here
			// so the label can be read: the file moved aside, a fresh
			// one, the identity kept, needs-repair until paired again.
			s.Close()
			fmt.Fprintf(&b, " state=damaged parent=none err=%q", strings.ReplaceAll(err.Error(), " ", "_"))
		}
	} else {
		p, err := s.Parent()
		switch {
		case errors.Is(err, terminalstore.ErrNotPaired):
			b.WriteString(" state=ok parent=none")
		case err != nil:
			fmt.Fprintf(&b, " state=ok parent=error err=%q", err.Error())
		default:
			pcParent = p.ParentID
			fmt.Fprintf(&b, " state=ok parent=%s", p.ParentID)
		}
		if lastAck != "" {
			ack = "missing"
			recs, err := s.Calls(terminalstore.MaxCalls)
			if err != nil {
				ack = "error"
			}
			for _, r := range recs {
				if r.CallID == lastAck {
					ack = "found"
				}
			}
		}
		s.Close()
	}
	fmt.Fprintf(&b, " lastack=%s unsynced=%d synced=%d", ack, newestMarker(dir, "unsynced"), newestMarker(dir, "synced"))
	return b.String()
}

// writeMarker writes dir/kind-N holding N, with fsync of file and directory
// when synced.
func writeMarker(t *testing.T, dir, kind string, n int, synced bool) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d", kind, n)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(f, "%d\n", n); err != nil {
		t.Fatal(err)
	}
	if synced {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if synced {
		dh, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer dh.Close()
		if err := dh.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

// newestMarker is the highest N whose dir/kind-N holds N, then removes
// them all (each boot starts its count again at 1).
func newestMarker(dir, kind string) int {
	best := 0
	ms, _ := filepath.Glob(filepath.Join(dir, kind+"-*"))
	for _, m := range ms {
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(m), kind+"-"))
		b, rerr := os.ReadFile(m)
		if err == nil && rerr == nil && strings.TrimSpace(string(b)) == strconv.Itoa(n) && n > best {
			best = n
		}
		os.Remove(m)
	}
	return best
}
