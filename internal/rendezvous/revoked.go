package rendezvous

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tuanju/tuanju/internal/atomicfile"
	"github.com/tuanju/tuanju/internal/rendezvous/filestamp"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// revokedText is what a revoked unit is told, at login or when dropped.
const revokedText = "this unit has been revoked"

// DefaultRevocationCheck is how often the revoked-devices file is looked at
// for changes.
const DefaultRevocationCheck = 10 * time.Second

// revocations is the programme's deny list of terminals (revoked_devices_file,
// format in docs/provisioning-keys.md), by device ID: the hash of the unit's
// key, so an entry blocks that key whatever certificate it shows. It is read
// at start (a malformed file stops the server) and again when it changes (a
// malformed change is logged and the list in use stays); a newly revoked unit
// that is online is dropped.
type revocations struct {
	path string // "" with no file: the cluster's list alone

	mu    sync.Mutex // reload
	stamp filestamp.Stamp
	ids   atomic.Pointer[map[string]string] // device ID → reason, from the file
	// shared: the cluster's list (DenyList), nil on one node.
	shared atomic.Pointer[map[string]string]
}

func loadRevocations(path string) (*revocations, error) {
	r := &revocations{path: path}
	if _, _, err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// revoked reports whether a device is on the list, and why.
func (r *revocations) revoked(deviceID string) (reason string, ok bool) {
	if r == nil {
		return "", false
	}
	if reason, ok = (*r.ids.Load())[deviceID]; ok {
		return reason, ok
	}
	if shared := r.shared.Load(); shared != nil {
		reason, ok = (*shared)[deviceID]
	}
	return reason, ok
}

// count is how many devices are on the list (the file's, and the
// cluster's: one on both counts twice).
func (r *revocations) count() int {
	n := len(*r.ids.Load())
	if shared := r.shared.Load(); shared != nil {
		n += len(*shared)
	}
	return n
}

// DenyList is the programme's deny list shared by a cluster's nodes
// (natsreg: a bucket that `rendezvous revoke` writes), beside each node's
// revoked_devices_file.
type DenyList interface {
	// WatchDenyList calls update with the whole list before it returns,
	// and again at each change with the IDs newly on it, until stop.
	WatchDenyList(update func(ids map[string]string, added []string)) (stop func(), err error)
}

// UseDenyList makes d's list the server's, beside its file's: a unit on
// either is refused at login, and one newly on d's is dropped if online.
// It is called once, before the server serves.
func (s *Server) UseDenyList(d DenyList) error {
	if s.revoked == nil {
		s.revoked = &revocations{}
		none := map[string]string{}
		s.revoked.ids.Store(&none)
	}
	stop, err := d.WatchDenyList(func(ids map[string]string, added []string) {
		s.revoked.shared.Store(&ids)
		for _, id := range added {
			s.log.Info("revoked on the cluster's deny list", "device", id, "reason", ids[id])
			s.hub.dropRevoked(id)
		}
	})
	if err != nil {
		return fmt.Errorf("rendezvous: the cluster's deny list: %w", err)
	}
	s.denyStop = stop
	s.log.Info("the cluster's deny list", "devices", len(*s.revoked.shared.Load()))
	return nil
}

// reload reads the file again if it changed since the last read and returns
// the device IDs that are newly on it. On error the list in use stays.
func (r *revocations) reload() (added []string, changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp, err := filestamp.Of(r.path)
	if err != nil {
		return nil, false, fmt.Errorf("rendezvous: revoked_devices_file: %w", err)
	}
	old := r.ids.Load()
	if old != nil && stamp == r.stamp {
		return nil, false, nil
	}
	raw, err := os.ReadFile(r.path)
	if err != nil {
		return nil, false, fmt.Errorf("rendezvous: revoked_devices_file: %w", err)
	}
	ids, err := parseRevocations(raw)
	if err != nil {
		return nil, false, fmt.Errorf("rendezvous: revoked_devices_file %s: %w", r.path, err)
	}
	// Written to in place while we read it: what we read may be half an
	// edit that happens to parse (a shorter list would let a revoked unit
	// in). Keep the list in use and read it again at the next check.
	if after, err := filestamp.Of(r.path); old != nil && (err != nil || after != stamp) {
		return nil, false, nil
	}
	if old != nil {
		for id := range ids {
			if _, was := (*old)[id]; !was {
				added = append(added, id)
			}
		}
	}
	r.ids.Store(&ids)
	r.stamp = stamp
	return added, true, nil
}

// parseRevocations reads the list; any line that is not a comment, blank or
// a device ID (optionally followed by a reason) is an error naming the line,
// so a mistyped ID never silently fails to block a stolen unit.
func parseRevocations(raw []byte) (map[string]string, error) {
	ids := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		fields := revokedFields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if !protocol.ValidID(fields[0]) {
			return nil, fmt.Errorf("line %d: %q is not a device ID (26 characters a-z, 2-7)", n, fields[0])
		}
		ids[fields[0]] = strings.Join(fields[1:], " ")
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ids, nil
}

// revokedFields is a list line's words before any '#' comment: the device
// ID, then the reason.
func revokedFields(line string) []string {
	body, _, _ := strings.Cut(line, "#")
	return strings.Fields(body)
}

// watchRevocations reloads the list every interval until the server closes,
// and drops every newly revoked unit that is online.
func (s *Server) watchRevocations(every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		added, changed, err := s.revoked.reload()
		if err != nil {
			s.log.Error("revoked devices: keeping the list in use", "err", err)
			continue
		}
		if changed {
			s.log.Info("revoked devices reloaded", "devices", s.revoked.count(), "new", len(added))
		}
		for _, id := range added {
			s.hub.dropRevoked(id)
		}
	}
}

