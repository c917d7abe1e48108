package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
)

// RunReplicas runs the cases in which several processes share one
// database: the client cache, the change feed and the revocation list.
// openShared must create one fresh, migrated, empty database and return a
// function that opens another store on it at each call, configured as for
// [Run] and closed through t.Cleanup.
func RunReplicas(t *testing.T, openShared func(t *testing.T) func() *storage.Store) {
	// The sync interval is long, so the cache is trusted for the whole
	// test and only SyncChanges moves it on.
	const interval = time.Minute
	var openStore func() *storage.Store
	pair := func(t *testing.T) (*storage.Store, *storage.Store) {
		t.Helper()
		openStore = openShared(t)
		a, b := openStore(), openStore()
		a.SetSyncInterval(interval)
		b.SetSyncInterval(interval)
		mustCreateUser(t, a, alice())
		mustCreateClient(t, a, reportsClient())
		mustSync(t, a)
		mustSync(t, b)
		return a, b
	}

	t.Run("change elsewhere applies at sync", func(t *testing.T) {
		a, b := pair(t)
		if c := mustCachedClient(t, a); c.Disabled {
			t.Fatal("client disabled before the change")
		}
		if err := b.SetClientDisabled(t.Context(), clientID, true); err != nil {
			t.Fatalf("SetClientDisabled: %v", err)
		}
		if c := mustCachedClient(t, a); c.Disabled {
			t.Error("cache saw the other store's change before a sync; it should still hold the old row")
		}
		mustSync(t, a)
		if c := mustCachedClient(t, a); !c.Disabled {
			t.Error("client still enabled after the sync")
		}
		if _, err := a.GetClient(t.Context(), clientID); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("GetClient after the sync = %v, want fosite.ErrNotFound", err)
		}
	})

	t.Run("owner change drops owned clients", func(t *testing.T) {
		a, b := pair(t)
		mustCachedClient(t, a)
		disabled := true
		if err := b.UpdateUser(t.Context(), aliceID, storage.UserUpdate{Disabled: &disabled}); err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		mustSync(t, a)
		if c := mustCachedClient(t, a); !c.OwnerDisabled {
			t.Error("OwnerDisabled still false after the owner was disabled and the feed read")
		}
	})

	t.Run("own change applies at commit", func(t *testing.T) {
		a, _ := pair(t)
		mustCachedClient(t, a)
		if err := a.SetClientScopes(t.Context(), clientID, []string{"openid"}); err != nil {
			t.Fatalf("SetClientScopes: %v", err)
		}
		if c := mustCachedClient(t, a); len(c.Scopes) != 1 {
			t.Errorf("scopes after the store's own change = %v, want [openid]", c.Scopes)
		}
	})

	t.Run("own change in transaction applies at commit", func(t *testing.T) {
		a, _ := pair(t)
		mustCachedClient(t, a)
		ctx, err := a.BeginTX(t.Context())
		if err != nil {
			t.Fatalf("BeginTX: %v", err)
		}
		if err := a.SetClientDisabled(ctx, clientID, true); err != nil {
			t.Fatalf("SetClientDisabled: %v", err)
		}
		// A lookup outside the transaction reads the old row, and may
		// cache it; the commit must drop it again.
		if c := mustCachedClient(t, a); c.Disabled {
			t.Error("a lookup outside the transaction saw its uncommitted change")
		}
		if err := a.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if c := mustCachedClient(t, a); !c.Disabled {
			t.Error("client still enabled after the commit; the cache kept the row read during the transaction")
		}
	})

	t.Run("without sync interval lookups read the database", func(t *testing.T) {
		a, b := pair(t)
		a.SetSyncInterval(0)
		mustCachedClient(t, a)
		if err := b.SetClientDisabled(t.Context(), clientID, true); err != nil {
			t.Fatalf("SetClientDisabled: %v", err)
		}
		if c := mustCachedClient(t, a); !c.Disabled {
			t.Error("an uncached lookup returned the old row")
		}
	})

	t.Run("token epochs advance on revocation", func(t *testing.T) {
		a, b := pair(t)
		before := mustCachedClient(t, a)
		if _, err := b.RevokeTokensOfClient(t.Context(), clientID); err != nil {
			t.Fatalf("RevokeTokensOfClient: %v", err)
		}
		if _, err := b.RevokeTokensOfUser(t.Context(), aliceID); err != nil {
			t.Fatalf("RevokeTokensOfUser: %v", err)
		}
		mustSync(t, a)
		after := mustCachedClient(t, a)
		if after.TokenEpoch != before.TokenEpoch+1 {
			t.Errorf("TokenEpoch = %d, want %d", after.TokenEpoch, before.TokenEpoch+1)
		}
		if after.OwnerTokenEpoch != before.OwnerTokenEpoch+1 {
			t.Errorf("OwnerTokenEpoch = %d, want %d", after.OwnerTokenEpoch, before.OwnerTokenEpoch+1)
		}
	})

	t.Run("revocation reaches other store at sync", func(t *testing.T) {
		a, b := pair(t)
		expires := time.Now().Add(time.Hour)
		if err := b.RevokeTokenID(t.Context(), "jti-1", expires); err != nil {
			t.Fatalf("RevokeTokenID: %v", err)
		}
		if revoked := mustRevoked(t, b, "jti-1"); !revoked {
			t.Error("the revoking store does not report the token revoked")
		}
		if revoked := mustRevoked(t, a, "jti-1"); revoked {
			t.Error("the other store reports the revocation before reading the feed; it should answer from memory")
		}
		mustSync(t, a)
		if revoked := mustRevoked(t, a, "jti-1"); !revoked {
			t.Error("the other store does not report the revocation after a sync")
		}
		if revoked := mustRevoked(t, a, "jti-2"); revoked {
			t.Error("a token never revoked is reported revoked")
		}
	})

	t.Run("revocation without sync reads the database", func(t *testing.T) {
		a, b := pair(t)
		a.SetSyncInterval(0)
		if err := b.RevokeTokenID(t.Context(), "jti-1", time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("RevokeTokenID: %v", err)
		}
		if revoked := mustRevoked(t, a, "jti-1"); !revoked {
			t.Error("an out-of-sync store does not find the revocation in the database")
		}
	})

	t.Run("first sync loads unexpired revocations", func(t *testing.T) {
		_, b := pair(t)
		if err := b.RevokeTokenID(t.Context(), "jti-live", time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("RevokeTokenID: %v", err)
		}
		if err := b.RevokeTokenID(t.Context(), "jti-expired", time.Now().Add(-time.Minute)); err != nil {
			t.Fatalf("RevokeTokenID: %v", err)
		}
		fresh := openStore()
		fresh.SetSyncInterval(interval)
		mustSync(t, fresh)
		if !mustRevoked(t, fresh, "jti-live") {
			t.Error("a new process does not load an unexpired revocation")
		}
		if mustRevoked(t, fresh, "jti-expired") {
			t.Error("a new process loaded an expired revocation")
		}
	})

	t.Run("repeated revocation adds one row", func(t *testing.T) {
		_, b := pair(t)
		for range 5 {
			if err := b.RevokeTokenID(t.Context(), "jti-again", time.Now().Add(time.Hour)); err != nil {
				t.Fatalf("RevokeTokenID: %v", err)
			}
		}
		n, err := b.DeleteExpiredChanges(t.Context(), time.Now().Add(2*time.Hour))
		if err != nil {
			t.Fatalf("DeleteExpiredChanges: %v", err)
		}
		if n != 1 {
			t.Errorf("feed rows after revoking one token five times = %d, want 1", n)
		}
	})

	t.Run("feed order survives deleted rows", func(t *testing.T) {
		a, b := pair(t)
		if err := b.RevokeTokenID(t.Context(), "jti-old", time.Now().Add(-time.Minute)); err != nil {
			t.Fatalf("RevokeTokenID: %v", err)
		}
		mustSync(t, a)
		n, err := b.DeleteExpiredChanges(t.Context(), time.Now().Add(2*time.Hour))
		if err != nil {
			t.Fatalf("DeleteExpiredChanges: %v", err)
		}
		if n == 0 {
			t.Fatal("DeleteExpiredChanges deleted nothing")
		}
		// Every row is gone, so a reused seq would start below a's
		// cursor and the revocation would be missed.
		if err := b.RevokeTokenID(t.Context(), "jti-new", time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("RevokeTokenID: %v", err)
		}
		mustSync(t, a)
		if !mustRevoked(t, a, "jti-new") {
			t.Error("a revocation written after the feed was emptied was missed")
		}
	})
}

func mustSync(t *testing.T, s *storage.Store) {
	t.Helper()
	if err := s.SyncChanges(t.Context()); err != nil {
		t.Fatalf("SyncChanges: %v", err)
	}
}

func mustCachedClient(t *testing.T, s *storage.Store) *storage.Client {
	t.Helper()
	c, err := s.CachedClient(t.Context(), clientID)
	if err != nil {
		t.Fatalf("CachedClient: %v", err)
	}
	return c
}

func mustRevoked(t *testing.T, s *storage.Store, jti string) bool {
	t.Helper()
	revoked, err := s.TokenIDRevoked(t.Context(), jti)
	if err != nil {
		t.Fatalf("TokenIDRevoked(%q): %v", jti, err)
	}
	return revoked
}
