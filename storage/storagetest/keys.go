package storagetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/quanux/authserver/keys"
	"github.com/quanux/authserver/storage"
)

var (
	firstRotationAt  = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	secondRotationAt = time.Date(2030, 4, 2, 3, 4, 5, 0, time.UTC)
)

// keyRecord returns a key record whose sealed private key contains every
// byte value, so a store that treats it as text would corrupt it.
func keyRecord(kid string, state keys.State, createdAt time.Time) keys.Record {
	sealed := make([]byte, 256)
	for i := range sealed {
		sealed[i] = byte(i)
	}
	sealed = append(sealed, kid...)
	return keys.Record{
		KeyID:      kid,
		Algorithm:  "ES256",
		State:      state,
		PrivateKey: sealed,
		PublicKey:  []byte(`{"kty":"EC","crv":"P-256","kid":"` + kid + `","x":"x","y":"y"}`),
		CreatedAt:  createdAt,
	}
}

// firstRotation is the rotation keys.Manager applies to an empty store: an
// active key and the next one.
func firstRotation() keys.Rotation {
	active := keyRecord("kid-1", keys.StateActive, firstRotationAt)
	active.ActivatedAt = firstRotationAt
	return keys.Rotation{
		Activate: active.KeyID,
		Insert:   []keys.Record{active, keyRecord("kid-2", keys.StateNext, firstRotationAt)},
		At:       firstRotationAt,
	}
}

func mustApplyRotation(t *testing.T, s *storage.Store, r keys.Rotation) {
	t.Helper()
	if err := s.ApplyRotation(t.Context(), r); err != nil {
		t.Fatalf("ApplyRotation(expected active %q): %v", r.ExpectedActive, err)
	}
}

// signingKeys returns the stored keys sorted by key id, as the Store
// promises no order.
func signingKeys(t *testing.T, s *storage.Store) []keys.Record {
	t.Helper()
	records, err := s.SigningKeys(t.Context())
	if err != nil {
		t.Fatalf("SigningKeys: %v", err)
	}
	slices.SortFunc(records, func(a, b keys.Record) int { return cmp.Compare(a.KeyID, b.KeyID) })
	return records
}

