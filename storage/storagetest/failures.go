package storagetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quanux/authserver/storage"
)

func testLoginFailures(t *testing.T, open func(t *testing.T) *storage.Store) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	noLock := func(int) time.Time { return time.Time{} }

	t.Run("count, lock and clear", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		lockAtTwo := func(n int) time.Time {
			if n >= 2 {
				return now.Add(time.Minute)
			}
			return time.Time{}
		}
		for want := 1; want <= 2; want++ {
			rec, err := s.RecordLoginFailure(ctx, "user:alice", now, lockAtTwo)
			if err != nil {
				t.Fatalf("RecordLoginFailure: %v", err)
			}
			if rec.Failures != want {
				t.Errorf("failures = %d, want %d", rec.Failures, want)
			}
		}
		recs, err := s.LoginFailures(ctx, []string{"user:alice", "user:bob"})
		if err != nil {
			t.Fatalf("LoginFailures: %v", err)
		}
		got, ok := recs["user:alice"]
		if !ok || got.Failures != 2 || !got.LockedUntil.Equal(now.Add(time.Minute)) {
			t.Errorf("record = %+v (found %t), want 2 failures locked until %s", got, ok, now.Add(time.Minute))
		}
		if _, ok := recs["user:bob"]; ok {
			t.Error("a key without failures has a record")
		}

		if err := s.ClearLoginFailures(ctx, []string{"user:alice"}); err != nil {
			t.Fatalf("ClearLoginFailures: %v", err)
		}
		recs, err = s.LoginFailures(ctx, []string{"user:alice"})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 0 {
			t.Errorf("records after clearing: %+v", recs)
		}
	})

	t.Run("many keys read at once", func(t *testing.T) {
		s := open(t)
		// Reading the first 1 to 7 keys covers every length of the key
		// list up to 7. Only the odd-numbered keys have a record.
		const keyCount = 7
		var keys []string
		for n := 1; n <= keyCount; n++ {
			key := fmt.Sprintf("user:u%d", n)
			keys = append(keys, key)
			if n%2 == 0 {
				continue
			}
			if _, err := s.RecordLoginFailure(t.Context(), key, now, noLock); err != nil {
				t.Fatalf("RecordLoginFailure(%q): %v", key, err)
			}
		}
		for n := 1; n <= keyCount; n++ {
			recs, err := s.LoginFailures(t.Context(), keys[:n])
			if err != nil {
				t.Fatalf("LoginFailures of %d keys: %v", n, err)
			}
			if want := (n + 1) / 2; len(recs) != want {
				t.Errorf("LoginFailures of %d keys returned %d records, want %d", n, len(recs), want)
			}
			for _, key := range keys[:n] {
				if rec, ok := recs[key]; ok && (rec.Key != key || rec.Failures != 1 || !rec.LockedUntil.IsZero()) {
					t.Errorf("LoginFailures of %d keys: record %+v, want key %q with 1 failure and no lock", n, rec, key)
				}
			}
		}
	})

	t.Run("concurrent failures all count", func(t *testing.T) {
		s := open(t)
		const workers = 8
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Go(func() {
				if _, err := s.RecordLoginFailure(t.Context(), "client:c1", now, noLock); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("RecordLoginFailure: %v", err)
		}
		recs, err := s.LoginFailures(t.Context(), []string{"client:c1"})
		if err != nil {
			t.Fatal(err)
		}
		if got := recs["client:c1"].Failures; got != workers {
			t.Errorf("failures = %d after %d concurrent records, want %d", got, workers, workers)
		}
	})

	t.Run("stale records deleted", func(t *testing.T) {
		s := open(t)
		if _, err := s.RecordLoginFailure(t.Context(), "user:old", now.Add(-time.Hour), noLock); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordLoginFailure(t.Context(), "user:new", now, noLock); err != nil {
			t.Fatal(err)
		}
		n, err := s.DeleteStaleLoginFailures(t.Context(), now.Add(-time.Minute))
		if err != nil || n != 1 {
			t.Errorf("DeleteStaleLoginFailures = %d, %v; want 1 row", n, err)
		}
	})
}
