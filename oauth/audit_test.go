package oauth

import (
	"context"
	"sync"
	"testing"

	"github.com/quanux/authserver/storage"
)

type memorySink struct {
	mu      sync.Mutex
	batches [][]storage.AuditEvent
}

func (s *memorySink) InsertAuditEvents(_ context.Context, events []storage.AuditEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, append([]storage.AuditEvent(nil), events...))
	return nil
}

func (s *memorySink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.batches {
		n += len(b)
	}
	return n
}

func TestAuditorFlushesOnStop(t *testing.T) {
	sink := &memorySink{}
	a := NewAuditor(sink, nil)
	ctx := WithRequestInfo(t.Context(), RequestInfo{Address: "192.0.2.7", UserAgent: "curl/8"})
	for range 600 {
		a.Record(ctx, storage.AuditEvent{Type: EventTokenIssued})
	}

	runCtx, cancel := context.WithCancel(t.Context())
	cancel()
	a.Run(runCtx)

	if got := sink.count(); got != 600 {
		t.Fatalf("%d events written after stop, want 600", got)
	}
	for _, b := range sink.batches {
		if len(b) > auditBatchSize {
			t.Errorf("a batch of %d events exceeds the batch size %d", len(b), auditBatchSize)
		}
	}
	e := sink.batches[0][0]
	if e.ID == "" || e.OccurredAt.IsZero() || e.Address != "192.0.2.7" || e.UserAgent != "curl/8" {
		t.Errorf("event %+v: want id, time, address and user agent filled in", e)
	}
}

func TestAuditorDropsWhenFull(t *testing.T) {
	a := NewAuditor(&memorySink{}, nil)
	for range auditQueueSize + 5 {
		a.Record(t.Context(), storage.AuditEvent{Type: EventTokenIssued})
	}
	if got := a.Dropped(); got != 5 {
		t.Errorf("Dropped = %d, want 5", got)
	}
}

func TestSyncAuditorWritesAtOnce(t *testing.T) {
	sink := &memorySink{}
	NewSyncAuditor(sink, nil).Record(t.Context(), storage.AuditEvent{Type: EventKeyRotated})
	if got := sink.count(); got != 1 {
		t.Errorf("%d events written, want 1", got)
	}
}
