package rendezvous

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"
)

// AuditFile is the audit log's name in the data directory.
const AuditFile = "audit.jsonl"

// Audit events.
const (
	AuditPaired       = "paired"        // a parent paired with a terminal
	AuditFactoryReset = "factory_reset" // a terminal was reset; its pairing was deleted
	// AuditPairingDropped: the terminal never stored the parent the server
	// kept (a pairing split by a crash, healed at login); it was deleted.
	AuditPairingDropped = "pairing_dropped"
)

// AuditEntry is one line of the audit log: who was bound to which terminal,
// and when that ended. It is the record a family (or a support desk) needs
// to see that a terminal changed hands.
type AuditEntry struct {
	Time     time.Time `json:"time"`
	Event    string    `json:"event"`
	DeviceID string    `json:"device_id"`
	ParentID string    `json:"parent_id,omitempty"` // the new parent (paired) or the old one
}

// auditLog appends JSON lines to a file opened O_APPEND, mode 0600: the
// server never rewrites or truncates it, and an operator can read it while
// the server runs (the bbolt registry is locked by the server).
type auditLog struct {
	mu   sync.Mutex
	path string
}

// append writes one entry and fsyncs it before returning: the entry is
// written after the registry change it records has committed.
func (a *auditLog) append(e AuditEntry) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("rendezvous: audit: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("rendezvous: audit: %w", err)
	}
	_, werr := f.Write(append(raw, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("rendezvous: audit %s: %w", a.path, err)
	}
	return nil
}

// AuditStream is the audit log a cluster's nodes share (natsreg: a
// JetStream stream), written beside each node's own file.
type AuditStream interface {
	AppendAudit(e AuditEntry) error
}

// UseAuditStream has the server append its audit entries to a as well as
// to its file. It is called once, before the server serves.
func (s *Server) UseAuditStream(a AuditStream) { s.auditStream = a }

// ReadAudit returns every entry of the audit log at path, oldest first; a
// log that does not exist yet is empty.
func ReadAudit(path string) ([]AuditEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rendezvous: read audit: %w", err)
	}
	defer f.Close()
	var out []AuditEntry
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var e AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return out, fmt.Errorf("rendezvous: read audit %s line %d: %w", path, n, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("rendezvous: read audit %s: %w", path, err)
	}
	return out, nil
}
