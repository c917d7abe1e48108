package storagetest

import (
	"context"
	"errors"
	"testing"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
)

func mustBeginTX(t *testing.T, s *storage.Store) context.Context {
	t.Helper()
	ctx, err := s.BeginTX(t.Context())
	if err != nil {
		t.Fatalf("BeginTX: %v", err)
	}
	return ctx
}

func testTransactions(t *testing.T, open func(t *testing.T) *storage.Store) {
	finishes := []struct {
		name        string
		finish      func(s *storage.Store, ctx context.Context) error
		wantVisible bool
	}{
		{name: "rollback hides write", finish: (*storage.Store).Rollback, wantVisible: false},
		{name: "commit shows write", finish: (*storage.Store).Commit, wantVisible: true},
	}
	for _, tc := range finishes {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			tokenFixture(t, s)
			txCtx := mustBeginTX(t, s)

			if err := s.CreateAccessTokenSession(txCtx, "sig-1", newRequest("req-1", clientID, aliceID)); err != nil {
				t.Fatalf("CreateAccessTokenSession in transaction: %v", err)
			}
			if _, err := s.GetAccessTokenSession(txCtx, "sig-1", NewSession()); err != nil {
				t.Errorf("GetAccessTokenSession in the same transaction: %v", err)
			}
			if _, err := s.GetAccessTokenSession(t.Context(), "sig-1", NewSession()); !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("GetAccessTokenSession outside the open transaction = %v, want fosite.ErrNotFound", err)
			}

			if err := tc.finish(s, txCtx); err != nil {
				t.Fatalf("finish transaction: %v", err)
			}

			_, err := s.GetAccessTokenSession(t.Context(), "sig-1", NewSession())
			if tc.wantVisible && err != nil {
				t.Errorf("GetAccessTokenSession after commit: %v", err)
			}
			if !tc.wantVisible && !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("GetAccessTokenSession after rollback = %v, want fosite.ErrNotFound", err)
			}
		})
	}

	t.Run("rollback undoes rotation", func(t *testing.T) {
		s := open(t)
		twoFamilies(t, s)
		txCtx := mustBeginTX(t, s)

		if err := s.RotateRefreshToken(txCtx, "req-1", "rt-1"); err != nil {
			t.Fatalf("RotateRefreshToken in transaction: %v", err)
		}
		if err := s.Rollback(txCtx); err != nil {
			t.Fatalf("Rollback: %v", err)
		}

		mustGetActive(t, s, refreshKind, "rt-1")
		mustGetActive(t, s, accessKind, "at-1")
	})

	t.Run("nested BeginTX", func(t *testing.T) {
		s := open(t)
		txCtx := mustBeginTX(t, s)
		t.Cleanup(func() {
			if err := s.Rollback(txCtx); err != nil {
				t.Errorf("Rollback of outer transaction: %v", err)
			}
		})

		if _, err := s.BeginTX(txCtx); err == nil {
			t.Errorf("BeginTX inside a transaction succeeded, want an error")
		}
	})

	withoutTX := []struct {
		name   string
		finish func(s *storage.Store, ctx context.Context) error
	}{
		{name: "commit", finish: (*storage.Store).Commit},
		{name: "rollback", finish: (*storage.Store).Rollback},
	}
	for _, tc := range withoutTX {
		t.Run(tc.name+" without transaction", func(t *testing.T) {
			s := open(t)
			if err := tc.finish(s, t.Context()); err == nil {
				t.Errorf("%s without a transaction succeeded, want an error", tc.name)
			}
		})
	}
}
