package oauth

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/quanux/authserver/storage"
)

// Audit event types.
const (
	EventLoginSucceeded   = "login_succeeded"
	EventLoginFailed      = "login_failed"
	EventTokenIssued      = "token_issued"
	EventRefreshReuse     = "refresh_reuse_detected"
	EventTokenRevoked     = "token_revoked"
	EventClientRegistered = "client_registered"
	EventSecretRotated    = "secret_rotated"
	EventClientDisabled   = "client_disabled"
	EventClientEnabled    = "client_enabled"
	EventPasswordChanged  = "password_changed"
	EventScopesChanged    = "scopes_changed"
	EventClientDeleted    = "client_deleted"
	EventUserCreated      = "user_created"
	EventUserDisabled     = "user_disabled"
	EventUserEnabled      = "user_enabled"
	EventUserDeleted      = "user_deleted"
	EventKeyRotated       = "key_rotated"
)

// AuditSink stores audit events. storage.Store implements it.
type AuditSink interface {
	InsertAuditEvents(ctx context.Context, events []storage.AuditEvent) error
}

// Auditor writes audit events off the request path: Record only queues,
// and a background loop writes batches. It is safe for concurrent use.
type Auditor struct {
	sink   AuditSink
	logger *slog.Logger
	queue  chan storage.AuditEvent
	// dropped counts events lost because the queue was full.
	dropped atomic.Int64
	// sync writes each event at once instead, for short-lived commands.
	sync bool
}

// Auditor queue and batch sizes. A full queue drops events rather than
// slow down logins; Dropped reports how many.
const (
	auditQueueSize  = 10_000
	auditBatchSize  = 256
	auditFlushEvery = 500 * time.Millisecond
)

// NewAuditor returns an Auditor whose events are written by Run.
func NewAuditor(sink AuditSink, logger *slog.Logger) *Auditor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Auditor{sink: sink, logger: logger, queue: make(chan storage.AuditEvent, auditQueueSize)}
}

// NewSyncAuditor returns an Auditor that writes each event before Record
// returns, for admin commands that exit right after.
func NewSyncAuditor(sink AuditSink, logger *slog.Logger) *Auditor {
	a := NewAuditor(sink, logger)
	a.sync = true
	return a
}

// Dropped returns how many events were lost to a full queue.
func (a *Auditor) Dropped() int64 { return a.dropped.Load() }

// Record queues e, filling in its id, time and the request's address and
// user agent from ctx. A queued Auditor never blocks: a full queue drops
// the event. A synchronous one (NewSyncAuditor) writes before returning.
func (a *Auditor) Record(ctx context.Context, e storage.AuditEvent) {
	if a == nil {
		return
	}
	if e.ID == "" {
		e.ID = randomHex(16)
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = time.Now().UTC()
	}
	if info, ok := ctx.Value(requestInfoKey{}).(RequestInfo); ok {
		if e.Address == "" {
			e.Address = info.Address
		}
		if e.UserAgent == "" {
			e.UserAgent = truncate(info.UserAgent, 256)
		}
	}

	if a.sync {
		if err := a.sink.InsertAuditEvents(context.WithoutCancel(ctx), []storage.AuditEvent{e}); err != nil {
			a.logger.ErrorContext(ctx, "writing an audit event failed", "type", e.Type, "err", err)
		}
		return
	}
	select {
	case a.queue <- e:
	default:
		if a.dropped.Add(1)%1000 == 1 {
			a.logger.ErrorContext(ctx, "audit queue full; events are being dropped", "dropped", a.dropped.Load())
		}
	}
}

// Run writes queued events in batches until ctx ends, then writes what is
// left and returns.
func (a *Auditor) Run(ctx context.Context) {
	t := time.NewTicker(auditFlushEvery)
	defer t.Stop()
	batch := make([]storage.AuditEvent, 0, auditBatchSize)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := a.sink.InsertAuditEvents(context.WithoutCancel(ctx), batch); err != nil {
			a.logger.ErrorContext(ctx, "writing audit events failed", "count", len(batch), "err", err)
		}
		batch = batch[:0]
	}
	for {
		select {
		case e := <-a.queue:
			batch = append(batch, e)
			if len(batch) == auditBatchSize {
				flush()
			}
		case <-t.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case e := <-a.queue:
					batch = append(batch, e)
					if len(batch) == auditBatchSize {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

// RequestInfo is the caller's address and user agent, as the audit trail
// records them.
type RequestInfo struct {
	Address   string
	UserAgent string
}

type requestInfoKey struct{}

// WithRequestInfo returns ctx carrying info, for the audit trail.
func WithRequestInfo(ctx context.Context, info RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}
