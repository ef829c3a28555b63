package rendezvous

import (
	"math/rand/v2"
	"time"

	"github.com/tuanju/tuanju/pairing/protocol"
)

// Registry is what the server keeps of its families: terminals, their
// pairings and parents, each pairing's call log, and what a parent gave to
// be told of a ring (push subscriptions, a phone number). Two implement it:
// Store, a bbolt file, for one node (the default); and natsreg.Registry,
// NATS JetStream key-value buckets replicated across a cluster, for several
// nodes sharing one registry (issue 16; Config.NATSURL). Both keep the same
// promises, checked by the same tests (registrytest.Run): a pairing is
// one compare-and-set, a parent exists only through its pairing, and the
// pairing's end takes its call log, subscriptions and number with it.
type Registry interface {
	// Terminals.
	RegisterDevice(id string, publicKey []byte, version string, now time.Time) (first bool, err error)
	NoteDeviceHealth(id, health string, faults []string) error
	Device(id string) (Device, error)

	// Pairings: one terminal, at most one parent (pairing.go).
	ParentOf(deviceID string) (string, error)
	Parent(id string) (Parent, error)
	CreatePairing(deviceID, parentID string, tokenHash []byte, parentKey string, now time.Time) error
	PutPendingPairing(deviceID string, p PendingPairing) error
	PendingOf(deviceID string) (PendingPairing, error)
	PendingParent(parentID string) (deviceID string, p PendingPairing, err error)
	CompletePairing(deviceID, pairID string, now time.Time) (p Parent, committed bool, err error)
	DropPendingPairing(deviceID, pairID string) (dropped bool, err error)
	Unpair(deviceID string) (parentID string, err error)

	// Call logs, one per pairing (calllog.go writes them).
	PutCalls(writes []CallWrite) (gone []int, err error)
	HasCall(parentID, callID string) (bool, error)
	CallLog(parentID string, markSeen bool) ([]protocol.CallRecord, error)
	CloseOpenCallsList() ([]OpenCall, error)

	// What wakes or texts a parent (hub_notify.go, push.go).
	PutPushSubscription(parentID string, sub PushSubscription, now time.Time) error
	PushSubscriptions(parentID string) ([]PushSubscription, error)
	DeletePushSubscription(parentID, endpoint string) (bool, error)
	PutPhone(parentID string, p Phone) error
	PhoneRecord(parentID string) (Phone, error)
	ClearPhone(parentID string, now time.Time) error

	Close() error
}

var _ Registry = (*Store)(nil)

// IndexSweeper is a Registry whose index of parents can hold entries no
// pairing names (natsreg: a node that died between the index's write and
// its pairing's compare-and-set). They are harmless, each reading as no
// parent, and the server deletes them now and then (sweepIndex).
type IndexSweeper interface {
	SweepIndex(minAge time.Duration) (int, error)
}

// indexSweepEvery is how often a server sweeps its registry's index, the
// first time at a random moment within it (so that a cluster's nodes,
// started together, do not sweep together); indexSweepAge is the youngest
// entry it may delete, far longer than any registry call.
const (
	indexSweepEvery = 6 * time.Hour
	indexSweepAge   = time.Hour
)

// sweepIndex runs sw.SweepIndex every indexSweepEvery until stop.
func (s *Server) sweepIndex(sw IndexSweeper, stop <-chan struct{}) {
	wait := rand.N(indexSweepEvery)
	for {
		select {
		case <-stop:
			return
		case <-time.After(wait):
		}
		wait = indexSweepEvery
		start := time.Now()
		n, err := sw.SweepIndex(indexSweepAge)
		if err != nil {
			s.log.Error("registry: sweeping the parents' index", "deleted", n, "err", err)
			continue
		}
		s.log.Info("registry: swept the parents' index", "deleted", n, "took", time.Since(start).Round(time.Millisecond))
	}
}

// PairingReader is a Registry that reads a terminal's pairing in one
// read: its parent ("" none) and the pair ID it has pending ("" none).
// natsreg keeps both on one record, and a terminal's login on NATS saves
// a round trip (readForJoin).
type PairingReader interface {
	PairingState(deviceID string) (parentID, pendingID string, err error)
}
