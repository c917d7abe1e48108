package oauth

import (
	"errors"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestGuard(t *testing.T, clock *fakeClock) *Guard {
	t.Helper()
	g, err := NewGuard(GuardConfig{MaxFailures: 3, LockoutBase: time.Second, LockoutMax: 8 * time.Second, AddressRate: 1000, AddressBurst: 1000, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func fail(t *testing.T, g *Guard, keys ...string) error {
	t.Helper()
	a, err := g.Begin(t.Context(), "", keys...)
	if err != nil {
		return err
	}
	a.Finish(t.Context(), Failed)
	return nil
}

func TestGuardLocksAfterMaxFailures(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	g := newTestGuard(t, clock)
	for i := range 3 {
		if err := fail(t, g, "user:alice"); err != nil {
			t.Fatalf("attempt %d refused: %v", i+1, err)
		}
	}

	_, err := g.Begin(t.Context(), "", "user:alice")
	var throttled *ThrottledError
	if !errors.As(err, &throttled) {
		t.Fatalf("fourth attempt: err = %v, want ThrottledError", err)
	}
	if throttled.RetryAfter != time.Second {
		t.Errorf("RetryAfter = %s, want the first lockout of 1s", throttled.RetryAfter)
	}
	if _, err := g.Begin(t.Context(), "", "user:bob"); err != nil {
		t.Errorf("another user is locked too: %v", err)
	}

	// Each further failure doubles the lockout, up to the maximum.
	for _, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		clock.Advance(time.Minute)
		if err := fail(t, g, "user:alice"); err != nil {
			t.Fatalf("attempt after the lockout refused: %v", err)
		}
		_, err := g.Begin(t.Context(), "", "user:alice")
		if !errors.As(err, &throttled) || throttled.RetryAfter != want {
			t.Errorf("lockout = %v (err %v), want %s", throttled, err, want)
		}
	}
}

func TestGuardSuccessResets(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	g := newTestGuard(t, clock)
	for range 2 {
		if err := fail(t, g, "client:c1"); err != nil {
			t.Fatal(err)
		}
	}
	a, err := g.Begin(t.Context(), "", "client:c1")
	if err != nil {
		t.Fatal(err)
	}
	a.Finish(t.Context(), Succeeded)
	for i := range 2 {
		if err := fail(t, g, "client:c1"); err != nil {
			t.Fatalf("failure %d after a success refused: %v", i+1, err)
		}
	}
}

func TestGuardInconclusiveCountsNothing(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	g := newTestGuard(t, clock)
	for range 10 {
		a, err := g.Begin(t.Context(), "", "user:alice")
		if err != nil {
			t.Fatalf("inconclusive attempts locked the key: %v", err)
		}
		a.Finish(t.Context(), Inconclusive)
	}
}

func TestGuardConcurrentAttempts(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	g := newTestGuard(t, clock)

	// Attempts in flight count as failures until they finish, so no more
	// than MaxFailures can run at once.
	var admitted []*Attempt
	for range 10 {
		if a, err := g.Begin(t.Context(), "", "user:alice"); err == nil {
			admitted = append(admitted, a)
		}
	}
	if len(admitted) != 3 {
		t.Errorf("%d attempts admitted at once, want 3", len(admitted))
	}
	for _, a := range admitted {
		a.Finish(t.Context(), Failed)
	}
	if _, err := g.Begin(t.Context(), "", "user:alice"); err == nil {
		t.Error("key not locked after the admitted attempts failed")
	}
}

func TestGuardAddressRate(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	g, err := NewGuard(GuardConfig{AddressRate: 1, AddressBurst: 2, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		a, err := g.Begin(t.Context(), "192.0.2.1", "user:u"+string(rune('a'+i)))
		if err != nil {
			t.Fatalf("attempt %d within the burst refused: %v", i+1, err)
		}
		a.Finish(t.Context(), Succeeded)
	}
	if _, err := g.Begin(t.Context(), "192.0.2.1", "user:other"); err == nil {
		t.Error("third attempt from one address within a second was admitted")
	}
	if a, err := g.Begin(t.Context(), "192.0.2.2", "user:other"); err != nil {
		t.Errorf("another address was limited: %v", err)
	} else {
		a.Finish(t.Context(), Succeeded)
	}
	clock.Advance(time.Second)
	if _, err := g.Begin(t.Context(), "192.0.2.1", "user:other"); err != nil {
		t.Errorf("the address is still limited after a second: %v", err)
	}
}

func TestGuardRejectsBadConfig(t *testing.T) {
	for _, cfg := range []GuardConfig{
		{MaxFailures: -1},
		{LockoutBase: time.Minute, LockoutMax: time.Second},
		{AddressRate: -1},
	} {
		if _, err := NewGuard(cfg); err == nil {
			t.Errorf("NewGuard(%+v) succeeded, want an error", cfg)
		}
	}
}

func TestGuardClientConcurrency(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	g := newTestGuard(t, clock)

	// A client without failures may run more requests at once than the
	// failure limit.
	var running []*Attempt
	for i := range 10 {
		a, err := g.Begin(t.Context(), "", ClientKeyPrefix+"c1")
		if err != nil {
			t.Fatalf("concurrent request %d of a client without failures refused: %v", i+1, err)
		}
		running = append(running, a)
	}
	for _, a := range running {
		a.Finish(t.Context(), Succeeded)
	}

	// Once it has failed, attempts in flight count against it again.
	if err := fail(t, g, ClientKeyPrefix+"c1"); err != nil {
		t.Fatal(err)
	}
	admitted := 0
	for range 10 {
		if _, err := g.Begin(t.Context(), "", ClientKeyPrefix+"c1"); err == nil {
			admitted++
		}
	}
	if admitted != 2 {
		t.Errorf("%d concurrent attempts admitted after one failure, want 2", admitted)
	}
}
