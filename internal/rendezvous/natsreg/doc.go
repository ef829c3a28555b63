// Package natsreg is the rendezvous registry on NATS JetStream: devices,
// pairings, call logs and what wakes a parent, in key-value buckets
// replicated across the nodes of a NATS cluster, so that no single
// rendezvous node or NATS server can lose a pairing (issue 16). It is a
// rendezvous.Registry, as the bbolt Store is, and passes the same tests
// (registrytest.Run); a server with nats_url set runs on it.
//
// # One key per device
//
// JetStream has no transaction over several keys; it has compare-and-set on
// one (kv.Create fails if the key exists, kv.Update(key, value, revision)
// fails unless the key is still at revision). So everything that decides a
// terminal's pairing lives on one key, the device ID in bucket
// tuanju_pairings: a record saying none, pending (pair ID, token hash,
// parent key) or paired (the same, and when), and whether the terminal has
// ever lost a parent (Device.Unpaired). Every change is one CAS on that key:
// none → pending, pending → paired, pending → none (rolled back),
// paired → none (unpaired). Two nodes that pair one terminal at once race on
// the same revision and exactly one wins; the other re-reads and finds the
// terminal pending or paired (TestRegistryPairingRace). A split cluster
// cannot give a terminal two parents either: a CAS needs the stream's
// leader and a quorum of its replicas, which only one side can have.
//
// A parent is found by its ID (the page logs in with it) through a second
// bucket, tuanju_parents: parent ID → device ID. That is an index, not a
// truth: a reader follows it to the device's record and believes the
// record, so an index entry whose record says otherwise reads as no such
// parent (TestRegistryStaleIndex). The index entry is written before the
// CAS that names the pair ID, not after it: a node that dies between the
// two leaves an entry nothing names, harmless, and never a committed
// pairing that its parent cannot find. Entries left so are removed by
// SweepIndex, which every server runs every 6 hours, and each is
// overwritten if its ID is used again.
//
// # Durability and visibility
//
// A write is acknowledged by JetStream once the stream's Raft group has
// committed it, that is stored on a majority of the bucket's replicas (two
// of three), and with sync always, synced to their disks. So an
// acknowledged pairing survives the loss of any one node of three, and the
// registry acknowledges a pairing only after that. Reads go to the
// stream's leader (direct reads, answered by any replica, are turned off:
// bindBucket), so that what one node committed is what every node reads
// next (TestClusterPairingsVisibleEverywhere).
//
// # Retries
//
// A call retries, within Options.OpTimeout, both CAS conflicts and the
// errors of a cluster changing leader or a connection moving to another
// server. A retry re-reads the record and decides again, and each step
// is idempotent for the same intent (the same pair ID pending again, the
// same pairing completed again), so a write that landed but whose
// acknowledgement was lost reads as done on the retry
// (TestClusterPairingsSurviveNodeLoss).
package natsreg