// ReadRevoked returns the deny list in the file at path (device ID →
// reason). A missing file is an empty list; one that does not parse is an
// error naming the line.
func ReadRevoked(path string) (map[string]string, error) {
	_, ids, err := readRevoked(path)
	return ids, err
}

// readRevoked is ReadRevoked that also returns the file's bytes.
func readRevoked(path string) ([]byte, map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("rendezvous: revoked devices: %w", err)
	}
	ids, err := parseRevocations(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("rendezvous: revoked devices %s: %w", path, err)
	}
	return raw, ids, nil
}

// EditRevoked changes the deny list in the file at path the way an operator
// would by hand, for `rendezvous revoke`: it appends a line for each ID in
// add not yet listed (with reason, under a dated comment), drops the lines
// of each ID in remove, and keeps every other line and comment as it was.
// It refuses IDs that are not device IDs and a file that does not parse,
// changing nothing, and writes by rename, so a running server never reads
// half an edit. It does not lock: two editors at once can lose one's change.
func EditRevoked(path string, add []string, reason string, remove []string, now time.Time) (added, removed int, err error) {
	for _, id := range append(append([]string(nil), add...), remove...) {
		if !protocol.ValidID(id) {
			return 0, 0, fmt.Errorf("rendezvous: %q is not a device ID (26 characters a-z, 2-7; `terminald identity show` prints it): %w", id, ErrBadConfig)
		}
	}
	if strings.ContainsAny(reason, "#\n\r") {
		return 0, 0, fmt.Errorf("rendezvous: a reason cannot hold '#' or a line break: %w", ErrBadConfig)
	}
	raw, listed, err := readRevoked(path)
	if err != nil {
		return 0, 0, fmt.Errorf("%w (fix it by hand first)", err)
	}
	drop := map[string]bool{}
	for _, id := range remove {
		drop[id] = true
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		if f := revokedFields(line); len(f) > 0 && drop[f[0]] {
			removed++
			continue
		}
		out.WriteString(line + "\n")
	}
	var fresh []string
	for _, id := range add {
		if _, ok := listed[id]; !ok && !drop[id] && !slices.Contains(fresh, id) {
			fresh = append(fresh, id)
		}
	}
	if len(fresh) > 0 {
		fmt.Fprintf(&out, "# added %s by rendezvous revoke\n", now.UTC().Format(time.RFC3339))
		for _, id := range fresh {
			fmt.Fprintln(&out, strings.TrimSpace(id+"  "+reason))
		}
	}
	if len(fresh) == 0 && removed == 0 {
		return 0, 0, nil
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	if err := atomicfile.WriteFile(path, out.Bytes(), mode); err != nil {
		return 0, 0, fmt.Errorf("rendezvous: write revoked devices: %w", err)
	}
	return len(fresh), removed, nil
}
