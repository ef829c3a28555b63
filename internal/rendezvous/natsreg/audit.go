package natsreg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tuanju/tuanju/internal/rendezvous"
)

// The cluster's audit log: the stream TUANJU_AUDIT, one message per entry
// on tuanju.audit.<node>, replicated like the registry and never trimmed.
// Each node also keeps its own file (rendezvous.AuditFile), written first
// and synchronously; the stream is written off the hub's lock.
const (
	streamAudit = "TUANJU_AUDIT"
	subjAudit   = "tuanju.audit."
)

var _ rendezvous.AuditStream = (*Registry)(nil)

// bindAudit binds the audit stream, creating it if it does not exist.
func bindAudit(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := js.Stream(actx, streamAudit)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			st, err = js.CreateStream(actx, jetstream.StreamConfig{
				Name: streamAudit, Subjects: []string{subjAudit + ">"}, Storage: jetstream.FileStorage,
				Replicas: replicas, Duplicates: 2 * time.Minute,
			})
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				cancel()
				continue // another node made it meanwhile
			}
		}
		cancel()
		if err == nil || !retryable(err) && !errors.Is(err, jetstream.ErrStreamNotFound) || ctx.Err() != nil {
			return st, err
		}
		if sleep(ctx, 200*time.Millisecond) != nil {
			return nil, err
		}
	}
}

// AppendAudit adds an entry to the cluster's audit log. Its ID is the
// entry's hash, so an append retried after a lost acknowledgement is
// stored once.
func (r *Registry) AppendAudit(e rendezvous.AuditEntry) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("natsreg: audit: %w", err)
	}
	sum := sha256.Sum256(raw)
	id := hex.EncodeToString(sum[:16])
	err = r.retry(func(ctx context.Context) error {
		if _, err := r.js.Publish(ctx, subjAudit+r.node, raw, jetstream.WithMsgID(id)); err != nil {
			return err
		}
		return permanent{nil}
	})
	if err != nil {
		return fmt.Errorf("natsreg: audit: %w", err)
	}
	return nil
}

// ReadAudit returns the cluster's audit log, every node's entries, oldest
// first (by time; entries from one node are in the order they came).
func (r *Registry) ReadAudit() ([]rendezvous.AuditEntry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.opTimeout)
	defer cancel()
	st, err := r.js.Stream(ctx, streamAudit)
	if err != nil {
		return nil, fmt.Errorf("natsreg: read audit: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsreg: read audit: %w", err)
	}
	last := info.State.LastSeq
	var out []rendezvous.AuditEntry
	if info.State.Msgs == 0 {
		return out, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("natsreg: read audit: %w", err)
	}
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return out, fmt.Errorf("natsreg: read audit: %w", err)
		}
		var e rendezvous.AuditEntry
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			return out, fmt.Errorf("natsreg: read audit %s: %w", m.Subject(), err)
		}
		out = append(out, e)
		md, err := m.Metadata()
		if err != nil {
			return out, fmt.Errorf("natsreg: read audit: %w", err)
		}
		if md.Sequence.Stream >= last {
			break
		}
	}
	slices.SortStableFunc(out, func(a, b rendezvous.AuditEntry) int { return a.Time.Compare(b.Time) })
	return out, nil
}
