package storage_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
	"github.com/quanux/authserver/storage/storagetest"
)

// shortBusyTimeout makes a write that waits for SQLite's lock in the busy
// handler fail almost at once, so the tests below pass only when the
// writers of one Store wait for one another in Go.
const shortBusyTimeout = time.Millisecond

// waitLimit bounds each wait in these tests, so a deadlock fails the test
// instead of hanging it.
const waitLimit = 10 * time.Second

// openShortBusyTimeout returns a migrated store on a new SQLite file whose
// busy timeout is shortBusyTimeout.
func openShortBusyTimeout(t *testing.T) *storage.Store {
	t.Helper()
	s := openFileWithBusyTimeout(t, filepath.Join(t.TempDir(), "authserver.db"), shortBusyTimeout)
	mustMigrate(t, s)
	return s
}

// legacyRequest returns a token request of the built-in client, which
// every migrated database has, acting for no user.
func legacyRequest(requestID string) *fosite.Request {
	session := storagetest.NewSession()
	session.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour))
	return &fosite.Request{
		ID:          requestID,
		RequestedAt: time.Now(),
		Client:      &storage.Client{ID: storage.LegacyClientID},
		Session:     session,
	}
}

func TestConcurrentWritersOneStore(t *testing.T) {
	s := openShortBusyTimeout(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()

	const writers = 64
	start := make(chan struct{})
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			<-start
			signature := fmt.Sprintf("sig-%d", i)
			errs <- s.CreateAccessTokenSession(ctx, signature, legacyRequest(fmt.Sprintf("req-%d", i)))
		}()
	}
	close(start)
	for range writers {
		if err := <-errs; err != nil {
			t.Errorf("CreateAccessTokenSession with %d writers at once: %v", writers, err)
		}
	}

	for i := range writers {
		signature := fmt.Sprintf("sig-%d", i)
		if _, err := s.GetAccessTokenSession(ctx, signature, nil); err != nil {
			t.Errorf("GetAccessTokenSession(%q) after the concurrent writes: %v", signature, err)
		}
	}
}

// TestReadDuringTransaction covers a read that no transaction carries
// while another request holds the one writer connection in a transaction.
func TestReadDuringTransaction(t *testing.T) {
	s := openShortBusyTimeout(t)
	if err := s.CreateUser(t.Context(), storage.User{ID: "user-1", Username: "alice", PasswordHash: "x"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.CreateAccessTokenSession(t.Context(), "sig-committed", legacyRequest("req-1")); err != nil {
		t.Fatalf("CreateAccessTokenSession: %v", err)
	}

	txCtx, err := s.BeginTX(t.Context())
	if err != nil {
		t.Fatalf("BeginTX: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Rollback(txCtx); err != nil {
			t.Errorf("Rollback: %v", err)
		}
	})
	if err := s.CreateUser(txCtx, storage.User{ID: "user-2", Username: "bob", PasswordHash: "x"}); err != nil {
		t.Fatalf("CreateUser in the transaction: %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if _, err := s.UserByID(ctx, "user-1"); err != nil {
		t.Errorf("UserByID of a committed user during the transaction: %v", err)
	}
	if _, err := s.UserByID(ctx, "user-2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UserByID of the transaction's own user outside it = %v, want storage.ErrNotFound", err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "sig-committed", nil); err != nil {
		t.Errorf("GetAccessTokenSession during the transaction: %v", err)
	}
	if _, err := s.LoginFailures(ctx, []string{"user:alice"}); err != nil {
		t.Errorf("LoginFailures during the transaction: %v", err)
	}
}

// TestWriteWaitsForTransaction covers a write that no transaction carries
// while another request holds the writer connection: it waits in Go, for
// longer than the busy timeout, and succeeds once the transaction ends.
func TestWriteWaitsForTransaction(t *testing.T) {
	s := openShortBusyTimeout(t)
	txCtx, err := s.BeginTX(t.Context())
	if err != nil {
		t.Fatalf("BeginTX: %v", err)
	}
	if err := s.CreateUser(txCtx, storage.User{ID: "user-1", Username: "alice", PasswordHash: "x"}); err != nil {
		_ = s.Rollback(txCtx)
		t.Fatalf("CreateUser in the transaction: %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	writeToken := func() error {
		return s.CreateAccessTokenSession(ctx, "sig-1", legacyRequest("req-1"))
	}
	checkWriteWaitsForCommit(t, "write outside the transaction", writeToken, s, txCtx, waitLimit)

	if _, err := s.UserByID(t.Context(), "user-1"); err != nil {
		t.Errorf("UserByID of the committed user: %v", err)
	}
}

// TestTransactionReusesQueuedStatement covers a statement that a write
// outside the transaction is about to prepare, queued for the writer
// connection, while the transaction holding that connection runs the same
// statement. The transaction must not wait for the queued write.
func TestTransactionReusesQueuedStatement(t *testing.T) {
	s := openShortBusyTimeout(t)
	writerPool, err := s.WriterSQLDB()
	if err != nil {
		t.Fatalf("WriterSQLDB: %v", err)
	}
	txCtx, err := s.BeginTX(t.Context())
	if err != nil {
		t.Fatalf("BeginTX: %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	queued := make(chan error, 1)
	go func() {
		queued <- s.CreateAccessTokenSession(ctx, "sig-queued", legacyRequest("req-queued"))
	}()
	for writerPool.Stats().WaitCount == 0 {
		if ctx.Err() != nil {
			_ = s.Rollback(txCtx)
			t.Fatalf("the write outside the transaction never queued for the writer connection")
		}
		time.Sleep(time.Millisecond)
	}

	inTx := make(chan error, 1)
	go func() {
		inTx <- s.CreateAccessTokenSession(txCtx, "sig-in-tx", legacyRequest("req-in-tx"))
	}()
	select {
	case err := <-inTx:
		if err != nil {
			t.Errorf("CreateAccessTokenSession in the transaction: %v", err)
		}
	case <-time.After(waitLimit / 2):
		t.Errorf("CreateAccessTokenSession in the transaction did not return within %v while a write outside it was queued", waitLimit/2)
	}
	if err := s.Commit(txCtx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := <-queued; err != nil {
		t.Errorf("queued CreateAccessTokenSession after commit: %v", err)
	}
}
