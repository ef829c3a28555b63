package terminalstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/google/renameio/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/tuanju/tuanju/internal/boltfile"
)

// A damaged state file (a write cut off by a power cut, a bad block) must
// not turn the unit dark: before issue 11 both the open and the first read
// panicked, at every start. OpenOrRepair moves it aside, keeps it for the
// technician, and starts a fresh one; the unit keeps its identity (it is in
// the identity file) and loses its pairing and call log with the file. It
// leaves a note beside the state file (RepairNote) that the daemon shows as
// "needs repair" until a parent has paired again, and that `terminald
// selftest` reports.

// Repair is what OpenOrRepair did with a damaged state file.
type Repair struct {
	At time.Time `json:"at"`
	// Reason is bbolt's first finding, e.g. "open: invalid database".
	Reason string `json:"reason"`
	// MovedTo is where the damaged file is kept.
	MovedTo string `json:"moved_to"`
	// IdentitySalvaged: the identity was only in the damaged file (a unit
	// from before the identity file) and could still be read out of it.
	IdentitySalvaged bool `json:"identity_salvaged,omitempty"`
}

// RepairNotePath is where the note of the last repair is kept.
func RepairNotePath(statePath string) string { return statePath + ".repair" }

// OpenOrRepair is OpenFiles, except that a damaged state file is moved
// aside (boltfile.MoveAside) and a fresh one made; the returned Repair says
// so (nil: the file was sound). The fresh file is marked unpair-pending, as
// after a factory reset: the server is told at the next login that this
// unit has no parent any more, and the parent pairs again. Errors that are
// not damage (the file locked by another process, not readable) are
// returned as OpenFiles returns them, and nothing is moved.
func OpenOrRepair(statePath, identityPath string, now time.Time) (*Store, *Repair, error) {
	s, err := OpenFiles(statePath, identityPath)
	if err == nil || !errors.Is(err, ErrDamaged) {
		return s, nil, err
	}
	r := &Repair{At: now.UTC(), Reason: err.Error()}
	var de *boltfile.DamageError
	if errors.As(err, &de) {
		r.Reason = de.Reason()
	}
	if id, _ := readIdentityFile(identityPath); id == nil {
		var legacy *identity
		boltfile.Salvage(statePath, func(tx *bolt.Tx) error {
			legacy = parseLegacy(legacyIdentity(tx))
			return nil
		})
		if legacy != nil {
			if err := writeIdentityFile(identityPath, legacy.key, legacy.cert); err != nil {
				return nil, nil, fmt.Errorf("terminalstore: rescue the identity from the damaged %s: %w", statePath, err)
			}
			r.IdentitySalvaged = true
		}
	}
	if r.MovedTo, err = boltfile.MoveAside(statePath, now); err != nil {
		return nil, nil, fmt.Errorf("terminalstore: repair: %w", err)
	}
	if err := writeRepairNote(statePath, r); err != nil {
		return nil, nil, err
	}
	if s, err = OpenFiles(statePath, identityPath); err != nil {
		return nil, nil, fmt.Errorf("terminalstore: repair: fresh state file: %w", err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPairing).Put(keyUnpairPending, []byte{1}) }); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("terminalstore: repair: %w", err)
	}
	return s, r, nil
}

func writeRepairNote(statePath string, r *Repair) error {
	b, err := json.Marshal(r)
	if err == nil {
		err = renameio.WriteFile(RepairNotePath(statePath), append(b, '\n'), 0o600)
	}
	if err != nil {
		return fmt.Errorf("terminalstore: repair note: %w", err)
	}
	return nil
}

// RepairNote returns the note OpenOrRepair left beside the state file, or
// nil when there is none (the file was never damaged, or the unit has
// been paired or reset since).
func RepairNote(statePath string) (*Repair, error) {
	b, err := os.ReadFile(RepairNotePath(statePath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("terminalstore: repair note: %w", err)
	}
	var r Repair
	if err := json.Unmarshal(b, &r); err != nil {
		return &Repair{Reason: "unreadable repair note: " + err.Error()}, nil
	}
	return &r, nil
}

// ClearRepairNote removes the note: the unit was paired again or reset.
func ClearRepairNote(statePath string) error {
	if err := os.Remove(RepairNotePath(statePath)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("terminalstore: clear repair note: %w", err)
	}
	return nil
}

// Check runs bbolt's consistency check on the open state file: nil, or an
// error wrapping ErrDamaged (a page that went bad since the start).
func (s *Store) Check() error {
	if err := boltfile.Check(s.db); err != nil {
		return fmt.Errorf("terminalstore: %w", err)
	}
	return nil
}
