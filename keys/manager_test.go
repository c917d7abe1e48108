package keys

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestNewFirstStart(t *testing.T) {
	tests := []struct {
		name    string
		alg     string
		wantAlg string
	}{
		{name: "default algorithm", alg: "", wantAlg: "RS256"},
		{name: "RS256", alg: "RS256", wantAlg: "RS256"},
		{name: "ES256", alg: "ES256", wantAlg: "ES256"},
		{name: "EdDSA", alg: "EdDSA", wantAlg: "EdDSA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			m := env.manager(t, tt.alg)

			if got := m.Algorithm(); got != tt.wantAlg {
				t.Errorf("Algorithm() = %q, want %q", got, tt.wantAlg)
			}
			if got := env.store.rotationCount(); got != 1 {
				t.Errorf("store rotations = %d, want 1", got)
			}
			records := env.store.snapshot()
			if len(records) != 2 {
				t.Fatalf("store has %d keys, want 2", len(records))
			}
			if n := countStoredState(records, StateActive); n != 1 {
				t.Errorf("store has %d active keys, want 1", n)
			}
			if n := countStoredState(records, StateNext); n != 1 {
				t.Errorf("store has %d next keys, want 1", n)
			}
			for _, rec := range records {
				checkStoredRecord(t, rec, tt.wantAlg)
			}

			active := keyInState(t, m, StateActive)
			if !active.Published || active.ActivatedAt.IsZero() {
				t.Errorf("active key = %+v, want published with ActivatedAt set", active)
			}
			next := keyInState(t, m, StateNext)
			if !next.Published || !next.ActivatedAt.IsZero() {
				t.Errorf("next key = %+v, want published without ActivatedAt", next)
			}
		})
	}
}

// checkStoredRecord checks what a generated record contains: the algorithm,
// a kid that is the thumbprint of the stored public JWK, and a private key
// that is not stored in clear.
func checkStoredRecord(t *testing.T, rec Record, alg string) {
	t.Helper()
	if rec.Algorithm != alg {
		t.Errorf("kid %q: algorithm %q, want %q", rec.KeyID, rec.Algorithm, alg)
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(rec.PublicKey, &jwk); err != nil {
		t.Fatalf("kid %q: parse public JWK: %v", rec.KeyID, err)
	}
	if !jwk.IsPublic() {
		t.Errorf("kid %q: stored public JWK contains private parts", rec.KeyID)
	}
	kid, err := thumbprint(jwk)
	if err != nil {
		t.Fatal(err)
	}
	if kid != rec.KeyID {
		t.Errorf("kid %q differs from the public key thumbprint %q", rec.KeyID, kid)
	}
	if _, err := x509.ParsePKCS8PrivateKey(rec.PrivateKey); err == nil {
		t.Errorf("kid %q: private key is stored as clear PKCS #8", rec.KeyID)
	}
	if len(rec.PrivateKey) < 12+16 {
		t.Errorf("kid %q: sealed private key has %d bytes, shorter than nonce and tag", rec.KeyID, len(rec.PrivateKey))
	}
}

func TestNewConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		store  Store
		config func(Config) Config
		want   string // part of the error message
	}{
		{
			name:   "unknown algorithm",
			store:  newMemStore(),
			config: func(c Config) Config { c.Algorithm = "HS256"; return c },
			want:   `"HS256"`,
		},
		{
			name:   "short secret",
			store:  newMemStore(),
			config: func(c Config) Config { c.Secret = make([]byte, 31); return c },
			want:   "31 bytes",
		},
		{
			name:   "missing secret",
			store:  newMemStore(),
			config: func(c Config) Config { c.Secret = nil; return c },
			want:   "0 bytes",
		},
		{
			name:   "negative publication",
			store:  newMemStore(),
			config: func(c Config) Config { c.PublishRetiredFor = -time.Second; return c },
			want:   "-1s",
		},
		{
			name:   "nil store",
			store:  nil,
			config: func(c Config) Config { return c },
			want:   "store is nil",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			_, err := New(t.Context(), tt.store, tt.config(env.config("EdDSA")))
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s", err, tt.want)
			}
		})
	}
}

