package oauth

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/quanux/authserver/storage"
)

// openGuardStore returns a migrated store on a new SQLite file.
func openGuardStore(t *testing.T) *storage.Store {
	t.Helper()
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
	return store
}

func TestGuardSharesLocksThroughStore(t *testing.T) {
	store := openGuardStore(t)

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

// countingStore is the real store, counting the reads of shared records.
type countingStore struct {
	*storage.Store
	reads map[string]int
}

func (c *countingStore) LoginFailures(ctx context.Context, keys []string) (map[string]storage.LoginFailure, error) {
	for _, k := range keys {
		c.reads[k]++
	}
	return c.Store.LoginFailures(ctx, keys)
}

func TestGuardSkipsSharedReadForCleanClient(t *testing.T) {
	store := openGuardStore(t)
	counting := &countingStore{Store: store, reads: map[string]int{}}
	clock := &fakeClock{now: time.Unix(1000, 0)}
	g, err := NewGuard(GuardConfig{MaxFailures: 3, LockoutBase: time.Minute, LockoutMax: time.Hour, AddressRate: 1000, AddressBurst: 1000, Now: clock.Now, Store: counting})
	if err != nil {
		t.Fatal(err)
	}
	attempt := func(outcome Outcome) {
		t.Helper()
		a, err := g.Begin(t.Context(), "", "client:runner", "user:alice")
		if err != nil {
			t.Fatalf("Begin: %v", err)
		}
		a.Finish(t.Context(), outcome)
	}

	for range 3 {
		attempt(Succeeded)
	}
	if got := counting.reads["client:runner"]; got != 1 {
		t.Errorf("client key read %d times in one recheck interval, want 1", got)
	}
	if got := counting.reads["user:alice"]; got != 3 {
		t.Errorf("user key read %d times, want every attempt (3)", got)
	}

	clock.Advance(sharedRecheck)
	attempt(Succeeded)
	if got := counting.reads["client:runner"]; got != 2 {
		t.Errorf("client key read %d times after the recheck interval, want 2", got)
	}

	// Once the client has a failure, the next attempt reads its record.
	attempt(Failed)
	if got := counting.reads["client:runner"]; got != 2 {
		t.Errorf("client key read %d times before its first failure, want 2", got)
	}
	attempt(Succeeded)
	if got := counting.reads["client:runner"]; got != 3 {
		t.Errorf("client key read %d times after a failure, want 3", got)
	}

	// Another process's lock on the client is seen within the interval.
	other, err := NewGuard(GuardConfig{MaxFailures: 1, LockoutBase: time.Minute, LockoutMax: time.Hour, AddressRate: 1000, AddressBurst: 1000, Now: clock.Now, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	attempt(Succeeded)
	if err := fail(t, other, "client:runner"); err != nil {
		t.Fatalf("failure on the other guard refused: %v", err)
	}
	clock.Advance(sharedRecheck)
	var throttled *ThrottledError
	if _, err := g.Begin(t.Context(), "", "client:runner"); !errors.As(err, &throttled) {
		t.Errorf("Begin after another process locked the client = %v, want a ThrottledError", err)
	}
}
