package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
)

// TestGroupedInsertsFailAlone queues token INSERTs behind an open
// transaction, so the store writes them as one group when it ends, and
// checks that a row that cannot be written fails alone.
func TestGroupedInsertsFailAlone(t *testing.T) {
	s := openShortBusyTimeout(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()

	// The open transaction holds the writer, so the INSERTs below queue.
	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatalf("BeginTX: %v", err)
	}

	const writers = 16
	const bad = 7
	errs := make([]error, writers)
	finished := make(chan int, writers)
	for i := range writers {
		go func() {
			req := legacyRequest(fmt.Sprintf("req-%d", i))
			if i == bad {
				// The foreign key rejects a client that does not exist.
				req.Client = &storage.Client{ID: "client-unknown"}
			}
			errs[i] = s.CreateAccessTokenSession(ctx, fmt.Sprintf("sig-%d", i), req)
			finished <- i
		}()
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case i := <-finished:
		t.Fatalf("INSERT %d finished while the transaction held the writer", i)
	default:
	}
	if err := s.Rollback(txCtx); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	for range writers {
		select {
		case <-finished:
		case <-ctx.Done():
			t.Fatal("queued INSERTs did not finish")
		}
	}

	for i, err := range errs {
		if i == bad {
			if !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("INSERT with an unknown client: error %v, want storage.ErrNotFound", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("INSERT %d: %v", i, err)
			continue
		}
		if _, err := s.GetAccessTokenSession(ctx, fmt.Sprintf("sig-%d", i), nil); err != nil {
			t.Errorf("token %d not readable after its INSERT returned: %v", i, err)
		}
	}
	if _, err := s.GetAccessTokenSession(ctx, fmt.Sprintf("sig-%d", bad), nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Errorf("the rejected token was stored: error %v, want fosite.ErrNotFound", err)
	}
}

func TestInsertAfterCloseFails(t *testing.T) {
	s := openShortBusyTimeout(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.CreateAccessTokenSession(ctx, "sig-late", legacyRequest("req-late")); err == nil {
		t.Error("INSERT after Close succeeded")
	}
}
