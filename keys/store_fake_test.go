package keys

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// memStore is an in-memory Store. ApplyRotation compares the active key
// with Rotation.ExpectedActive under the mutex, like a database transaction
// would, and rejects rotations that would leave the set inconsistent.
type memStore struct {
	// beforeApply, when set, runs at the start of every ApplyRotation, before
	// the lock is taken, so a test can line up concurrent rotations.
	beforeApply func()

	mu        sync.Mutex
	records   map[string]Record
	rotations int // successful ApplyRotation calls
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{records: map[string]Record{}}
}

func (s *memStore) SigningKeys(ctx context.Context) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.records))
	for _, rec := range s.records {
		out = append(out, cloneRecord(rec))
	}
	return out, nil
}

func (s *memStore) ApplyRotation(ctx context.Context, r Rotation) error {
	if s.beforeApply != nil {
		s.beforeApply()
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if active := activeKID(s.records); active != r.ExpectedActive {
		return fmt.Errorf("memStore: active kid is %q, rotation expected %q: %w", active, r.ExpectedActive, ErrRotationConflict)
	}

	next := maps.Clone(s.records)
	for _, kid := range r.Retire {
		rec, ok := next[kid]
		if !ok {
			return fmt.Errorf("memStore: retire unknown kid %q", kid)
		}
		rec.State = StateRetired
		rec.RetiredAt = r.At
		next[kid] = rec
	}
	for _, rec := range r.Insert {
		if _, ok := next[rec.KeyID]; ok {
			return fmt.Errorf("memStore: insert duplicate kid %q", rec.KeyID)
		}
		next[rec.KeyID] = cloneRecord(rec)
	}
	if r.Activate != "" {
		rec, ok := next[r.Activate]
		if !ok {
			return fmt.Errorf("memStore: activate unknown kid %q", r.Activate)
		}
		rec.State = StateActive
		rec.ActivatedAt = r.At
		next[r.Activate] = rec
	}
	if n := countState(next, StateActive); n > 1 {
		return fmt.Errorf("memStore: rotation leaves %d active keys", n)
	}

	s.records = next
	s.rotations++
	return nil
}

// put stores rec as is, bypassing the rotation checks, to set up a state.
func (s *memStore) put(rec Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[rec.KeyID] = cloneRecord(rec)
}

// snapshot returns the stored records sorted by kid.
func (s *memStore) snapshot() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.records))
	slices.SortFunc(out, func(a, b Record) int { return cmp.Compare(a.KeyID, b.KeyID) })
	return out
}

func (s *memStore) rotationCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rotations
}

func activeKID(records map[string]Record) string {
	for kid, rec := range records {
		if rec.State == StateActive {
			return kid
		}
	}
	return ""
}

func countState(records map[string]Record, state State) int {
	n := 0
	for _, rec := range records {
		if rec.State == state {
			n++
		}
	}
	return n
}

func cloneRecord(rec Record) Record {
	rec.PrivateKey = slices.Clone(rec.PrivateKey)
	rec.PublicKey = slices.Clone(rec.PublicKey)
	return rec
}

// newBarrier returns a hook that blocks each of the first n callers until
// all n have arrived or timeout has passed. Later callers pass at once.
func newBarrier(n int, timeout time.Duration) func() {
	var arrived atomic.Int32
	all := make(chan struct{})
	return func() {
		c := int(arrived.Add(1))
		if c == n {
			close(all)
		}
		if c > n {
			return
		}
		select {
		case <-all:
		case <-time.After(timeout):
		}
	}
}
