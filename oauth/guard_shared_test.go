package oauth

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
)

func TestGuardSharesLocksThroughStore(t *testing.T) {
	store, err := storage.Open(t.Context(), storage.Config{
		Database:   filepath.Join(t.TempDir(), "auth.db"),
		NewSession: func() fosite.Session { return NewSession() },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}

	clock := &fakeClock{now: time.Unix(1000, 0)}
	newGuard := func() *Guard {
		g, err := NewGuard(GuardConfig{MaxFailures: 3, LockoutBase: time.Minute, LockoutMax: time.Hour, AddressRate: 1000, AddressBurst: 1000, Now: clock.Now, Store: store})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	replicaA, replicaB := newGuard(), newGuard()

	// Failures spread over two replicas add up.
	for i, g := range []*Guard{replicaA, replicaB, replicaA} {
		if err := fail(t, g, "user:alice"); err != nil {
			t.Fatalf("failure %d refused: %v", i+1, err)
		}
	}
	var throttled *ThrottledError
	for name, g := range map[string]*Guard{"replica A": replicaA, "replica B": replicaB} {
		if _, err := g.Begin(t.Context(), "", "user:alice"); !errors.As(err, &throttled) {
			t.Errorf("%s: err = %v, want the shared lock", name, err)
		}
	}

	// A success on one replica clears the count for all.
	clock.Advance(2 * time.Minute)
	a, err := replicaB.Begin(t.Context(), "", "user:alice")
	if err != nil {
		t.Fatalf("attempt after the lockout refused: %v", err)
	}
	a.Finish(t.Context(), Succeeded)
	recs, err := store.LoginFailures(t.Context(), []string{"user:alice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Errorf("shared records after a success: %+v, want none", recs)
	}
}
