package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/boltfile/boltfiletest"
	"github.com/tuanju/tuanju/internal/rendezvous/rendezvoustest"
	"github.com/tuanju/tuanju/internal/terminal/selftest"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/internal/terminal/terminaltest"
)

// pairedUnit makes a provisioned unit paired with a parent and a call log
// big enough that the file has data pages, and returns its device ID.
func pairedUnit(t *testing.T, state string) string {
	t.Helper()
	id := rendezvoustest.ProvisionFile(t, state)
	s, err := terminalstore.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	parent, err := terminaltest.NewParent()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.PairWith(s); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if err := s.AppendCall(terminalstore.CallRecord{CallID: fmt.Sprintf("call-%03d-with-a-long-enough-id", i), Outcome: "answered"}); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// TestServeRepairsDamagedState: terminald on a damaged state file (each
// kind the fault-injection run found, issue 11) does not crash: it moves
// the file aside, starts as the same device, unpaired, says why, and shows
// needs-repair in the self-test; on a sound file (the control) it starts
// paired and says nothing of repair. Before the fix it exited with a Go
// stack trace at every start.
func TestServeRepairsDamagedState(t *testing.T) {
	srv := rendezvoustest.NewServer(t, nil)
	kinds := append([]boltfiletest.Kind{{Name: "undamaged (control)", Damage: func(testing.TB, string) {}}}, boltfiletest.Kinds()...)
	for _, k := range kinds {
		t.Run(k.Name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "terminal.db")
			id := pairedUnit(t, state)
			k.Damage(t, state)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := newLines()
			done := make(chan error, 1)
			go func() {
				defer out.w.Close()
				done <- run(ctx, []string{"-server", srv.WSURL, "-state", state, "-board", "sim", "-camera", "synthetic",
					"-mic", "synthetic", "-loopback-only", "-log-format", "text"}, out.w, io.Discard)
			}()
			out.wait(t, "terminal "+id)
			if k.Name != "undamaged (control)" {
				// Said once the unit knows it has no parent: after the
				// line above, and later still on a loaded machine.
				out.wait(t, "not paired")
			}
			select {
			case err := <-done:
				t.Fatalf("terminald ended: %v", err)
			default:
			}
			out.mu.Lock()
			said := strings.Join(out.all, "\n")
			out.mu.Unlock()
			moved, _ := filepath.Glob(state + ".damaged-*")
			note, _ := terminalstore.RepairNote(state)
			if k.Name == "undamaged (control)" {
				if strings.Contains(said, "needs repair") || len(moved) > 0 || note != nil {
					t.Errorf("a sound state file was repaired: %q, moved %v", said, moved)
				}
				if strings.Contains(said, "not paired") {
					t.Error("a sound state file lost its pairing")
				}
			} else {
				if !strings.Contains(said, "needs repair: state file damaged") || !strings.Contains(said, "not paired") {
					t.Errorf("terminald said %q; want the repair and that it is unpaired", said)
				}
				if len(moved) != 1 || note == nil {
					t.Errorf("damaged file kept as %v, note %+v; want one kept and a note", moved, note)
				}
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("terminald: %v", err)
				}
			case <-time.After(rendezvoustest.Timeout):
				t.Fatal("terminald did not stop")
			}
			// The self-test's storage check names the repair.
			cfg := defaults()
			cfg.StateFile = state
			st, detail := storageCheck(cfg).Run(context.Background(), nil)
			if want := map[bool]selftest.Status{true: selftest.Pass, false: selftest.Fail}[k.Name == "undamaged (control)"]; st != want {
				t.Errorf("selftest storage = %s %q, want %s", st, detail, want)
			}
			if k.Name != "undamaged (control)" && !strings.Contains(detail, "needs repair: the state file was damaged") {
				t.Errorf("selftest storage detail %q does not say why", detail)
			}
		})
	}
}

// TestRepairLEDs: while a repair is pending an idle unit shows
// needs-repair, a pairing request and a call show as always; once a parent
// has paired again the lights are the terminal's and the note is gone.
func TestRepairLEDs(t *testing.T) {
	state := filepath.Join(t.TempDir(), "terminal.db")
	pairedUnit(t, state)
	boltfiletest.Kinds()[2].Damage(t, state) // zero bytes
	store, note, err := terminalstore.OpenOrRepair(state, terminalstore.IdentityPath(state), time.Now())
	if err != nil || note == nil {
		t.Fatalf("repair: %v %+v", err, note)
	}
	defer store.Close()
	var rec recordLEDs
	l := newRepairLEDs(&rec, store, state, *note, slog.New(slog.DiscardHandler))
	for _, p := range []device.Pattern{device.Ready, device.Pairable, device.Pairing, device.Ringing, device.Offline} {
		l.Show(p)
	}
	want := []device.Pattern{device.Fault, device.Fault, device.Pairing, device.Ringing, device.Fault}
	if fmt.Sprint(rec.seen) != fmt.Sprint(want) {
		t.Errorf("showed %v while pending, want %v", rec.seen, want)
	}
	if err := store.SetParent(terminalstore.Parent{ParentID: "p2", PairedAt: time.Now().UTC(), PublicKey: "cGFyZW50"}); err != nil {
		t.Fatal(err)
	}
	rec.seen = nil
	l.Show(device.Ready)
	if len(rec.seen) != 1 || rec.seen[0] != device.Ready {
		t.Errorf("showed %v after pairing again, want [ready]", rec.seen)
	}
	if n, _ := terminalstore.RepairNote(state); n != nil {
		t.Error("the repair note outlived the new pairing")
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatal(err)
	}
}
