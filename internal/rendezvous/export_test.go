package rendezvous

import (
	"net/http"

	bolt "go.etcd.io/bbolt"
)

// FailCallLogWrites makes every call-log write of the store fail with err
// inside its transaction, as a full disk fails bbolt's commit; nil stops it.
func (s *Store) FailCallLogWrites(err error) {
	if err == nil {
		s.callWriteFault.Store(nil)
		return
	}
	f := func() error { return err }
	s.callWriteFault.Store(&f)
}

// HangCallLogWrites makes every call-log write of the store wait inside its
// transaction until release is closed, as a disk that hangs (a dying SD
// card) holds bbolt's commit; FailCallLogWrites(nil) ends it.
func (s *Store) HangCallLogWrites(release <-chan struct{}) {
	f := func() error { <-release; return nil }
	s.callWriteFault.Store(&f)
}

// SnapshotTo writes the registry as the disk holds it now (every committed
// transaction, in one read transaction) to path: what a crash at this
// moment leaves behind.
func (s *Store) SnapshotTo(path string) error {
	return s.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) })
}

// SetPushClient makes the server's Web Push requests go through c (a
// client that trusts a test push service's certificate). Call it before
// anything is pushed.
func (s *Server) SetPushClient(c *http.Client) {
	if s.push != nil {
		s.push.client = c
	}
}
