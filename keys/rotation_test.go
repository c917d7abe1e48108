package keys

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite/token/jwt"
)

func TestRotateStates(t *testing.T) {
	const publishFor = 2 * time.Hour
	env := newTestEnv(t)
	cfg := env.config("EdDSA")
	cfg.PublishRetiredFor = publishFor
	m, err := New(t.Context(), env.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	oldActive := keyInState(t, m, StateActive)
	oldNext := keyInState(t, m, StateNext)
	oldToken, _, err := m.Signer().Generate(t.Context(), accessTokenClaims(), accessTokenHeader())
	if err != nil {
		t.Fatal(err)
	}

	env.clock.Advance(24 * time.Hour)
	rotatedAt := env.clock.Now()
	got, err := m.Rotate(t.Context())
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}

	if got.KeyID != oldNext.KeyID || got.State != StateActive || !got.ActivatedAt.Equal(rotatedAt) {
		t.Errorf("Rotate returned %+v, want the old next key %q active since %v", got, oldNext.KeyID, rotatedAt)
	}
	retired := findKey(t, m, oldActive.KeyID)
	if retired.State != StateRetired || !retired.RetiredAt.Equal(rotatedAt) || !retired.Published {
		t.Errorf("old active key = %+v, want retired at %v and published", retired, rotatedAt)
	}
	newNext := keyInState(t, m, StateNext)
	if newNext.KeyID == oldNext.KeyID || newNext.KeyID == oldActive.KeyID || !newNext.Published {
		t.Errorf("next key after rotation = %+v, want a new published key", newNext)
	}
	newToken, _, err := m.Signer().Generate(t.Context(), accessTokenClaims(), accessTokenHeader())
	if err != nil {
		t.Fatal(err)
	}
	if kid := decodeKID(t, m, newToken); kid != oldNext.KeyID {
		t.Errorf("token after rotation has kid %q, want %q", kid, oldNext.KeyID)
	}

	steps := []struct {
		name          string
		advance       time.Duration
		reload        bool
		wantPublished bool
	}{
		{name: "just retired", advance: 0, wantPublished: true},
		{name: "one second before publication ends", advance: publishFor - time.Second, wantPublished: true},
		{name: "publication ended", advance: time.Second, wantPublished: false},
		{name: "after reload", advance: time.Hour, reload: true, wantPublished: false},
	}
	for _, step := range steps {
		env.clock.Advance(step.advance)
		if step.reload {
			if err := m.Reload(t.Context()); err != nil {
				t.Fatalf("%s: Reload: %v", step.name, err)
			}
		}

		_, err := m.Signer().Decode(t.Context(), oldToken)
		if step.wantPublished && err != nil {
			t.Errorf("%s: Decode of the old key's token: %v", step.name, err)
		}
		if !step.wantPublished && validationFlags(err) != jwt.ValidationErrorUnverifiable {
			t.Errorf("%s: Decode of the old key's token = %v, want ValidationErrorUnverifiable", step.name, err)
		}
		if got := bytes.Contains(m.JWKS(), []byte(oldActive.KeyID)); got != step.wantPublished {
			t.Errorf("%s: JWKS contains old kid = %v, want %v", step.name, got, step.wantPublished)
		}
		if _, got := m.PublicKey(oldActive.KeyID); got != step.wantPublished {
			t.Errorf("%s: PublicKey found old kid = %v, want %v", step.name, got, step.wantPublished)
		}
		if got := findKey(t, m, oldActive.KeyID).Published; got != step.wantPublished {
			t.Errorf("%s: Keys() Published = %v, want %v", step.name, got, step.wantPublished)
		}
		if _, err := m.Signer().Decode(t.Context(), newToken); err != nil {
			t.Errorf("%s: Decode of the active key's token: %v", step.name, err)
		}
	}
}

func TestNextKeyVerifiesBeforeItSigns(t *testing.T) {
	env := newTestEnv(t)
	rotating := env.manager(t, "ES256")
	other := env.manager(t, "ES256")

	rotated, err := rotating.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := rotating.Signer().Generate(t.Context(), accessTokenClaims(), accessTokenHeader())
	if err != nil {
		t.Fatal(err)
	}

	// other has not reloaded, so it still has the new active key loaded as
	// its next key.
	if kid := decodeKID(t, other, token); kid != rotated.KeyID {
		t.Errorf("decoded kid = %q, want %q", kid, rotated.KeyID)
	}
	if err := other.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := keyInState(t, other, StateActive).KeyID; got != rotated.KeyID {
		t.Errorf("active kid after Reload = %q, want %q", got, rotated.KeyID)
	}
}

func TestRotateConcurrentManagers(t *testing.T) {
	env := newTestEnv(t)
	managers := []*Manager{env.manager(t, "EdDSA"), env.manager(t, "EdDSA")}
	before := keyInState(t, managers[0], StateActive)
	env.store.beforeApply = newBarrier(len(managers), 5*time.Second)

	results := make([]Info, len(managers))
	errs := make([]error, len(managers))
	var wg sync.WaitGroup
	for i, m := range managers {
		wg.Go(func() {
			results[i], errs[i] = m.Rotate(t.Context())
		})
	}
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Fatalf("Rotate #%d: %v", i, err)
		}
	}
	if results[0].KeyID != results[1].KeyID {
		t.Errorf("Rotate returned different active keys: %q and %q", results[0].KeyID, results[1].KeyID)
	}
	if got := env.store.rotationCount(); got != 2 {
		t.Errorf("store rotations = %d, want 2: the start and one rotation", got)
	}

	records := env.store.snapshot()
	counts := map[State]int{}
	for _, rec := range records {
		counts[rec.State]++
	}
	want := map[State]int{StateRetired: 1, StateActive: 1, StateNext: 1}
	for state, n := range want {
		if counts[state] != n {
			t.Errorf("store has %d %s keys, want %d (all: %v)", counts[state], state, n, counts)
		}
	}
	for i, m := range managers {
		if got := keyInState(t, m, StateActive).KeyID; got != results[0].KeyID || got == before.KeyID {
			t.Errorf("manager #%d active kid = %q, want the rotated key %q", i, got, results[0].KeyID)
		}
	}
}

func TestRotateStoreError(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t, "EdDSA")
	before := keyInState(t, m, StateActive)

	m.store = failingStore{Store: env.store}

	if _, err := m.Rotate(t.Context()); err == nil {
		t.Fatal("Rotate succeeded, want the store error")
	}
	if got := keyInState(t, m, StateActive).KeyID; got != before.KeyID {
		t.Errorf("active kid after a failed rotation = %q, want %q", got, before.KeyID)
	}
}

// failingStore fails every rotation with an error other than a conflict.
type failingStore struct {
	Store
}

func (failingStore) ApplyRotation(context.Context, Rotation) error {
	return errors.New("database is down")
}

func findKey(t *testing.T, m *Manager, kid string) Info {
	t.Helper()
	for _, k := range m.Keys() {
		if k.KeyID == kid {
			return k
		}
	}
	t.Fatalf("kid %q not loaded", kid)
	return Info{}
}

func decodeKID(t *testing.T, m *Manager, token string) string {
	t.Helper()
	decoded, err := m.Signer().Decode(t.Context(), token)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	kid, _ := decoded.Header["kid"].(string)
	return kid
}
