package storage

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ory/fosite"
	"gorm.io/gorm"
)

func openWriterPoolStore(t *testing.T) (*Store, *writerPool) {
	t.Helper()
	s, err := Open(t.Context(), Config{
		Database:   filepath.Join(t.TempDir(), "authserver.db"),
		NewSession: func() fosite.Session { return &fosite.DefaultSession{} },
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	pool, ok := s.wdb.ConnPool.(*writerPool)
	if !ok {
		t.Fatalf("writer ConnPool is %T, want *writerPool", s.wdb.ConnPool)
	}
	return s, pool
}

func TestWriterPoolPreparesWrite(t *testing.T) {
	s, pool := openWriterPoolStore(t)
	query := s.statements.insertTokenSession
	if pool.cached(query) != nil {
		t.Fatalf("the token INSERT is prepared before any write ran it")
	}

	req := &fosite.Request{
		ID:          "req-1",
		RequestedAt: time.Now(),
		Client:      &Client{ID: LegacyClientID},
		Session:     &fosite.DefaultSession{},
	}
	if err := s.CreateAccessTokenSession(t.Context(), "sig-1", req); err != nil {
		t.Fatalf("CreateAccessTokenSession: %v", err)
	}
	if pool.cached(query) == nil {
		t.Errorf("the token INSERT is not prepared after a write outside a transaction ran it")
	}
}

func TestWriterPoolPreparesRepeatedTransactionStatement(t *testing.T) {
	s, pool := openWriterPoolStore(t)
	const query = `UPDATE login_failures SET locked_until = ? WHERE key = ?`
	runInTx := func() {
		t.Helper()
		err := s.inTx(t.Context(), func(tx *gorm.DB) error {
			return tx.Exec(query, time.Now().UTC(), "user:alice").Error
		})
		if err != nil {
			t.Fatalf("UPDATE in a transaction: %v", err)
		}
	}

	runInTx()
	time.Sleep(50 * time.Millisecond)
	if pool.cached(query) != nil {
		t.Errorf("%q is prepared after one transaction ran it, want it prepared only after the second", query)
	}

	runInTx()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for pool.cached(query) == nil {
		if ctx.Err() != nil {
			t.Fatalf("%q is not prepared 5 s after the second transaction that ran it", query)
		}
		time.Sleep(time.Millisecond)
	}
	runInTx()
}

func TestWriterPoolSkipsMigrationStatements(t *testing.T) {
	_, pool := openWriterPoolStore(t)
	for _, m := range migrations {
		for _, stmt := range m.statements {
			if pool.cached(stmt) != nil {
				t.Errorf("migration %d statement is prepared on the writer pool: %.60q", m.version, stmt)
			}
		}
	}
}

func TestWriterPoolSkipsBatchInsert(t *testing.T) {
	s, pool := openWriterPoolStore(t)
	events := make([]AuditEvent, 10)
	for i := range events {
		events[i] = AuditEvent{ID: fmt.Sprintf("event-%d", i), OccurredAt: time.Now(), Type: "test"}
	}

	before := pool.count.Load()
	if err := s.InsertAuditEvents(t.Context(), events); err != nil {
		t.Fatalf("InsertAuditEvents: %v", err)
	}
	if got := pool.count.Load(); got != before {
		t.Errorf("writer pool prepared %d statements for a batch insert of %d events, want none", got-before, len(events))
	}
}