func testSigningKeys(t *testing.T, open func(t *testing.T) *storage.Store) {
	t.Run("empty store", func(t *testing.T) {
		s := open(t)
		if got := signingKeys(t, s); len(got) != 0 {
			t.Errorf("SigningKeys = %d records, want none", len(got))
		}
	})

	t.Run("first rotation", func(t *testing.T) {
		s := open(t)
		r := firstRotation()
		mustApplyRotation(t, s, r)

		if diff := gocmp.Diff(r.Insert, signingKeys(t, s), equateSecond); diff != "" {
			t.Errorf("SigningKeys mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("rotation with expected active key", func(t *testing.T) {
		s := open(t)
		mustApplyRotation(t, s, firstRotation())

		mustApplyRotation(t, s, keys.Rotation{
			ExpectedActive: "kid-1",
			Retire:         []string{"kid-1"},
			Activate:       "kid-2",
			Insert:         []keys.Record{keyRecord("kid-3", keys.StateNext, secondRotationAt)},
			At:             secondRotationAt,
		})

		retired := keyRecord("kid-1", keys.StateRetired, firstRotationAt)
		retired.ActivatedAt = firstRotationAt
		retired.RetiredAt = secondRotationAt
		active := keyRecord("kid-2", keys.StateActive, firstRotationAt)
		active.ActivatedAt = secondRotationAt
		want := []keys.Record{retired, active, keyRecord("kid-3", keys.StateNext, secondRotationAt)}
		if diff := gocmp.Diff(want, signingKeys(t, s), equateSecond); diff != "" {
			t.Errorf("SigningKeys mismatch (-want +got):\n%s", diff)
		}
	})

	rejected := []struct {
		name     string
		rotation keys.Rotation
		wantErr  error
	}{
		{
			name:     "no active key expected",
			rotation: keys.Rotation{Insert: []keys.Record{keyRecord("kid-9", keys.StateActive, secondRotationAt)}, At: secondRotationAt},
			wantErr:  keys.ErrRotationConflict,
		},
		{
			name: "stale active key expected",
			rotation: keys.Rotation{
				ExpectedActive: "kid-0",
				Retire:         []string{"kid-1"},
				Activate:       "kid-2",
				Insert:         []keys.Record{keyRecord("kid-9", keys.StateNext, secondRotationAt)},
				At:             secondRotationAt,
			},
			wantErr: keys.ErrRotationConflict,
		},
		{
			// The insert and the retirement run before the activation
			// fails, so this checks that the whole rotation is undone.
			name: "unknown key to activate",
			rotation: keys.Rotation{
				ExpectedActive: "kid-1",
				Retire:         []string{"kid-1"},
				Activate:       "kid-unknown",
				Insert:         []keys.Record{keyRecord("kid-9", keys.StateNext, secondRotationAt)},
				At:             secondRotationAt,
			},
			wantErr: storage.ErrNotFound,
		},
		{
			name: "duplicate key id",
			rotation: keys.Rotation{
				ExpectedActive: "kid-1",
				Retire:         []string{"kid-1"},
				Activate:       "kid-2",
				Insert:         []keys.Record{keyRecord("kid-1", keys.StateNext, secondRotationAt)},
				At:             secondRotationAt,
			},
			wantErr: storage.ErrConflict,
		},
	}
	for _, tc := range rejected {
		t.Run("rejected rotation changes nothing/"+tc.name, func(t *testing.T) {
			s := open(t)
			mustApplyRotation(t, s, firstRotation())
			before := signingKeys(t, s)

			err := s.ApplyRotation(t.Context(), tc.rotation)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("ApplyRotation = %v, want %v", err, tc.wantErr)
			}

			if diff := gocmp.Diff(before, signingKeys(t, s)); diff != "" {
				t.Errorf("SigningKeys changed by rejected rotation (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("concurrent rotations", func(t *testing.T) {
		s := open(t)
		mustApplyRotation(t, s, firstRotation())

		// Each round, two rotations that saw the same active key each try
		// to activate their own new key, as two processes rotating at once
		// would. Several rounds give the race several chances to show.
		const rounds = 10
		active := "kid-1"
		for round := range rounds {
			at := secondRotationAt.Add(time.Duration(round) * time.Hour)
			candidates := []string{fmt.Sprintf("kid-%d-a", round), fmt.Sprintf("kid-%d-b", round)}
			rotations := make([]func(ctx context.Context) error, len(candidates))
			for i, kid := range candidates {
				rotations[i] = func(ctx context.Context) error {
					return s.ApplyRotation(ctx, keys.Rotation{
						ExpectedActive: active,
						Retire:         []string{active},
						Activate:       kid,
						Insert:         []keys.Record{keyRecord(kid, keys.StateNext, at)},
						At:             at,
					})
				}
			}
			errs := startTogether(t, rotations...)

			var winners []string
			for i, err := range errs {
				switch {
				case err == nil:
					winners = append(winners, candidates[i])
				case !errors.Is(err, keys.ErrRotationConflict):
					t.Errorf("round %d: rotation to %s = %v, want nil or keys.ErrRotationConflict", round, candidates[i], err)
				}
			}
			if len(winners) != 1 {
				t.Fatalf("round %d: rotations that succeeded: %q, want exactly one", round, winners)
			}

			var activeKeys []string
			stored := map[string]bool{}
			for _, rec := range signingKeys(t, s) {
				stored[rec.KeyID] = true
				if rec.State == keys.StateActive {
					activeKeys = append(activeKeys, rec.KeyID)
				}
			}
			if diff := gocmp.Diff(winners, activeKeys); diff != "" {
				t.Fatalf("round %d: active keys mismatch (-want +got):\n%s", round, diff)
			}
			for _, kid := range candidates {
				if stored[kid] != (kid == winners[0]) {
					t.Errorf("round %d: key %s stored = %t, want %t", round, kid, stored[kid], kid == winners[0])
				}
			}
			active = winners[0]
		}
	})
}
