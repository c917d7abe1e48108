package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

func TestParseJWKSKeepsOnlyUsableKeys(t *testing.T) {
	t.Parallel()
	rsa, ec, ed, weak := rsaKey(t), ecKey(t), edKey(t), weakRSAKey(t)
	public := func(k testKey, change func(*jose.JSONWebKey)) jose.JSONWebKey {
		jwk := k.jwk()
		if change != nil {
			change(&jwk)
		}
		return jwk
	}

	tests := []struct {
		name     string
		keys     []jose.JSONWebKey
		wantKIDs []string // nil means parseJWKS must fail
	}{
		{"all three algorithms", []jose.JSONWebKey{rsa.jwk(), ec.jwk(), ed.jwk()}, []string{"ec-1", "ed-1", "rsa-1"}},
		{"no use member", []jose.JSONWebKey{public(rsa, func(k *jose.JSONWebKey) { k.Use = "" })}, []string{"rsa-1"}},
		{"encryption key skipped", []jose.JSONWebKey{ec.jwk(), public(rsa, func(k *jose.JSONWebKey) { k.Use = "enc" })}, []string{"ec-1"}},
		{"no kid skipped", []jose.JSONWebKey{ec.jwk(), public(rsa, func(k *jose.JSONWebKey) { k.KeyID = "" })}, []string{"ec-1"}},
		{"no alg skipped", []jose.JSONWebKey{ec.jwk(), public(rsa, func(k *jose.JSONWebKey) { k.Algorithm = "" })}, []string{"ec-1"}},
		{"private key skipped", []jose.JSONWebKey{ec.jwk(), {Key: rsa.priv, KeyID: "private", Algorithm: "RS256", Use: "sig"}}, []string{"ec-1"}},
		{"symmetric key skipped", []jose.JSONWebKey{ec.jwk(), {Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct", Algorithm: "HS256", Use: "sig"}}, []string{"ec-1"}},
		{"RSA under 2048 bits skipped", []jose.JSONWebKey{ec.jwk(), weak.jwk()}, []string{"ec-1"}},
		{"RSA key labelled ES256 skipped", []jose.JSONWebKey{ec.jwk(), public(rsa, func(k *jose.JSONWebKey) { k.Algorithm = "ES256" })}, []string{"ec-1"}},
		{"EC key labelled ES384 skipped", []jose.JSONWebKey{rsa.jwk(), public(ec, func(k *jose.JSONWebKey) { k.Algorithm = "ES384" })}, []string{"rsa-1"}},
		{"Ed25519 key labelled RS256 skipped", []jose.JSONWebKey{rsa.jwk(), public(ed, func(k *jose.JSONWebKey) { k.Algorithm = "RS256" })}, []string{"rsa-1"}},
		{"same kid, two algorithms", []jose.JSONWebKey{rsa.jwk(), public(ec, func(k *jose.JSONWebKey) { k.KeyID = "rsa-1" })}, []string{"rsa-1"}},
		{"no usable key", []jose.JSONWebKey{weak.jwk()}, nil},
		{"empty set", []jose.JSONWebKey{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(jose.JSONWebKeySet{Keys: tt.keys})
			if err != nil {
				t.Fatal(err)
			}
			set, err := parseJWKS(t.Context(), raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}, slog.New(slog.DiscardHandler))
			if tt.wantKIDs == nil {
				if err == nil {
					t.Fatalf("parseJWKS accepted a set with kids %v", set.kids())
				}
				return
			}
			if err != nil {
				t.Fatalf("parseJWKS: %v", err)
			}
			if diff := cmp.Diff(tt.wantKIDs, set.kids()); diff != "" {
				t.Errorf("kids (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("unknown key type among good keys", func(t *testing.T) {
		raw := fmt.Sprintf(`{"keys":[{"kty":"XYZ","kid":"odd","alg":"RS256"},%s]}`, mustJSON(t, ec.jwk()))
		set, err := parseJWKS(t.Context(), []byte(raw), []jose.SignatureAlgorithm{jose.ES256}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("parseJWKS: %v", err)
		}
		if diff := cmp.Diff([]string{"ec-1"}, set.kids()); diff != "" {
			t.Errorf("kids (-want +got):\n%s", diff)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestUnknownKidRefetchesOnce(t *testing.T) {
	t.Parallel()
	oldKey, newKey := rsaKey(t), rsaKey2(t)
	ti := newTestIssuer(t, oldKey)
	c := newClock()
	v := newTestVerifier(t, ti, c, Config{MinRefreshInterval: time.Minute})
	if got := ti.jwksRequests.Load(); got != 1 {
		t.Fatalf("New made %d JWKS requests, want 1", got)
	}

	// The issuer rotates after the verifier loaded its keys.
	ti.publish(t, oldKey, newKey)
	c.Advance(time.Minute)
	token := newKey.sign(t, validClaims(ti.URL(), c.Now()), nil)
	if _, err := v.Verify(t.Context(), token); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if got := ti.jwksRequests.Load(); got != 2 {
		t.Errorf("JWKS requests after the unknown kid = %d, want 2", got)
	}

	// The key is cached now.
	if _, err := v.Verify(t.Context(), token); err != nil {
		t.Fatalf("second verification: %v", err)
	}
	if got := ti.jwksRequests.Load(); got != 2 {
		t.Errorf("JWKS requests after a known kid = %d, want still 2", got)
	}
}

func TestConcurrentUnknownKidsShareFetch(t *testing.T) {
	t.Parallel()
	oldKey, newKey := rsaKey(t), ecKey(t)
	ti := newTestIssuer(t, oldKey)
	c := newClock()
	v := newTestVerifier(t, ti, c, Config{MinRefreshInterval: time.Minute})
	ti.publish(t, oldKey, newKey)
	c.Advance(time.Minute)
	token := newKey.sign(t, validClaims(ti.URL(), c.Now()), nil)

	const callers = 50
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			_, err := v.Verify(t.Context(), token)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Verify during the shared fetch: %v", err)
		}
	}
	if got := ti.jwksRequests.Load(); got != 2 {
		t.Errorf("JWKS requests = %d, want 2 (the initial load and one shared refetch)", got)
	}
}

func TestVerifyStopsWaitingWhenContextEnds(t *testing.T) {
	t.Parallel()
	oldKey, newKey := rsaKey(t), ecKey(t)
	ti := newTestIssuer(t, oldKey)
	c := newClock()
	v := newTestVerifier(t, ti, c, Config{})
	hold := make(chan struct{})
	ti.mu.Lock()
	ti.hold = hold
	ti.mu.Unlock()
	// Cleanups run last-in first-out, so the held fetch ends before
	// v.Close waits for it.
	t.Cleanup(func() { close(hold) })
	c.Advance(DefaultMinRefreshInterval)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, newKey.sign(t, validClaims(ti.URL(), c.Now()), nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Verify error = %v, want context.DeadlineExceeded", err)
	}
	if errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify error = %v wraps ErrInvalidToken, but the token was never checked", err)
	}
}

func TestForgedKidFloodIsRateLimited(t *testing.T) {
	t.Parallel()
	key := rsaKey(t)
	ti := newTestIssuer(t, key)
	c := newClock()
	v := newTestVerifier(t, ti, c, Config{MinRefreshInterval: 10 * time.Second})
	claims := validClaims(ti.URL(), c.Now())
	c.Advance(10 * time.Second)

	// A forged token carries the real key's signature of other input. The
	// kid lookup fails before the signature is checked.
	parts := strings.Split(key.sign(t, claims, nil), ".")
	forged := func(kid string) string {
		return encodeSegment(t, map[string]any{"alg": "RS256", "kid": kid, "typ": "at+jwt"}) + "." + parts[1] + "." + parts[2]
	}

	// flood verifies tokens with fresh kids from many goroutines at once,
	// and every one must be rejected.
	flood := func(round int) {
		t.Helper()
		const workers, perWorker = 20, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*perWorker)
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					_, err := v.Verify(t.Context(), forged(fmt.Sprintf("forged-%d-%d-%d", round, w, i)))
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("forged kid: error = %v, want ErrInvalidToken", err)
			}
		}
	}

	flood(1)
	if got := ti.jwksRequests.Load(); got != 2 {
		t.Errorf("JWKS requests after 500 forged kids = %d, want 2 (the initial load and one refetch)", got)
	}
	c.Advance(5 * time.Second)
	flood(2)
	if got := ti.jwksRequests.Load(); got != 2 {
		t.Errorf("JWKS requests after a second flood within MinRefreshInterval = %d, want 2", got)
	}
	c.Advance(5 * time.Second)
	flood(3)
	if got := ti.jwksRequests.Load(); got != 3 {
		t.Errorf("JWKS requests after MinRefreshInterval passed = %d, want 3", got)
	}

	// The real key still verifies throughout.
	if _, err := v.Verify(t.Context(), key.sign(t, claims, nil)); err != nil {
		t.Errorf("real token after the flood: %v", err)
	}
}

func TestCachedKeysSurviveJWKSOutage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		down func(ti *testIssuer)
	}{
		{"JWKS answers 503", func(ti *testIssuer) { ti.setJWKSStatus(http.StatusServiceUnavailable) }},
		{"JWKS answers invalid JSON", func(ti *testIssuer) { ti.publishRaw([]byte(`{"keys":`)) }},
		{"JWKS has no usable key", func(ti *testIssuer) { ti.publishRaw([]byte(`{"keys":[]}`)) }},
		{"server gone", func(ti *testIssuer) { ti.server.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, unknown := ecKey(t), rsaKey2(t)
			ti := newTestIssuer(t, key)
			c := newClock()
			v := newTestVerifier(t, ti, c, Config{})
			tt.down(ti)

			r := v.startRefresh(false)
			<-r.done
			if r.err == nil {
				t.Fatal("refresh succeeded against a failing JWKS")
			}
			claims := validClaims(ti.URL(), c.Now())
			if _, err := v.Verify(t.Context(), key.sign(t, claims, nil)); err != nil {
				t.Errorf("token of a cached key during the outage: %v", err)
			}

			c.Advance(DefaultMinRefreshInterval)
			_, err := v.Verify(t.Context(), unknown.sign(t, claims, nil))
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("token of an unknown key during the outage: error = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestWithdrawnKeyStopsVerifying(t *testing.T) {
	t.Parallel()
	oldKey, newKey := rsaKey(t), rsaKey2(t)
	ti := newTestIssuer(t, oldKey, newKey)
	c := newClock()
	v := newTestVerifier(t, ti, c, Config{})
	token := oldKey.sign(t, validClaims(ti.URL(), c.Now()), nil)
	if _, err := v.Verify(t.Context(), token); err != nil {
		t.Fatalf("before withdrawal: %v", err)
	}

	ti.publish(t, newKey)
	r := v.startRefresh(false)
	<-r.done
	if r.err != nil {
		t.Fatalf("refresh: %v", r.err)
	}
	if _, err := v.Verify(t.Context(), token); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token of a withdrawn key: error = %v, want ErrInvalidToken", err)
	}
}

func TestBackgroundRefreshRunsUntilClose(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t, ecKey(t))
	v, err := New(t.Context(), testConfig(t, ti, newClock(), Config{RefreshInterval: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for ti.jwksRequests.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d JWKS requests after 10s with a 10ms refresh interval", ti.jwksRequests.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}

	v.Close()
	v.Close()
	stopped := ti.jwksRequests.Load()
	time.Sleep(100 * time.Millisecond)
	if got := ti.jwksRequests.Load(); got != stopped {
		t.Errorf("JWKS requests went from %d to %d after Close", stopped, got)
	}
	if r := v.startRefresh(false); r != nil {
		t.Error("startRefresh started a fetch after Close")
	}
}

func TestNewDiscovery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		setup             func(ti *testIssuer)
		cfg               func(ti *testIssuer) Config
		wantErr           string // empty means New must succeed
		wantDiscoveryHits int64
	}{
		{
			name:              "OpenID Connect location",
			wantDiscoveryHits: 1,
		},
		{
			name:              "RFC 8414 location",
			setup:             func(ti *testIssuer) { ti.oidc = false },
			wantDiscoveryHits: 1,
		},
		{
			name:              "explicit JWKS URL skips discovery",
			cfg:               func(ti *testIssuer) Config { return Config{JWKSURL: ti.URL() + "/keys"} },
			wantDiscoveryHits: 0,
		},
		{
			name:              "issuer mismatch",
			setup:             func(ti *testIssuer) { ti.metadataIssuer = "https://evil.example" },
			wantErr:           `names issuer "https://evil.example"`,
			wantDiscoveryHits: 1,
		},
		{
			name:    "configured issuer with trailing slash",
			cfg:     func(ti *testIssuer) Config { return Config{Issuer: ti.URL() + "/"} },
			wantErr: "names issuer",
		},
		{
			name:    "JWKS unavailable",
			setup:   func(ti *testIssuer) { ti.jwksStatus = http.StatusInternalServerError },
			wantErr: "status 500",
		},
		{
			name: "JWKS larger than 1 MiB",
			setup: func(ti *testIssuer) {
				ti.jwks = []byte(`{"keys":[],"pad":"` + strings.Repeat("x", maxDocumentSize) + `"}`)
			},
			wantErr: "larger than",
		},
		{
			name:    "JWKS without usable keys",
			setup:   func(ti *testIssuer) { ti.jwks = []byte(`{"keys":[]}`) },
			wantErr: "no usable signing key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ti := newTestIssuer(t, rsaKey(t))
			if tt.setup != nil {
				tt.setup(ti)
			}
			var cfg Config
			if tt.cfg != nil {
				cfg = tt.cfg(ti)
			}
			v, err := New(t.Context(), testConfig(t, ti, newClock(), cfg))
			if tt.wantErr != "" {
				if err == nil {
					v.Close()
					t.Fatalf("New succeeded, want an error containing %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("New error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer v.Close()
			if got := v.JWKSURL(); got != ti.URL()+"/keys" {
				t.Errorf("JWKSURL = %q", got)
			}
			if got := ti.discoveryRequests.Load(); got != tt.wantDiscoveryHits {
				t.Errorf("discovery requests = %d, want %d", got, tt.wantDiscoveryHits)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no issuer", Config{Audience: "a"}, "Issuer is required"},
		{"relative issuer", Config{Issuer: "auth.example", Audience: "a"}, "Issuer"},
		{"issuer with query", Config{Issuer: "http://127.0.0.1:9?x=1", Audience: "a"}, "Issuer"},
		{"ftp JWKS URL", Config{Issuer: "http://127.0.0.1:9", JWKSURL: "ftp://127.0.0.1:9/keys", Audience: "a"}, "JWKSURL"},
		{"no audience", Config{Issuer: "http://127.0.0.1:9"}, "Audience is required"},
		{"HS256", Config{Issuer: "http://127.0.0.1:9", Audience: "a", Algorithms: []string{"HS256"}}, `algorithm "HS256"`},
		{"none", Config{Issuer: "http://127.0.0.1:9", Audience: "a", Algorithms: []string{"none"}}, `algorithm "none"`},
		{"negative leeway", Config{Issuer: "http://127.0.0.1:9", Audience: "a", Leeway: -time.Second}, "Leeway"},
		{"negative refresh interval", Config{Issuer: "http://127.0.0.1:9", Audience: "a", RefreshInterval: -time.Second}, "RefreshInterval"},
		{"quote in realm", Config{Issuer: "http://127.0.0.1:9", Audience: "a", Realm: `x"y`}, "realm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(t.Context(), tt.cfg)
			if err == nil {
				v.Close()
				t.Fatalf("New accepted %+v", tt.cfg)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestWellKnownURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		issuer string
		want   []string
	}{
		{"https://auth.example", []string{"https://auth.example/.well-known/openid-configuration", "https://auth.example/.well-known/oauth-authorization-server"}},
		{"https://auth.example/tenant/1", []string{"https://auth.example/tenant/1/.well-known/openid-configuration", "https://auth.example/.well-known/oauth-authorization-server/tenant/1"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, wellKnownURLs(tt.issuer)); diff != "" {
			t.Errorf("wellKnownURLs(%q) (-want +got):\n%s", tt.issuer, diff)
		}
	}
}

func TestHTTPSIssuerNeedsHTTPSKeys(t *testing.T) {
	t.Parallel()
	var server *httptest.Server
	server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":   server.URL,
			"jwks_uri": strings.Replace(server.URL, "https://", "http://", 1) + "/keys",
		})
	}))
	t.Cleanup(server.Close)

	v, err := New(t.Context(), Config{Issuer: server.URL, Audience: testAudience, HTTPClient: server.Client()})
	if err == nil {
		v.Close()
		t.Fatal("New accepted an http jwks_uri from an https issuer")
	}
	if !strings.Contains(err.Error(), "is not https") {
		t.Errorf("New error = %v, want it to name the http jwks_uri", err)
	}
}
