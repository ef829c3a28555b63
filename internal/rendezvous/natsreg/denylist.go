package natsreg

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/pairing/protocol"
)

// The programme's deny list on a cluster: tuanju_denylist, device ID →
// reason, one list every node watches (rendezvous.DenyList), written by
// `rendezvous revoke` with a configuration naming nats_url. A node's own
// revoked_devices_file, if it has one, still applies beside it.

var _ rendezvous.DenyList = (*Registry)(nil)

// Revoke puts ids on the deny list with reason; an ID listed already keeps
// its reason. It returns how many were added.
func (r *Registry) Revoke(ids []string, reason string) (added int, err error) {
	for _, id := range ids {
		if !protocol.ValidID(id) {
			return added, fmt.Errorf("natsreg: %q is not a device ID: %w", id, rendezvous.ErrBadConfig)
		}
	}
	for _, id := range ids {
		err := r.retry(func(ctx context.Context) error {
			_, err := r.deny.Create(ctx, id, []byte(reason))
			if err == nil {
				added++
				return permanent{nil}
			}
			if errors.Is(err, jetstream.ErrKeyExists) {
				return permanent{nil}
			}
			return err
		})
		if err != nil {
			return added, fmt.Errorf("natsreg: revoke %s: %w", id, err)
		}
	}
	return added, nil
}

// Unrevoke takes ids off the deny list, returning how many were on it.
func (r *Registry) Unrevoke(ids []string) (removed int, err error) {
	for _, id := range ids {
		err := r.retry(func(ctx context.Context) error {
			if _, err := r.deny.Get(ctx, id); errors.Is(err, jetstream.ErrKeyNotFound) {
				return permanent{nil}
			} else if err != nil {
				return err
			}
			if err := r.deny.Delete(ctx, id); err != nil {
				return err
			}
			removed++
			return permanent{nil}
		})
		if err != nil {
			return removed, fmt.Errorf("natsreg: take %s off the deny list: %w", id, err)
		}
	}
	return removed, nil
}

// DenyList returns the list: device ID → reason.
func (r *Registry) DenyList() (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.opTimeout)
	defer cancel()
	ids := map[string]string{}
	w, err := r.deny.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsreg: read the deny list: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return ids, nil // the values there were
			}
			if e.Operation() == jetstream.KeyValuePut {
				ids[e.Key()] = string(e.Value())
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("natsreg: read the deny list: %w", ctx.Err())
		}
	}
}

// WatchDenyList calls update with the whole list once it is read, and
// again at each change with the IDs newly on it, until stop. JetStream's
// watcher follows the bucket across reconnects.
func (r *Registry) WatchDenyList(update func(ids map[string]string, added []string)) (func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := r.deny.WatchAll(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("natsreg: watch the deny list: %w", err)
	}
	ids := map[string]string{}
	initial := time.NewTimer(r.opTimeout)
	defer initial.Stop()
	for loaded := false; !loaded; {
		select {
		case e := <-w.Updates():
			if e == nil {
				loaded = true
				break
			}
			if e.Operation() == jetstream.KeyValuePut {
				ids[e.Key()] = string(e.Value())
			}
		case <-initial.C:
			w.Stop()
			cancel()
			return nil, fmt.Errorf("natsreg: read the deny list: no answer within %v", r.opTimeout)
		}
	}
	update(maps.Clone(ids), nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			var added []string
			switch e.Operation() {
			case jetstream.KeyValuePut:
				if _, was := ids[e.Key()]; !was {
					added = append(added, e.Key())
				}
				ids[e.Key()] = string(e.Value())
			default: // deleted or purged
				delete(ids, e.Key())
			}
			update(maps.Clone(ids), added)
		}
	}()
	return func() {
		w.Stop()
		cancel()
		<-done
	}, nil
}
