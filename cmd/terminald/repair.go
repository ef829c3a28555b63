package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync/atomic"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/internal/boltfile"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/selftest"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
)

// repairLEDs shows needs-repair after a damaged state file was replaced
// (terminalstore.OpenOrRepair) until the unit is paired again or reset.
// The unit is unpaired then, and left alone it would show ready (or open
// for pairing) as if nothing had happened, while the parent's phone is
// refused: the red light tells a grown-up to look. Only the patterns of an
// idle unit are replaced; a pairing request, a ring and a call show as
// always, so the parent can pair again without a technician (the terminal
// loop accepts pairing as usual: it does not know of the repair).
type repairLEDs struct {
	inner     terminal.LEDs
	store     *terminalstore.Store
	statePath string
	note      terminalstore.Repair
	log       *slog.Logger
	done      atomic.Bool
}

func newRepairLEDs(inner terminal.LEDs, store *terminalstore.Store, statePath string, note terminalstore.Repair, log *slog.Logger) *repairLEDs {
	return &repairLEDs{inner: inner, store: store, statePath: statePath, note: note, log: log}
}

// idle are the patterns replaced by needs-repair while a repair is pending.
var idle = map[device.Pattern]bool{device.Ready: true, device.Pairable: true, device.Offline: true, device.NoAnswer: true}

// Show shows p, or needs-repair in place of an idle pattern while the
// repair is pending. A parent paired since, or a factory reset (which
// removes the note), ends it.
func (l *repairLEDs) Show(p device.Pattern) error {
	if l.pending() && idle[p] {
		p = device.Fault
	}
	return l.inner.Show(p)
}

// pending reports whether the repair still waits for a pairing; the first
// call that finds it done removes the note and says so.
func (l *repairLEDs) pending() bool {
	if l.done.Load() {
		return false
	}
	_, perr := l.store.Parent()
	note, _ := terminalstore.RepairNote(l.statePath)
	if perr != nil && note != nil {
		return true
	}
	if l.done.Swap(true) {
		return false
	}
	if err := terminalstore.ClearRepairNote(l.statePath); err != nil {
		l.log.Warn("cannot remove the repair note", "err", err)
	}
	l.log.Info("needs-repair cleared: the unit was paired again or reset after its state file was replaced", "damaged_at", l.note.At)
	return false
}

// status is the device panel's line while the repair is pending.
func (l *repairLEDs) status() string {
	return fmt.Sprintf("needs repair: the state file was damaged (%s) and replaced; pair the parent's phone again", l.note.Reason)
}

// storageCheck is the self-test's storage check (selftest.StorageCheck:
// the disk is writable and has room) and then the state file's: a pending
// repair note, or a file damaged now, fails it with the reason; a file the
// running terminald holds is not opened (terminald checked it at start).
func storageCheck(cfg config) selftest.Check {
	c := selftest.StorageCheck(cfg.StateFile, selftest.MinFreeBytes)
	disk := c.Run
	c.Run = func(ctx context.Context, t *selftest.T) (selftest.Status, string) {
		st, detail := disk(ctx, t)
		if st != selftest.Pass {
			return st, detail
		}
		if note, err := terminalstore.RepairNote(cfg.StateFile); err != nil || note != nil {
			if err != nil {
				return selftest.Fail, fmt.Sprintf("%s; %v", detail, err)
			}
			return selftest.Fail, fmt.Sprintf("%s; needs repair: the state file was damaged (%s) and replaced on %s, kept at %s; the unit is unpaired until the parent pairs again",
				detail, note.Reason, note.At.Format(time.DateTime), note.MovedTo)
		}
		db, err := boltfile.OpenReadOnly(cfg.StateFile)
		switch {
		case err == nil:
			db.Close()
			return selftest.Pass, detail + "; state file sound"
		case errors.Is(err, fs.ErrNotExist):
			return selftest.Pass, detail + "; no state file yet"
		case errors.Is(err, bolterrors.ErrTimeout):
			return selftest.Pass, detail + "; state file in use by terminald (checked at its start)"
		case errors.Is(err, boltfile.ErrDamaged):
			return selftest.Fail, fmt.Sprintf("%s; needs repair: %v (terminald moves it aside and starts a fresh one at its next start)", detail, err)
		default:
			return selftest.Fail, fmt.Sprintf("%s; state file: %v", detail, err)
		}
	}
	return c
}
