package rendezvous

import (
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

// PairingReader is a Registry that reads a terminal's pairing in one
// read: its parent ("" none) and the pair ID it has pending ("" none).
// natsreg keeps both on one record, and a terminal's login on NATS saves
// a round trip (readForJoin).
type PairingReader interface {
	PairingState(deviceID string) (parentID, pendingID string, err error)
}
