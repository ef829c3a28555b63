package natsreg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tuanju/tuanju/internal/rendezvous"
)

// The registry's key-value buckets.
const (
	bucketDevices  = "tuanju_devices"  // device ID → rendezvous.Device (JSON)
	bucketPairings = "tuanju_pairings" // device ID → record (JSON): the point of truth of its pairing
	bucketParents  = "tuanju_parents"  // parent (pair) ID → device ID: an index, checked against pairings
	bucketCalls    = "tuanju_calls"    // <parent ID>.<start>.<call ID> → protocol.CallRecord (JSON): calls.go
	bucketOpen     = "tuanju_open_calls"
	bucketNotify   = "tuanju_notify"   // push.<parent ID>, phone.<parent ID>: notify.go
	bucketPresence = "tuanju_presence" // device ID → its terminal's node: route.go
	bucketDeny     = "tuanju_denylist" // device ID → reason: denylist.go
)

// Options configures Connect.
type Options struct {
	// Replicas is each bucket's replica count: 1 on the embedded server,
	// 3 on a cluster (a write is then acknowledged once two of the three
	// nodes hold it). It applies when Connect creates a bucket; a bucket
	// that exists keeps its own.
	Replicas int
	// OpTimeout bounds one registry call, retries included: long enough
	// to ride out a stream leader's election after a node dies (nats-server
	// elects within 4–9 s), short enough that a caller hears of a cluster
	// without quorum. Default 20 s.
	OpTimeout time.Duration
	// Name names the connection in the NATS server's monitoring.
	Name string
	// Node names this rendezvous node (rendezvous.Config.NodeName): the
	// calls it has open are its own to close after a crash
	// (CloseOpenCallsList), not another live node's. Default "node".
	Node string
}

// Registry is the rendezvous registry on NATS JetStream key-value buckets.
// It is safe for concurrent use.
type Registry struct {
	nc                         *nats.Conn
	js                         jetstream.JetStream
	devices, pairings, parents jetstream.KeyValue
	calls, open, notify        jetstream.KeyValue
	presence, deny             jetstream.KeyValue
	callsStream                jetstream.Stream // the stream behind calls (callSubjects)
	opTimeout                  time.Duration
	node                       string
	// storeFull, when set, says whether the registry's own embedded
	// server's disk is full (Server.Full): a write that gets no answer is
	// then not retried.
	storeFull func() bool
}

// Connect connects to the NATS server(s) at url (a comma-separated list is
// tried in turn and kept for reconnects) and creates or binds the
// registry's buckets. The client reconnects forever: a registry call made
// while it is away waits, within OpTimeout, for it to come back.
func Connect(url string, o Options) (*Registry, error) {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 20 * time.Second
	}
	if o.Name == "" {
		o.Name = "tuanju-rendezvous"
	}
	if o.Node == "" {
		o.Node = "node"
	}
	nc, err := nats.Connect(url,
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(false),
	)
	if err != nil {
		return nil, fmt.Errorf("natsreg: connect %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsreg: jetstream: %w", err)
	}
	r := &Registry{nc: nc, js: js, opTimeout: o.OpTimeout, node: o.Node}
	ctx, cancel := context.WithTimeout(context.Background(), o.OpTimeout)
	defer cancel()
	for _, b := range []struct {
		name    string
		kv      *jetstream.KeyValue
		markers time.Duration
		storage jetstream.StorageType
	}{
		{bucketDevices, &r.devices, 0, jetstream.FileStorage},
		{bucketPairings, &r.pairings, 0, jetstream.FileStorage},
		{bucketParents, &r.parents, 0, jetstream.FileStorage},
		{bucketCalls, &r.calls, markerTTL, jetstream.FileStorage},
		{bucketOpen, &r.open, markerTTL, jetstream.FileStorage},
		{bucketNotify, &r.notify, markerTTL, jetstream.FileStorage},
		{bucketDeny, &r.deny, markerTTL, jetstream.FileStorage},
		// Where each terminal is now: rebuilt by its next login.
		{bucketPresence, &r.presence, markerTTL, jetstream.MemoryStorage},
	} {
		kv, err := bindBucket(ctx, js, jetstream.KeyValueConfig{
			Bucket: b.name, History: 1, Storage: b.storage, Replicas: o.Replicas, LimitMarkerTTL: b.markers,
		})
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("natsreg: bucket %s: %w", b.name, err)
		}
		*b.kv = kv
	}
	if r.callsStream, err = js.Stream(ctx, "KV_"+bucketCalls); err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsreg: bucket %s's stream: %w", bucketCalls, err)
	}
	if _, err := bindAudit(ctx, js, o.Replicas); err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsreg: stream %s: %w", streamAudit, err)
	}
	return r, nil
}

// markerTTL is how long the call and notification buckets keep the marker
// of a deleted key. Their keys come and go with every call (a record
// pruned, an open call's entry) and each deleted key's marker would
// otherwise stay for good: millions of calls, millions of markers.
const markerTTL = time.Hour

var _ rendezvous.Registry = (*Registry)(nil)

// Close closes the connection to NATS. It returns nil: it is
// rendezvous.Registry's Close.
func (r *Registry) Close() error {
	r.nc.Close()
	return nil
}

// bindBucket binds a bucket, creating it if it does not exist, and makes
// sure its reads go to the stream's leader.
//
// JetStream KV buckets are made with AllowDirect, so that a read may be
// answered by any replica, a follower that has not yet applied the latest
// write among them. The registry turns it off: a read is then answered by
// the stream's leader, which applied every acknowledged write, so that a
// pairing acknowledged through one node is what any node reads next
// (TestClusterPairingsVisibleEverywhere). Registry reads are one per
// login or pairing step, not a hot path.
func bindBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	for {
		kv, err := bindOnce(ctx, js, cfg)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return kv, err
		}
		// A cluster that has not yet elected its meta leader answers
		// "JetStream not ready", or drops the request: ask again.
		if sleep(ctx, 200*time.Millisecond) != nil {
			return nil, err
		}
	}
}

// bindOnce is one try of bindBucket, within a few seconds.
func bindOnce(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	name := cfg.Bucket
	for {
		kv, err := js.KeyValue(ctx, name)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) {
				continue // another node made it meanwhile: bind that one
			}
		}
		if err != nil {
			return nil, err
		}
		st, err := js.Stream(ctx, "KV_"+name)
		if err != nil {
			return nil, err
		}
		cfg := st.CachedInfo().Config
		if !cfg.AllowDirect {
			return kv, nil
		}
		cfg.AllowDirect = false
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("turn off direct reads: %w", err)
		}
		// Bind again: the handle reads the stream's AllowDirect when bound.
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