func TestConfigLogValueRedactsSecret(t *testing.T) {
	cfg := Config{Algorithm: "ES256", Secret: []byte("a-secret-that-must-not-be-logged!")}
	if got := cfg.LogValue().String(); strings.Contains(got, "must-not-be-logged") {
		t.Errorf("LogValue() = %s, contains the secret", got)
	}
}

func TestNewInvalidStore(t *testing.T) {
	tests := []struct {
		name   string
		secret []byte
		tamper func(t *testing.T, s *memStore) // changes the stored keys
		errAs  bool                            // the error is an *openError
		want   string                          // part of the error message
	}{
		{
			name:   "wrong master secret",
			secret: []byte("another-secret-another-secret-!!"),
			tamper: func(*testing.T, *memStore) {},
			errAs:  true,
			want:   "master secret may differ",
		},
		{
			name:   "sealed key moved to another kid",
			secret: testSecret,
			tamper: func(t *testing.T, s *memStore) {
				active, next := storedInState(t, s, StateActive), storedInState(t, s, StateNext)
				active.PrivateKey = next.PrivateKey
				s.put(active)
			},
			errAs: true,
			want:  "copied from another row",
		},
		{
			name:   "public key of another kid",
			secret: testSecret,
			tamper: func(t *testing.T, s *memStore) {
				active, next := storedInState(t, s, StateActive), storedInState(t, s, StateNext)
				active.PublicKey = next.PublicKey
				s.put(active)
			},
			want: "does not match the thumbprint",
		},
		{
			name:   "two active keys",
			secret: testSecret,
			tamper: func(t *testing.T, s *memStore) {
				next := storedInState(t, s, StateNext)
				next.State = StateActive
				s.put(next)
			},
			want: "more than one active key",
		},
		{
			name:   "unknown state",
			secret: testSecret,
			tamper: func(t *testing.T, s *memStore) {
				next := storedInState(t, s, StateNext)
				next.State = "pending"
				s.put(next)
			},
			want: `unknown state "pending"`,
		},
		{
			name:   "private key in public column",
			secret: testSecret,
			tamper: func(t *testing.T, s *memStore) {
				next := storedInState(t, s, StateNext)
				next.PublicKey = []byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}`)
				s.put(next)
			},
			want: "contains a private key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.manager(t, "EdDSA")
			tt.tamper(t, env.store)

			cfg := env.config("EdDSA")
			cfg.Secret = tt.secret
			_, err := New(t.Context(), env.store, cfg)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			var openErr *openError
			if got := errors.As(err, &openErr); got != tt.errAs {
				t.Errorf("errors.As(*openError) = %v, want %v", got, tt.errAs)
			}
			if openErr != nil && !strings.Contains(err.Error(), openErr.kid) {
				t.Errorf("error %q does not name kid %q", err, openErr.kid)
			}
		})
	}
}

func countStoredState(records []Record, state State) int {
	n := 0
	for _, rec := range records {
		if rec.State == state {
			n++
		}
	}
	return n
}

func storedInState(t *testing.T, s *memStore, state State) Record {
	t.Helper()
	for _, rec := range s.snapshot() {
		if rec.State == state {
			return rec
		}
	}
	t.Fatalf("store has no %s key", state)
	return Record{}
}

func TestNewConcurrentFirstStart(t *testing.T) {
	env := newTestEnv(t)
	env.store.beforeApply = newBarrier(2, 5*time.Second)

	managers := make([]*Manager, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range managers {
		wg.Go(func() {
			managers[i], errs[i] = New(t.Context(), env.store, env.config("EdDSA"))
		})
	}
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Fatalf("New #%d: %v", i, err)
		}
	}
	if got := env.store.rotationCount(); got != 1 {
		t.Errorf("store rotations = %d, want 1", got)
	}
	if got := len(env.store.snapshot()); got != 2 {
		t.Errorf("store has %d keys, want 2", got)
	}
	a, b := keyInState(t, managers[0], StateActive), keyInState(t, managers[1], StateActive)
	if a.KeyID != b.KeyID {
		t.Errorf("managers disagree on the active key: %q and %q", a.KeyID, b.KeyID)
	}
}

func TestNewAlgorithmChange(t *testing.T) {
	env := newTestEnv(t)
	old := env.manager(t, "ES256")
	oldActive := keyInState(t, old, StateActive)
	oldNext := keyInState(t, old, StateNext)
	token, _, err := old.Signer().Generate(t.Context(), accessTokenClaims(), accessTokenHeader())
	if err != nil {
		t.Fatal(err)
	}

	env.clock.Advance(time.Minute)
	m := env.manager(t, "EdDSA")

	if got := env.store.rotationCount(); got != 2 {
		t.Errorf("store rotations = %d, want 2", got)
	}
	active := keyInState(t, m, StateActive)
	if active.Algorithm != "EdDSA" {
		t.Errorf("active key algorithm = %q, want EdDSA", active.Algorithm)
	}
	if next := keyInState(t, m, StateNext); next.Algorithm != "EdDSA" {
		t.Errorf("next key algorithm = %q, want EdDSA", next.Algorithm)
	}
	for _, k := range m.Keys() {
		if k.KeyID != oldActive.KeyID && k.KeyID != oldNext.KeyID {
			continue
		}
		if k.State != StateRetired || !k.Published || !k.RetiredAt.Equal(env.clock.Now()) {
			t.Errorf("old key %q = %+v, want retired now and published", k.KeyID, k)
		}
	}

	decoded, err := m.Signer().Decode(t.Context(), token)
	if err != nil {
		t.Fatalf("Decode of a token signed before the change: %v", err)
	}
	if got := decoded.Header["kid"]; got != oldActive.KeyID {
		t.Errorf("decoded kid = %v, want %q", got, oldActive.KeyID)
	}
	if !bytes.Contains(m.JWKS(), []byte(`"ES256"`)) || !bytes.Contains(m.JWKS(), []byte(`"EdDSA"`)) {
		t.Errorf("JWKS = %s, want ES256 and EdDSA keys", m.JWKS())
	}
}

func TestNewLoadsExistingKeys(t *testing.T) {
	env := newTestEnv(t)
	first := env.manager(t, "ES256")
	second := env.manager(t, "ES256")

	if got := env.store.rotationCount(); got != 1 {
		t.Errorf("store rotations = %d, want 1", got)
	}
	a, b := keyInState(t, first, StateActive), keyInState(t, second, StateActive)
	if a.KeyID != b.KeyID {
		t.Errorf("second manager active kid = %q, want %q", b.KeyID, a.KeyID)
	}
}

func TestKeysNewestFirst(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t, "EdDSA")
	env.clock.Advance(time.Hour)
	if _, err := m.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}

	var states []State
	for _, k := range m.Keys() {
		states = append(states, k.State)
	}
	want := []State{StateNext, StateActive, StateRetired}
	if len(states) != len(want) {
		t.Fatalf("Keys() states = %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("Keys() states = %v, want %v", states, want)
		}
	}
}

func TestLifecycleLogs(t *testing.T) {
	env := newTestEnv(t)
	var logs bytes.Buffer
	cfg := env.config("EdDSA")
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	m, err := New(t.Context(), env.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := keyInState(t, m, StateActive)
	env.clock.Advance(time.Hour)
	rotated, err := m.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	var records []map[string]any
	for line := range bytes.Lines(logs.Bytes()) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("parse log line %q: %v", line, err)
		}
		records = append(records, rec)
	}
	want := []map[string]any{
		{"level": "INFO", "msg": "signing key activated", "kid": first.KeyID, "reason": "key store is empty"},
		{"level": "INFO", "msg": "signing key rotated", "kid": rotated.KeyID, "retired_kid": first.KeyID, "reason": "rotation requested"},
	}
	if len(records) != len(want) {
		t.Fatalf("got %d log records, want %d:\n%s", len(records), len(want), logs.String())
	}
	for i, w := range want {
		for k, v := range w {
			if records[i][k] != v {
				t.Errorf("log record %d: %s = %v, want %v", i, k, records[i][k], v)
			}
		}
	}

	for _, rec := range env.store.snapshot() {
		sealed := base64.StdEncoding.EncodeToString(rec.PrivateKey)
		if strings.Contains(logs.String(), sealed[:16]) {
			t.Errorf("logs contain the sealed private key of kid %q", rec.KeyID)
		}
	}
	if strings.Contains(logs.String(), string(testSecret)) {
		t.Error("logs contain the master secret")
	}
}
