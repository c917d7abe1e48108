package keys

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingStore counts key-set reads.
type countingStore struct {
	*memStore
	reads atomic.Int64
}

func (s *countingStore) SigningKeys(ctx context.Context) ([]Record, error) {
	s.reads.Add(1)
	return s.memStore.SigningKeys(ctx)
}

func TestDecodeReloadsOnUnknownKid(t *testing.T) {
	env := newTestEnv(t)
	store := &countingStore{memStore: env.store}
	cfg := env.config("ES256")

	stale, err := New(t.Context(), store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := New(t.Context(), store, cfg)
	if err != nil {
		t.Fatal(err)
	}

	// Two rotations elsewhere make a key the stale manager has never
	// loaded: it was created after that manager's last load.
	for range 2 {
		if _, err := fresh.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	token, _, err := fresh.Signer().Generate(t.Context(), accessTokenClaims(), accessTokenHeader())
	if err != nil {
		t.Fatal(err)
	}

	before := store.reads.Load()
	if _, err := stale.Signer().Decode(t.Context(), token); err != nil {
		t.Fatalf("Decode of a token signed by a key rotated in elsewhere: %v", err)
	}
	if got := store.reads.Load() - before; got != 1 {
		t.Errorf("the unknown kid caused %d key-set reads, want 1", got)
	}

	// A flood of forged kids within the interval causes no further reads.
	forged := forgeKid(t, token, "forged-kid")
	before = store.reads.Load()
	for range 50 {
		if _, err := stale.Signer().Decode(t.Context(), forged); err == nil {
			t.Fatal("a token with a forged kid decoded")
		}
	}
	if got := store.reads.Load() - before; got != 0 {
		t.Errorf("50 forged kids within %s caused %d key-set reads, want 0", minUnknownKeyReload, got)
	}

	env.clock.Advance(minUnknownKeyReload + time.Millisecond)
	if _, err := stale.Signer().Decode(t.Context(), forged); err == nil {
		t.Fatal("a token with a forged kid decoded")
	}
	if got := store.reads.Load() - before; got != 1 {
		t.Errorf("a forged kid after the interval caused %d key-set reads, want 1", got)
	}
}

// forgeKid returns token with its header's kid replaced; the signature no
// longer matches, which does not matter for a kid that is never found.
func forgeKid(t *testing.T, token, kid string) string {
	t.Helper()
	parts := strings.SplitN(token, ".", 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var header map[string]any
	if err := json.Unmarshal(raw, &header); err != nil {
		t.Fatal(err)
	}
	header["kid"] = kid
	raw, err = json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw) + "." + parts[1] + "." + parts[2]
}
